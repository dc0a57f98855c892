// SMTP: MX (25), submission (587, STARTTLS then AUTH) and submissions (465, implicit TLS).
// The protocol engine is the `smtp-server` package; Pillarbox supplies the policy (who may send
// what to whom) and the delivery (stream the body into the store once, add it to every recipient's
// mailbox, answer 250 only after the store has committed).
//
// Sockets are accepted by main.ts and handed over through SMTPServer#connect(), which takes an
// already-accepted socket (a TLSSocket whose handshake is done for 465).
//
// Decisions documented here:
// - Message bytes are stored exactly as received after dot-unstuffing (RFC 5321 §4.5.2): bare LF,
//   bare CR and over-long lines are neither rewritten nor refused. Only CRLF.CRLF ends DATA, so a
//   bare-LF "dot line" can't end a message early ("SMTP smuggling"); the prepended Return-Path and
//   Received fields use CRLF.
// - A recipient is resolved once, at RCPT time; a mailbox that is full then gets 452 4.2.2 (552
//   5.2.2 if the declared SIZE alone is above its quota) and only that recipient is refused.
// - An alias resolving to several accounts is accepted or refused as a whole (never half-delivered).
// - At the end of DATA every target account is checked again with the real size while holding an
//   in-process lock per account up to the store's commit, so concurrent sessions never overfill a
//   mailbox and the answer is exact. If a target no longer fits then, nothing is delivered and the
//   whole message gets 452 4.2.2 (552 5.2.2 if it can never fit): the sender retries or bounces, and
//   no recipient gets a copy another did not. If the store itself refuses a target (a write from
//   another process or an IMAP APPEND raced us) after others were committed, the answer is still
//   452: a retry may duplicate the message for the others, which RFC 5321 §6.1 prefers to losing it.

import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket, SecureContext } from 'node:tls';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { ConnectionInfo, ProtocolServer, ServerDeps, TlsProvider } from '../net/types.ts';
import { deferred, flushedOrClosed } from '../net/drain.ts';
import type { Account, NewMessage, StagedBlob } from '../store/store.ts';
import { addressKey, isLoopback } from '../protocol/smtp/address.ts';
import { formatReceived, formatReturnPath, ReceivedCounter } from '../protocol/smtp/trace.ts';
import { Resolver, type LocalTarget, type Resolution } from './resolve.ts';
import { KeyedLocks } from './locks.ts';
import { createMetaSink } from './meta.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';

export type SmtpKind = 'mx' | 'submission' | 'submissions';

/** Commands nobody needs (sendmail jokes in smtp-server). */
const ALWAYS_DISABLED = ['WIZ', 'SHELL', 'KILL'];
/** Commands an unauthenticated client may send on a submission port before it is disconnected. */
const MAX_UNAUTHENTICATED_COMMANDS = 20;
/** A reply text that already carries an RFC 3463 enhanced status code. */
const HAS_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
/** The 421 text at shutdown (RFC 5321 §3.8, §4.2.3 "<domain> Service not available"; RFC 3463 4.3.2 system not accepting messages). */
const shuttingDown = (hostname: string) => `4.3.2 ${hostname} Service shutting down`;

/** The client's DATA ended without its final dot: the connection went away (or was closed at shutdown). */
class DataAborted extends Error {
  readonly received: number;
  constructor(received: number) {
    super('connection closed during DATA');
    this.received = received;
  }
}

interface SessionState {
  tls: { version: string; cipher: string } | null;
  /** SIZE= of the current MAIL FROM (RFC 1870), 0 if not given. */
  declaredSize: number;
  /** Lower-cased RCPT address → where it resolved (current transaction only). */
  rcpts: Map<string, LocalTarget[]>;
}

interface Hooks {
  kind: SmtpKind;
  /** limits.preauthTimeout: a submission connection must authenticate within this (ms, 0: no limit). */
  preauthTimeout: number;
  closing(): boolean;
  /** The reply for an AUTH command this session may not use, or null if AUTH may proceed. */
  authRefusal(conn: SMTPConnection): { code: number; text: string } | null;
}

class SmtpError extends Error {
  readonly responseCode: number;
  constructor(responseCode: number, message: string) {
    super(message);
    this.responseCode = responseCode;
  }
}

/** The connection of a session (the library hands handlers the session only). */
const connections = new WeakMap<SMTPServerSession, SMTPConnection>();

