// ENABLE (RFC 5161, RFC 9051 §6.3.1): CONDSTORE, QRESYNC (implies CONDSTORE, RFC 7162 §3.2.3),
// UTF8=ACCEPT (RFC 6855), IMAP4rev2, UIDONLY (RFC 9586 §3.1; src/imap/uidonly.ts).
import type { Handler } from '../commands.ts';

const KNOWN = new Set(['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT', 'IMAP4REV2', 'UIDONLY']);

export const enable: Handler<'ENABLE'> = async (s, _tag, cmd) => {
  const done: string[] = [];
  for (const c of cmd.caps) {
    if (!KNOWN.has(c) || s.enabled.has(c)) continue;
    s.enabled.add(c);
    done.push(c === 'IMAP4REV2' ? 'IMAP4rev2' : c);
    if (c === 'QRESYNC' || c === 'CONDSTORE') s.enableCondstore();
  }
  s.write(`* ENABLED${done.map((c) => ' ' + c).join('')}\r\n`);
  return 'ENABLE completed';
};
