// Shared bits of the SMTP end-to-end tests: reading what the running server stored (the SQLite
// store opened from the test, read-only use), running external clients, a raw line client.
import { spawn } from 'node:child_process';
import { mailboxMessages } from '../../helpers/smtp.ts';
import { openStore, defaultDatabase } from '../../../src/store/open.ts';
import type { Store } from '../../../src/store/store.ts';

export async function withStore<T>(dataDir: string, fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Raw stored messages of a mailbox, in UID order. */
export async function stored(dataDir: string, address: string, mailbox = 'INBOX'): Promise<Buffer[]> {
  return withStore(dataDir, (s) => mailboxMessages(s, address, mailbox));
}

export function run(cmd: string, args: string[], input?: string | Buffer): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
    p.stdin.end(input ?? '');
  });
}

/** A minimal SMTP line client for exact reply checks. */

export { RawSmtp, splitPrepended } from '../../helpers/smtp.ts';
