// What the cross-node and cross-worker tests (cluster-follow, workers) share: one SMTP delivery
// on an open connection, asserting each reply as a sender sees it, and reading a session's
// untagged lines until one matches.
import assert from 'node:assert/strict';
import type { RawSmtp } from './smtp.ts';
import type { RawImap } from '../e2e/imap/raw-client.ts';

/** Greeting to QUIT on `s` (left open for the caller to close): one message to `rcpt`, 250 asserted. */
export async function deliverOne(s: RawSmtp, rcpt: string, subject: string, text: string): Promise<void> {
  assert.match(await s.reply(), /^220/);
  assert.match(await s.cmd('EHLO client.example'), /^250/m);
  assert.match(await s.cmd('MAIL FROM:<sender@remote.example>'), /^250/);
  assert.match(await s.cmd(`RCPT TO:<${rcpt}>`), /^250/);
  assert.match(await s.cmd('DATA'), /^354/);
  assert.match(await s.cmd(`From: sender@remote.example\r\nTo: ${rcpt}\r\nSubject: ${subject}\r\n\r\n${text}\r\n.`), /^250/);
  await s.cmd('QUIT').catch(() => '');
}

/** Reads lines until one matches, within waitMs (a mismatch is collected in `seen`, not an error). */
export async function untilLine(c: RawImap, re: RegExp, seen: string[], waitMs: number): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const line = await c.readLine(Math.max(1, deadline - Date.now()));
    seen.push(line);
    if (re.test(line)) return line;
  }
}