/** Connection with Pillarbox's reply texts: enhanced codes chosen by us where the library's default mapping is wrong. */
class PillarboxConnection extends SMTPConnection {
  #unauthenticated = 0;
  /** Set by shutdown(): a 421 follows the reply in progress. */
  #leaving = false;
  readonly #gone = deferred();

  constructor(server: SMTPServer, socket: Socket | TLSSocket, options?: SMTPConnectionOptions | null) {
    super(server, socket, options);
    connections.set(this.session, this);
    // Submission: the idle timeout (socketTimeout) restarts at every command, so a client that
    // never authenticates is also closed after preauthTimeout from connecting (421 closes).
    const hooks = (server as PillarboxSmtpServer).hooks;
    if (hooks.kind !== 'mx' && hooks.preauthTimeout > 0) {
      setTimeout(() => {
        if (!this.session.user) this.send(421, '4.7.0 Authentication timeout; closing connection');
      }, hooks.preauthTimeout).unref();
    }
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    // RFC 2034 §3: our texts start with the right enhanced code already; don't add a second one.
    if (typeof data === 'string' && HAS_ENHANCED.test(data)) super.send(code, data, false);
    else super.send(code, data, context);
    // Shutdown: once this reply ends the command or message in progress, the 421 follows it.
    if (this.#leaving && code !== 421) setImmediate(() => this.#goodbye(false));
  }

  /**
   * Server shutdown (RFC 5321 §3.8: a server may close with 421 at any time): 421 at once between
   * commands, else right after the reply to the command or message in progress, never before a
   * message being committed is answered. `force` (drain time over): also while the client is still
   * sending DATA, which is then not stored. Resolves once the 421 is flushed or the connection closed.
   */
  shutdown(force = false): Promise<void> {
    this.#leaving = true;
    this.#goodbye(force);
    return this.#gone.promise.then(() => flushedOrClosed(this._socket));
  }

  #goodbye(force: boolean): void {
    if (this._closing || this._closed || this._upgrading || this._handlerPending) return;
    if (this._dataStream && !(force && this._parser && this._parser._dataMode)) return;
    this.send(421, shuttingDown(this.name));
  }

  override close(): void {
    super.close();
    this.#gone.resolve();
  }

  override _onClose(): void {
    super._onClose();
    this.#gone.resolve();
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    const hooks = (this._server as PillarboxSmtpServer).hooks;
    if (!this._nextHandler && this._ready && !this._upgrading) {
      const name = (command.toString('latin1').trim().split(/\s+/)[0] ?? '').toUpperCase(); // linear: one class
      const next = () => this._whenWritable(callback ?? (() => {}));
      if (hooks.closing() && name !== 'QUIT') {
        this.send(421, shuttingDown(this.name));
        return;
      }
      // Submission ports: a client that doesn't authenticate gets a bounded number of commands
      // (what smtp-server does itself when AUTH is mandatory; AUTH attempts are the authenticator's
      // to throttle).
      if (hooks.kind !== 'mx' && !this.session.user && name !== 'AUTH' && name !== 'QUIT') {
        this.#unauthenticated++;
        if (this.#unauthenticated > MAX_UNAUTHENTICATED_COMMANDS) {
          this.send(421, '4.7.0 Too many commands without authentication; closing connection');
          return;
        }
      }
      if (name === 'AUTH') {
        const refusal = hooks.authRefusal(this);
        if (refusal) {
          this.send(refusal.code, refusal.text);
          setImmediate(next);
          return;
        }
      }
    }
    super._onCommand(command, callback);
  }
}

class PillarboxSmtpServer extends SMTPServer {
  hooks!: Hooks;

  override connect(socket: Socket | TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    // Same as SMTPServer#connect, with our connection class.
    const connection = new PillarboxConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }
}

/** The library asks its secure-context map for '*' at every STARTTLS; answer with the current certificate. */
class LiveContextMap extends Map<string, SecureContext> {
  private readonly tls: TlsProvider;
  constructor(tls: TlsProvider) {
    super();
    this.tls = tls;
  }
  override get(_key: string): SecureContext {
    return this.tls.context;
  }
}

