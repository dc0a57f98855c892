// STARTTLS (RFC 9051 §6.2.1): tagged OK in plain text, then the TLS handshake; input pipelined
// after the command is discarded.
import type { Handler } from '../commands.ts';
import { ImapBad } from '../errors.ts';
import { statusLine } from '../../protocol/imap/response.ts';

export const starttls: Handler<'STARTTLS'> = async (s, tag) => {
  if (s.tls) throw new ImapBad('TLS is already active');
  s.write(statusLine(tag, 'OK', null, 'Begin TLS negotiation now'));
  try {
    await s.startTls();
  } catch (err) {
    s.deps.log.debug('imap.starttls-failed', { session: s.id, err });
    s.close();
  }
  return null;
};
