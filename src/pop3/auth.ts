// POP3 AUTHORIZATION state (RFC 1939 §4, §7): USER/PASS, AUTH PLAIN (RFC 5034, RFC 4616), APOP
// refused; then the login: throttled/wrong/disabled replies (RFC 3206 codes), the account's POP
// policy, the maildrop lock (RFC 2449 §8.1.2 IN-USE) and the snapshot (src/pop3/snapshot.ts).

import type { Account } from '../store/store.ts';
import { StoreError, accountSettings } from '../store/store.ts';
import type { AuthResult } from '../net/types.ts';
import { decodeSaslPlain } from '../protocol/pop3/commands.ts';
import type { Pop3Command } from '../protocol/pop3/commands.ts';
import { continuationLine, errLine, multiLine, okLine } from '../protocol/pop3/responses.ts';
import type { Pop3Session } from './session.ts';
import { RECENT_PREFIX } from './snapshot.ts';

/** Failed logins on one connection before it is closed. */
const MAX_AUTH_FAILURES = 5;

/** The account's POP settings, defaults applied. */
type PopPolicy = ReturnType<typeof accountSettings>['pop'];

export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a); // linear: a socket address; anchored, disjoint parts
}

/** Plaintext credentials only over TLS, or from loopback when configured (RFC 2595 §2.3). */
export function plaintextAllowed(s: Pop3Session): boolean {
  return s.tls || (s.deps.config.allowPlaintextLoopback && isLoopback(s.remote));
}

function refusePlaintext(s: Pop3Session): void {
  s.send(errLine('Plaintext authentication is not allowed without TLS; use STLS first', 'AUTH'));
}

export function user(s: Pop3Session, cmd: Pop3Command): void {
  if (!plaintextAllowed(s)) return refusePlaintext(s);
  const name = cmd.rest.trim();
  if (!name) return void s.send(errLine('USER needs a user name'));
  s.user = name;
  s.send(okLine('Send your password with PASS'));
}

export async function pass(s: Pop3Session, cmd: Pop3Command): Promise<void> {
  if (!plaintextAllowed(s)) return refusePlaintext(s);
  if (s.user === null) return void s.send(errLine('Send USER before PASS'));
  const name = s.user;
  s.user = null;
  // The password is the rest of the line: it may contain spaces (RFC 1939 §7 leaves this open).
  const password = cmd.rest;
  if (!password) return void s.send(errLine('PASS needs a password'));
  await authenticate(s, name, password);
}

export function apop(s: Pop3Session): void {
  s.send(errLine('APOP is not supported; use USER/PASS or AUTH PLAIN over TLS'));
}

export async function auth(s: Pop3Session, cmd: Pop3Command): Promise<void> {
  if (cmd.args.length === 0) {
    // Pre-RFC 5034 clients list mechanisms with a bare AUTH.
    s.send(multiLine('Supported SASL mechanisms follow', plaintextAllowed(s) ? ['PLAIN'] : []));
    return;
  }
  const mech = cmd.args[0]!.toUpperCase();
  if (mech !== 'PLAIN') return void s.send(errLine(`Unsupported SASL mechanism ${mech.slice(0, 40)}; use PLAIN`));
  if (!plaintextAllowed(s)) return refusePlaintext(s);
  if (cmd.args.length > 2) return void s.send(errLine('AUTH PLAIN takes at most one initial response'));
  const initial = cmd.args[1];
  if (initial === undefined) {
    // RFC 5034 §4: empty server challenge, the client answers on the next line.
    s.saslPending = true;
    s.send(continuationLine());
    return;
  }
  // RFC 5034 §4: "=" is an empty initial response, which PLAIN cannot use.
  await saslResponse(s, initial === '=' ? '' : initial);
}

/** The SASL PLAIN response, as an initial response or on the line after "+ " (RFC 5034 §4). */
export async function saslResponse(s: Pop3Session, b64: string): Promise<void> {
  if (b64 === '*') return void s.send(errLine('Authentication cancelled')); // RFC 5034 §4
  const plain = decodeSaslPlain(b64);
  if (!plain) return void s.send(errLine('Malformed SASL PLAIN response (expected base64 of authzid NUL authcid NUL password)'));
  if (plain.authzid && plain.authzid.toLowerCase() !== plain.authcid.toLowerCase()) {
    s.send(errLine('Authorization identity must be empty or equal to the authentication identity', 'AUTH'));
    return;
  }
  await authenticate(s, plain.authcid, plain.password);
}

