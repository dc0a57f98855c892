// AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616) with SASL-IR (RFC 4959).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import { ImapBad, ImapNo, toReply } from '../errors.ts';
import { doLogin } from './login.ts';
import { statusLine } from '../../protocol/imap/response.ts';

function decodePlain(b64: string): { user: string; pass: string } {
  if (b64 === '=') throw new ImapNo('AUTHENTICATIONFAILED', 'Invalid credentials');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new ImapBad('Invalid base64'); // linear: anchored, disjoint parts
  const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
  if (parts.length !== 3) throw new ImapBad('Invalid PLAIN response');
  const [authz, user, pass] = parts as [string, string, string];
  if (authz !== '' && authz.toLowerCase() !== user.toLowerCase()) throw new ImapNo('AUTHORIZATIONFAILED', 'Cannot act as another user');
  return { user, pass };
}

async function finish(s: ImapSession, tag: string, b64: string): Promise<void> {
  try {
    const { user, pass } = decodePlain(b64);
    const r = await doLogin(s, user, pass);
    if (r === null) return;
    const res = typeof r === 'string' ? { code: null, text: r } : r;
    s.write(statusLine(tag, 'OK', res.code, res.text));
  } catch (err) {
    const reply = toReply(err) ?? { cond: 'NO' as const, code: 'SERVERBUG', text: 'Internal error' };
    s.write(statusLine(tag, reply.cond, reply.code, reply.text));
  }
}

export const authenticate: Handler<'AUTHENTICATE'> = async (s, tag, cmd) => {
  if (cmd.mechanism !== 'PLAIN') throw new ImapNo('CANNOT', `Unsupported mechanism ${cmd.mechanism}`);
  if (!s.loginAllowed) throw new ImapNo('PRIVACYREQUIRED', 'Use STARTTLS (or port 993) before logging in');
  if (cmd.initial !== null) {
    await finish(s, tag, cmd.initial);
    return null;
  }
  s.continuation = async (line) => {
    // RFC 9051 §6.2.2: "*" cancels.
    if (line.trim() === '*') {
      s.write(statusLine(tag, 'BAD', null, 'AUTHENTICATE cancelled'));
      return;
    }
    await finish(s, tag, line.trim());
  };
  s.write('+ \r\n');
  return null;
};
