// Starts the real server for IMAP tests, optionally with IMAP limits in DATA/config.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import type { Limits } from '../../../src/config/config.ts';
import { PG_URL, dropSchema, freshSchemaName } from '../../store/pg-env.ts';

export interface ImapTestServer extends TestServer {
  /** Stops the server and removes its data folder. */
  done(): Promise<void>;
}

export async function startImapServer(
  opts: { limits?: Partial<Limits>; plaintext?: boolean; args?: string[]; postgres?: boolean } = {},
): Promise<ImapTestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-imap-'));
  if (opts.limits) writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ limits: opts.limits }));
  const schema = opts.postgres ? freshSchemaName() : null;
  const s = await startServer({ dataDir, plaintext: opts.plaintext, args: opts.args, database: schema ? `${PG_URL}?schema=${schema}` : undefined });
  return Object.assign(s, {
    async done() {
      await s.stop();
      rmSync(dataDir, { recursive: true, force: true });
      if (schema) await dropSchema(schema);
    },
  });
}

/** A small MIME message with a binary attachment. */
export function messageWithAttachment(attachment: Buffer, subject = 'Report'): Buffer {
  const b64 = attachment.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      'From: Alice <alice@example.com>',
      'To: Bob <bob@example.com>',
      `Subject: ${subject}`,
      'Date: Sat, 21 Nov 2026 10:00:00 +0000',
      'Message-ID: <m1@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'See the attached file.',
      '--b1',
      'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Disposition: attachment; filename="data.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      b64,
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

export function simpleMessage(subject: string, body = 'Hello\r\n', from = 'alice@example.com', to = 'bob@example.com'): string {
  return `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Math.random().toString(36).slice(2)}@example.com>\r\n\r\n${body}`;
}

/**
 * Appends `n` messages to `mailbox` for a SEARCH BODY / TEXT test: every 7th has the needle in its
 * body (an HTML part, quoted-printable, split by a tag), every 11th only in its Subject. Returns
 * the sequence numbers BODY and TEXT must find (mailbox assumed empty before).
 */
export async function appendBodySearchMailbox(c: { append(mailbox: string, message: Buffer | string, flags?: string, nonSync?: boolean): Promise<{ tagged: string }> }, mailbox: string, n: number, needle = 'Zanzibar'): Promise<{ body: number[]; text: number[] }> {
  const body: number[] = [];
  const text: number[] = [];
  for (let i = 1; i <= n; i++) {
    const inBody = i % 7 === 0;
    const inSubject = i % 11 === 0;
    const half = Math.floor(needle.length / 2);
    const html = inBody ? `<p>trip to ${needle.slice(0, half)}<b>${needle.slice(half)}</b>=\r\n next week</p>` : `<p>message ${i}, nothing to see</p>`;
    const raw =
      `From: a@example.com\r\nTo: b@example.com\r\nSubject: ${inSubject ? `${needle} ${i}` : `note ${i}`}\r\nMIME-Version: 1.0\r\n` +
      'Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nplain part\r\n' +
      `--x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${html}\r\n--x--\r\n`;
    const r = await c.append(mailbox, raw, '', true);
    if (!/ OK /.test(r.tagged)) throw new Error(`APPEND ${i}: ${r.tagged}`);
    if (inBody) body.push(i);
    if (inBody || inSubject) text.push(i);
  }
  return { body, text };
}