/** Checks the password, then opens the maildrop: TRANSACTION state and +OK, or an -ERR. */
async function authenticate(s: Pop3Session, loginName: string, password: string): Promise<void> {
  let name = loginName.trim();
  let recent = false;
  if (name.toLowerCase().startsWith(RECENT_PREFIX)) {
    recent = true;
    name = name.slice(RECENT_PREFIX.length);
  }
  const res = await s.deps.auth.login(name, password, s.remote);
  if (s.state !== 'authorization') return;
  if (!res.ok) return loginFailed(s, name, res);
  const account = res.account;
  const settings = accountSettings(account).pop;
  const lock = await admit(s, account, settings.enabled, recent);
  if (!lock) return;
  if (s.state !== 'authorization') {
    lock.release?.(); // the connection closed while the lock was being taken
    return;
  }
  if (!(await openMaildrop(s, account, settings, recent, lock.release))) return;
  if (s.state !== 'authorization') return;
  s.state = 'transaction';
  s.clearPreauthTimeout();
  s.deps.log.info('pop3.login', {
    protocol: 'pop3',
    session: s.id,
    user: account.address,
    ip: s.remote,
    recent,
    messages: s.drop.messages.length,
  });
  const { count, size } = s.drop.totals();
  s.send(okLine(`Logged in; ${count} message${count === 1 ? '' : 's'} (${size} octets)${recent ? ', recent mode' : ''}`));
}

function loginFailed(s: Pop3Session, name: string, res: AuthResult & { ok: false }): void {
  s.authFailures++;
  s.deps.log.info('pop3.login-failed', { protocol: 'pop3', session: s.id, user: name.slice(0, 200), ip: s.remote, reason: res.reason });
  // RFC 3206 §4: SYS/TEMP, a condition that goes away by itself; the client should retry later.
  if (res.reason === 'throttled' || res.reason === 'busy') s.send(errLine(res.message || 'Too many failed logins; try again later', 'SYS/TEMP'));
  else if (res.reason === 'disabled') s.send(errLine(res.message || 'This account is disabled', 'AUTH'));
  else s.send(errLine('Authentication failed: wrong user name or password', 'AUTH'));
  if (s.authFailures >= MAX_AUTH_FAILURES) {
    s.send(errLine('Too many failed logins on this connection; closing'));
    s.end();
  }
}

/**
 * The account's POP policy (POP enabled) and the maildrop lock. Returns the lock's release (null
 * in recent mode), or null after sending the -ERR.
 */
async function admit(s: Pop3Session, account: Account, enabled: boolean, recent: boolean): Promise<{ release: (() => void) | null } | null> {
  if (!enabled) {
    s.deps.log.info('pop3.login-failed', { protocol: 'pop3', session: s.id, user: account.address, ip: s.remote, reason: 'pop-disabled' });
    s.send(errLine('POP is disabled for this account; use IMAP, or ask the administrator to enable POP', 'AUTH'));
    return null;
  }
  // RFC 2449 §8.1.2: one maildrop lock per account. Recent-mode sessions delete nothing, so
  // they neither take nor respect the lock.
  if (recent) return { release: null };
  const release = await s.deps.connections.acquire('pop3', account.id, 1);
  if (!release) {
    if (s.state !== 'authorization') return null;
    s.deps.log.info('pop3.login-failed', { protocol: 'pop3', session: s.id, user: account.address, ip: s.remote, reason: 'in-use' });
    s.send(errLine('Another POP3 session of this account is open; try again when it ends', 'IN-USE'));
    return null;
  }
  return { release };
}

/**
 * Subscribes to the account's changes and takes the snapshot. False when the connection closed
 * while it waited (the session is cleaned up). On an error, the lock and subscription are released.
 */
async function openMaildrop(s: Pop3Session, account: Account, settings: PopPolicy, recent: boolean, release: (() => void) | null): Promise<boolean> {
  try {
    const inbox = await s.store.getMailbox(account.id, 'INBOX');
    if (!inbox) throw new StoreError('not-found', 'INBOX missing');
    const unsubscribe = s.store.bus.subscribe(account.id, (changes) => s.onChanges(changes));
    s.login = {
      account,
      inbox,
      recent,
      deleteAction: settings.deleteAction,
      markSeen: settings.markSeen,
      release,
      unsubscribe,
      modseqAtLogin: inbox.highestModseq,
    };
    if (s.state !== 'authorization') {
      // The connection closed while we waited.
      s.cleanup();
      return false;
    }
    await s.drop.load(s.store, inbox, settings.showSince, recent);
    return true;
  } catch (err) {
    release?.();
    s.login?.unsubscribe();
    s.login = null;
    throw err;
  }
}
