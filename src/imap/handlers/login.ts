// LOGIN (RFC 9051 §6.2.3) and the login step shared with AUTHENTICATE: TLS required (unless
// loopback plain text is allowed), throttled checks in deps.auth, per-account connection limit.
import type { Handler, HandlerResult } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import { ImapNo } from '../errors.ts';
import { accountSettings } from '../../store/store.ts';

export async function doLogin(s: ImapSession, user: string, pass: string): Promise<HandlerResult> {
  const failed = (reason: string) => s.deps.log.info('imap.login-failed', { protocol: 'imap', session: s.id, user: user.slice(0, 200), ip: s.remoteAddress, reason });
  if (!s.loginAllowed) {
    failed('tls-required');
    throw new ImapNo('PRIVACYREQUIRED', 'Use STARTTLS (or port 993) before logging in');
  }
  const r = await s.deps.auth.login(user, pass, s.remoteAddress);
  if (s.closed) return null;
  if (!r.ok) {
    // RFC 9051 §7.1: UNAVAILABLE is temporary (the client retries later); AUTHENTICATIONFAILED is not.
    failed(r.reason);
    if (r.reason === 'throttled' || r.reason === 'busy') throw new ImapNo('UNAVAILABLE', r.message || 'Too many failed logins, try again later');
    if (r.reason === 'disabled') throw new ImapNo('AUTHORIZATIONFAILED', r.message || 'Account disabled');
    throw new ImapNo('AUTHENTICATIONFAILED', 'Invalid credentials');
  }
  const limit = accountSettings(r.account).imapMaxConnections;
  const release = await s.deps.connections.acquire('imap', r.account.id, limit);
  if (s.closed) {
    release?.();
    return null;
  }
  if (!release) {
    s.deps.log.info('imap.login-failed', { protocol: 'imap', session: s.id, user: r.account.address, ip: s.remoteAddress, reason: 'connection-limit', limit });
    throw new ImapNo('LIMIT', `Too many IMAP connections for this account: at most ${limit} at the same time are allowed`);
  }
  s.authenticated(r.account, release);
  return { code: `CAPABILITY ${s.capabilities().join(' ')}`, text: 'Logged in' };
}

export const login: Handler<'LOGIN'> = async (s, _tag, cmd) => doLogin(s, cmd.user, cmd.pass);