export function createSmtpServer(deps: ServerDeps, kind: SmtpKind): ProtocolServer {
  const { store, config, log } = deps;
  const limits = config.limits;
  const resolver = new Resolver(store, {
    hostname: config.hostname,
    postmaster: config.postmaster ?? null,
    onFallback: (address) => log.warn('smtp.postmaster-fallback', { account: address, hint: 'set a postmaster@ alias or the postmaster setting' }),
  });
  const locks = new KeyedLocks();
  const states = new WeakMap<SMTPServerSession, SessionState>();
  const inflight = new Set<Promise<unknown>>();
  /** Connections live when shutdown began (new ones are refused from then on). */
  let leaving: PillarboxConnection[] = [];
  let closing = false;

  const state = (session: SMTPServerSession): SessionState => {
    let s = states.get(session);
    if (!s) states.set(session, (s = { tls: null, declaredSize: 0, rcpts: new Map() }));
    return s;
  };
  /** AUTH over plaintext only where the config allows it for loopback peers (tests, local tools). */
  const plaintextAuthOk = (remoteAddress: string) => config.allowPlaintextLoopback && isLoopback(remoteAddress);
  const account = (session: SMTPServerSession): Account | null => (session.user ? (session.user as Account) : null);

  const hooks: Hooks = {
    kind,
    preauthTimeout: limits.preauthTimeout,
    closing: () => closing,
    authRefusal(conn) {
      if (kind === 'mx') return { code: 502, text: '5.5.1 AUTH is not offered on this port; submit mail on port 587 or 465' };
      // RFC 3207 §4 / RFC 4954 §4: no credentials over a cleartext channel.
      if (!conn.secure && !plaintextAuthOk(conn.remoteAddress)) return { code: 530, text: '5.7.0 Must issue a STARTTLS command first' };
      return null;
    },
  };

  const options: SMTPServerOptions = {
    secure: kind === 'submissions',
    name: config.hostname,
    banner: 'Pillarbox',
    key: deps.tls.key,
    cert: deps.tls.cert,
    // RFC 1870: advertise the limit; SIZE= above it gets 552 5.3.4 at MAIL FROM, and a body that
    // goes past it is discarded (never stored) and answered 552.
    size: limits.maxMessageSize,
    rejectOversized: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    authMethods: ['PLAIN', 'LOGIN'],
    // Policy is enforced in onMailFrom (submission requires AUTH); where AUTH is offered is decided
    // per session through session.disabledCommands.
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: kind === 'mx' ? ['AUTH', ...ALWAYS_DISABLED] : ALWAYS_DISABLED,
    disableReverseLookup: true,
    logger: false,
    maxRecipients: limits.maxRecipients,
    socketTimeout: limits.smtpTimeout,
    closeTimeout: 1000,

    onConnect(session, callback) {
      state(session);
      if (closing) return callback(new SmtpError(421, shuttingDown(config.hostname)));
      // Submission on a cleartext connection: AUTH is neither advertised nor accepted until STARTTLS.
      if (kind === 'submission' && !plaintextAuthOk(session.remoteAddress)) session.disabledCommands = ['AUTH', ...ALWAYS_DISABLED];
      callback();
    },

    onSecure(socket, session, callback) {
      const tlsSocket = socket as TLSSocket;
      const cipher = typeof tlsSocket.getCipher === 'function' ? tlsSocket.getCipher() : null;
      state(session).tls = {
        version: (typeof tlsSocket.getProtocol === 'function' ? tlsSocket.getProtocol() : null) ?? 'TLS',
        cipher: cipher?.standardName ?? cipher?.name ?? 'unknown',
      };
      if (kind === 'submission') session.disabledCommands = ALWAYS_DISABLED;
      callback();
    },

    onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return callback(null, { responseCode: 504, message: '5.5.4 Unrecognized authentication type' });
      // RFC 4616 §2: we don't support acting as someone else; an authzid must name the same user.
      if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid.toLowerCase() !== auth.authcid.toLowerCase()) {
        return callback(null, { responseCode: 535, message: '5.7.8 Authorization identity must be the authentication identity' });
      }
      const username = auth.username ?? '';
      deps.auth.login(username, auth.password ?? '', session.remoteAddress).then(
        (r) => {
          if (r.ok) {
            log.info('smtp.login', { protocol: 'smtp', session: session.id, user: r.account.address, ip: session.remoteAddress, listener: kind });
            return callback(null, { user: r.account });
          }
          log.info('smtp.login-failed', { protocol: 'smtp', session: session.id, user: username, ip: session.remoteAddress, listener: kind, reason: r.reason });
          // RFC 4954 §6: 454 4.7.0 temporary failure; 535 5.7.8 invalid credentials.
          if (r.reason === 'throttled') return callback(null, { responseCode: 454, message: '4.7.0 Too many failed login attempts; try again later' });
          return callback(null, { responseCode: 535, message: '5.7.8 Authentication credentials invalid' });
        },
        (err: unknown) => {
          log.error('smtp.auth-error', { session: session.id, error: err instanceof Error ? err : String(err) });
          callback(null, { responseCode: 454, message: '4.7.0 Temporary authentication failure' });
        },
      );
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      const st = state(session);
      st.rcpts = new Map();
      const size = address.args && typeof address.args.SIZE === 'string' ? Number(address.args.SIZE) : 0;
      st.declaredSize = Number.isSafeInteger(size) && size > 0 ? size : 0;
      run(callback, async () => {
        if (kind === 'mx') return;
        const user = account(session);
        if (!user) {
          // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
          if (!session.secure && !plaintextAuthOk(session.remoteAddress)) throw new SmtpError(530, '5.7.0 Must issue a STARTTLS command first');
          throw new SmtpError(530, '5.7.0 Authentication required');
        }
        if (address.address === '') return; // null reverse-path: not anyone's address
        if (!(await ownsAddress(user, address.address))) {
          log.info('smtp.sender-refused', { session: session.id, user: user.address, from: address.address, ip: session.remoteAddress, code: 553 });
          throw new SmtpError(553, `5.7.1 <${address.address}>: sender address not owned by ${user.address}`);
        }
      });
    },

    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      const st = state(session);
      /** A refused recipient: one log line (smtp.rcpt-refused), then the reply. */
      const refuse = (code: number, text: string, reason: string, rcpt = address.address) => {
        log.info('smtp.rcpt-refused', {
          session: session.id,
          listener: kind,
          ip: session.remoteAddress,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address || '<>' : undefined,
          to: rcpt,
          user: account(session)?.address,
          code,
          reason,
        });
        return new SmtpError(code, text);
      };
      run(callback, async () => {
        let rcpt = address.address;
        let res: Resolution;
        if (rcpt.toLowerCase() === 'postmaster') {
          // RFC 5321 §4.1.1.3 / §4.5.1: the domainless "postmaster" must be accepted (resolve.ts).
          ({ res, address: rcpt } = await resolver.postmaster());
        } else {
          res = await resolver.resolve(rcpt);
        }
        if (res.kind === 'not-hosted') {
          if (!account(session)) throw refuse(554, `5.7.1 <${rcpt}>: Relay access denied`, 'relay-denied', rcpt);
          // Authenticated mail to another domain waits for the outbound queue (a later issue).
          throw refuse(451, `4.3.2 <${rcpt}>: delivery to other domains is not available yet; try again later`, 'no-outbound', rcpt);
        }
        if (res.kind === 'unknown') throw refuse(550, `5.1.1 <${rcpt}>: no such user here`, 'unknown-user', rcpt);
        if (res.external.length > 0) {
          throw refuse(451, `4.3.2 <${rcpt}>: forwards to other domains, which is not available yet; try again later`, 'external-forward', rcpt);
        }
        for (const t of res.targets) {
          const q = t.account.quota;
          if (q <= 0) continue;
          if (st.declaredSize > q) throw refuse(552, `5.2.2 <${rcpt}>: message is larger than the mailbox quota`, 'over-quota', rcpt);
          if (t.account.usedBytes >= q || t.account.usedBytes + st.declaredSize > q) {
            throw refuse(452, `4.2.2 <${rcpt}>: mailbox full`, 'over-quota', rcpt);
          }
        }
        st.rcpts.set(addressKey(address.address), res.targets);
      });
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void) {
      const p = receive(stream, session).then(
        (message) => callback(null, message),
        (err: unknown) => {
          if (err instanceof SmtpError) return callback(err);
          if (err instanceof DataAborted) {
            // Nobody is left to answer; nothing was stored.
            log.info('smtp.data-aborted', { session: session.id, received: err.received, shutdown: closing || undefined });
            return callback(new SmtpError(451, '4.3.0 Message not received in full'));
          }
          log.error('smtp.data-error', { session: session.id, error: err instanceof Error ? err : String(err) });
          callback(new SmtpError(451, '4.3.0 Local error in processing; try again later'));
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    },

    onClose(session: SMTPServerSession) {
      states.delete(session);
    },
  };

  /** Calls back with nothing, or with the SmtpError the body threw (others become 451). */
  function run(callback: (err?: Error | null) => void, body: () => Promise<void>): void {
    body().then(
      () => callback(),
      (err: unknown) => {
        if (err instanceof SmtpError) return callback(err);
        log.error('smtp.error', { error: err instanceof Error ? err : String(err) });
        callback(new SmtpError(451, '4.3.0 Local error in processing; try again later'));
      },
    );
  }

  /** After AUTH, MAIL FROM must be the user's address or one that resolves to them (alias, +tag, catch-all). */
  async function ownsAddress(user: Account, from: string): Promise<boolean> {
    if (addressKey(from) === user.address) return true;
    const res = await resolver.resolve(from);
    return res.kind === 'local' && res.targets.some((t) => t.account.id === user.id);
  }

  /** DATA: stream to the store and the MIME parser, check, deliver; resolves to the 250 text. */
  async function receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const st = state(session);
    const env = session.envelope;
    const from = env.mailFrom ? env.mailFrom.address : '';
    const rcpts = env.rcptTo.map((r) => r.address);
    // One message per account, first recipient's mailbox choice wins (adam and adam+work → one copy).
    const targets: LocalTarget[] = [];
    const seenAccounts = new Set<number>();
    for (const r of rcpts) {
      for (const t of st.rcpts.get(addressKey(r)) ?? []) {
        if (seenAccounts.has(t.account.id)) continue;
        seenAccounts.add(t.account.id);
        targets.push(t);
      }
    }
    const id = `${session.id}.${session.transaction}`;
    const prefix = Buffer.from(
      formatReturnPath(from) +
        formatReceived({
          helo: session.hostNameAppearsAs || null,
          clientHostname: session.clientHostname || null,
          remoteAddress: session.remoteAddress,
          hostname: config.hostname,
          protocol: session.transmissionType || 'ESMTP',
          id,
          tls: st.tls,
          forRecipient: rcpts.length === 1 ? rcpts[0]! : null,
          date: new Date(),
        }),
      'utf8',
    );

    const max = limits.maxMessageSize;
    const counter = new ReceivedCounter();
    const meta = createMetaSink();
    const out = new PassThrough({ highWaterMark: 256 * 1024 });
    // The store starts reading `out` only after an await (its temporary file): a DATA cut off
    // before then destroys `out` with an error nobody listened to yet, which ended the process.
    // The staging still sees that error (a destroyed stream's iterator throws it).
    out.on('error', () => {});
    let received = 0;
    let oversize = false;
    let failed = false;

    meta.write(prefix);
    out.write(prefix);
    const staging = store.stageBlob(out, { maxBytes: max + prefix.length });
    // Whatever happens to the staging, the client's DATA must be read to its end.
    const stop = () => {
      failed = true;
      stream.resume();
    };
    staging.catch(stop);
    out.on('close', () => stream.resume());

    // RFC 5321 §4.5.3.2.6 (DATA termination, 10 minutes): the whole transfer has a deadline of
    // twice the idle timeout, so a client trickling bytes can't hold a session forever.
    const deadline = setTimeout(() => {
      log.info('smtp.data-timeout', { session: session.id, received });
      const conn = connections.get(session);
      conn?.send(421, '4.4.2 Message transfer took too long; closing connection');
      conn?._socket.destroy();
    }, 2 * limits.smtpTimeout);
    deadline.unref();

    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (oversize || failed) return;
        if (received > max) {
          // RFC 1870 §6.3: refuse with 552 after the data; don't store any of it.
          oversize = true;
          out.destroy();
          return;
        }
        counter.write(chunk);
        meta.write(chunk);
        if (!out.write(chunk)) {
          stream.pause();
          out.once('drain', () => stream.resume());
        }
      });
      stream.once('end', () => {
        if (!oversize && !failed) out.end();
        resolve();
      });
      // The data stream errs (or is destroyed without an error) only when the connection goes away
      // before the final dot: never an 'end' then.
      const aborted = () => {
        out.destroy(new Error('DATA aborted'));
        reject(new DataAborted(received));
      };
      stream.once('error', aborted);
      stream.once('close', () => {
        if (!stream.readableEnded) aborted();
      });
    });

    let blob: StagedBlob | null = null;
    try {
      await ended;
      blob = await staging.catch(() => null);
      if (oversize) throw new SmtpError(552, `5.3.4 Message exceeds the fixed maximum message size of ${max} bytes`);
      if (!blob) throw new SmtpError(451, '4.3.0 Local error in processing; try again later');
      // RFC 5321 §6.3: a message that went through too many hops is looping.
      if (counter.count > limits.maxHops) {
        log.info('smtp.loop', { session: session.id, hops: counter.count });
        throw new SmtpError(554, `5.4.6 Too many hops (${counter.count} Received headers): mail loop?`);
      }
      const m = meta.end();
      return await deliver(blob, m, targets, session, from, id);
    } finally {
      clearTimeout(deadline);
      // Unpin the staged body whatever happened (also if staging finished after a failure).
      if (blob) blob.release();
      else staging.then((b) => b.release(), () => {});
    }
  }

  async function deliver(blob: StagedBlob, m: MessageMeta, targets: LocalTarget[], session: SMTPServerSession, from: string, id: string): Promise<string> {
    if (targets.length === 0) throw new SmtpError(554, '5.5.1 No valid recipients');
    const unlock = await locks.acquire(targets.map((t) => t.account.id));
    try {
      // The real size is known now: check every account again under the lock (see the header note).
      let temporary = false;
      const full: string[] = [];
      for (const t of targets) {
        const a = await store.getAccountById(t.account.id);
        if (!a) throw new SmtpError(451, '4.3.0 A recipient account disappeared; try again later');
        if (a.quota > 0 && a.usedBytes + blob.size > a.quota) {
          full.push(a.address);
          if (blob.size <= a.quota) temporary = true;
        }
      }
      if (full.length) {
        log.info('smtp.quota', { session: session.id, ip: session.remoteAddress, accounts: full.join(','), size: blob.size, code: temporary ? 452 : 552 });
        if (temporary) throw new SmtpError(452, `4.2.2 Mailbox full: ${full.join(', ')}`);
        throw new SmtpError(552, `5.2.2 Message is larger than the mailbox quota: ${full.join(', ')}`);
      }
      const newMessages: NewMessage[] = targets.map((t) => ({ mailboxId: t.mailboxId }));
      let results = await store.deliver(blob, m, newMessages, { origin: 'smtp' });
      // A plus-address folder deleted since RCPT: fall back to INBOX.
      const missing = results.filter((r) => !r.ok && r.reason === 'no-mailbox');
      if (missing.length) {
        const retry: NewMessage[] = [];
        for (const r of missing) {
          const t = targets.find((x) => x.mailboxId === r.mailboxId);
          const inbox = t ? await store.getMailbox(t.account.id, 'INBOX') : null;
          if (inbox) retry.push({ mailboxId: inbox.id });
        }
        if (retry.length) results = [...results.filter((r) => r.ok || r.reason !== 'no-mailbox'), ...(await store.deliver(blob, m, retry, { origin: 'smtp' }))];
      }
      const ok = results.filter((r) => r.ok).length;
      const failed = results.length - ok;
      if (failed > 0) {
        log.warn('smtp.delivery-partial', { session: session.id, id, delivered: ok, failed });
        throw new SmtpError(452, '4.2.2 Mailbox full for a recipient; try again later');
      }
      log.info('smtp.delivered', {
        session: session.id,
        listener: kind,
        ip: session.remoteAddress,
        id,
        msgid: m.envelope.messageId ?? undefined,
        size: blob.size,
        from: from || '<>',
        to: session.envelope.rcptTo.map((r) => r.address),
        mailboxes: targets.map((t) => `${t.account.address}/${t.mailbox}`),
      });
      return `2.0.0 OK: delivered as ${id}`;
    } finally {
      unlock();
    }
  }

  const smtp = new PillarboxSmtpServer(options);
  smtp.hooks = hooks;
  smtp.secureContext = new LiveContextMap(deps.tls);
  smtp.on('error', (err: Error) => log.debug('smtp.connection-error', { listener: kind, error: err }));

  const refuse = (socket: Socket, line: string) => {
    socket.on('error', () => {});
    socket.end(line + '\r\n');
    setTimeout(() => socket.destroy(), 2000).unref();
  };

  return {
    // Connection limits (per listener, per IP) are the listener's (src/net/listener.ts).
    handle(socket: Socket | TLSSocket, _info: ConnectionInfo) {
      if (closing) return refuse(socket, `421 ${shuttingDown(config.hostname)}`);
      smtp.connect(socket);
    },

    async close() {
      closing = true;
      leaving = [...smtp.connections] as PillarboxConnection[];
      await Promise.all(leaving.map((c) => c.shutdown()));
    },

    abort() {
      for (const c of leaving) void c.shutdown(true);
    },

    async settled() {
      // Deliveries that reached the store finish (and answer, if the client is still there).
      await Promise.allSettled([...inflight]);
    },
  };
}
