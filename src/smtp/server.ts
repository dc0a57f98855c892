// SMTP: MX (25), submission (587, STARTTLS then AUTH), submissions (465, implicit TLS) and LMTP
// (RFC 2033, src/lmtp/server.ts). The protocol engine is the `smtp-server` package; Pillarbox
// supplies the policy (who may send what to whom) and the delivery (stream the body into the store
// once, add it to every recipient's mailbox or the outbound queue, answer 250 only after the store
// has committed). Pieces: connection.ts (our connection class), recipients.ts (RCPT), policy.ts
// (From: check, send limits), receive.ts (DATA), deliver.ts (end of DATA).
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
// - At the end of DATA every target account is checked again with the real size while holding an
//   in-process lock per account up to the store's commit, so concurrent sessions never overfill a
//   mailbox. The accounts that fit get the message; for each one that does not (or that the store
//   refuses because a write from another process raced us), the sender gets a DSN (RFC 3464,
//   action failed, 5.2.2 "mailbox full — returned to sender"; 5.2.3 if it can never fit) in their
//   INBOX when the sender is ours, else through the outbound queue; never to <> and not where
//   NOTIFY excludes FAILURE (RFC 3461). The reply is 250, after the deliveries and the DSN are
//   durable. Only when nobody at all can take the message, or a remote sender could not be told
//   (no outbound queue), the whole message gets 452 4.2.2 (552 5.2.2 if it can never fit) and
//   nothing is delivered: the sending server retries or bounces itself. An alias whose targets
//   include a full mailbox is delivered to its other targets the same way.
// - LMTP (RFC 2033 §4.2): one reply per RCPT; a RCPT whose mailboxes do not all fit gets 452/552
//   and none of them gets the message (no DSN: the MTA in front tells the sender).
// - Other domains (submission) and alias targets outside go through deps.outbound before the 250
//   (one queue entry for the remote recipients, one for forwards, whose envelope sender is
//   rewritten with SRS); without deps.outbound such recipients get 451 at RCPT.
// - Submission: MAIL FROM and every From: address must be the user's (or resolve to them), else
//   553/550 5.7.1; per-account send limits (policy.ts) give 450 4.7.1. DSN (RFC 3461) is offered
//   on submission only: NOTIFY/ORCPT/RET/ENVID go to the queue with the message.
// - MX with deps.inbound (config.mailAuth): the message is checked whole (SPF, DKIM, DMARC) before
//   it is stored: reject → 550 at the end of DATA, junk → each recipient's \Junk mailbox; its
//   Authentication-Results field goes on top and such fields from outside claiming our hostname
//   are removed.

import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import type { ConnectionInfo, ProtocolServer, ServerDeps } from '../net/types.ts';
import { isLoopback } from '../protocol/smtp/address.ts';
import { Srs } from '../protocol/smtp/srs.ts';
import {
  ALWAYS_DISABLED,
  DataAborted,
  LiveContextMap,
  PillarboxSmtpServer,
  SmtpError,
  shuttingDown,
  type Hooks,
  type PillarboxConnection,
  type SmtpKind,
} from './connection.ts';
import { Resolver } from './resolve.ts';
import { RecipientPolicy } from './recipients.ts';
import { SendLimiter } from './policy.ts';
import { Deliverer } from './deliver.ts';
import { SessionHandlers, type SessionContext } from './session.ts';

export type { SmtpKind } from './connection.ts';

export interface SmtpServerOptions {
  /** LMTP: may this address connect? (src/lmtp/server.ts) */
  allowConnect?: (ip: string) => boolean;
}

export function createSmtpServer(deps: ServerDeps, kind: SmtpKind, opts: SmtpServerOptions = {}): ProtocolServer {
  const { config, log } = deps;
  const limits = config.limits;
  const resolver = new Resolver(deps.store, {
    hostname: config.hostname,
    postmaster: config.postmaster ?? null,
    onFallback: (address) => log.warn('smtp.postmaster-fallback', { account: address, hint: 'set a postmaster@ alias or the postmaster setting' }),
  });
  // Tests that build deps by hand may leave the secret unset: then one per process (forwards sent
  // by this process only can be reversed). main.ts always sets a persistent one.
  const srs = new Srs(config.srsSecret ?? processSecret());
  const ctx: SessionContext = {
    deps,
    kind,
    resolver,
    recipients: new RecipientPolicy(resolver, srs, config.hostname),
    limiter: kind === 'submission' || kind === 'submissions' ? sharedLimiter(limits) : null,
    deliverer: new Deliverer({ store: deps.store, log, hostname: config.hostname, resolver, srs, outbound: deps.outbound }),
    inflight: new Set(),
    closing: false,
    plaintextAuthOk: (ip) => config.allowPlaintextLoopback && isLoopback(ip),
    allowConnect: opts.allowConnect,
  };
  const h = new SessionHandlers(ctx);
  const requireAuth = kind === 'submission' || kind === 'submissions';
  const hooks: Hooks = {
    kind,
    requireAuth,
    preauthTimeout: limits.preauthTimeout,
    closing: () => ctx.closing,
    authRefusal(conn) {
      if (!requireAuth) return { code: 502, text: '5.5.1 AUTH is not offered on this port; submit mail on port 587 or 465' };
      // RFC 3207 §4 / RFC 4954 §4: no credentials over a cleartext channel.
      if (!conn.secure && !ctx.plaintextAuthOk(conn.remoteAddress)) return { code: 530, text: '5.7.0 Must issue a STARTTLS command first' };
      return null;
    },
  };

  const options: SMTPServerOptions = {
    secure: kind === 'submissions',
    name: config.hostname,
    banner: 'Pillarbox',
    key: deps.tls.key,
    cert: deps.tls.cert,
    lmtp: kind === 'lmtp',
    // RFC 1870: advertise the limit; SIZE= above it gets 552 5.3.4 at MAIL FROM, and a body that
    // goes past it is discarded (never stored) and answered 552.
    size: limits.maxMessageSize,
    rejectOversized: true,
    hideENHANCEDSTATUSCODES: false,
    // RFC 3461 on submission, where the queue honours it; the MX and LMTP deliver locally.
    hideDSN: !requireAuth,
    hideREQUIRETLS: true,
    // LMTP runs on loopback / trusted addresses behind an MTA: no TLS there.
    hideSTARTTLS: kind === 'lmtp',
    authMethods: ['PLAIN', 'LOGIN'],
    // Policy is enforced in onMailFrom (submission requires AUTH); where AUTH is offered is decided
    // per session through session.disabledCommands.
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: requireAuth ? ALWAYS_DISABLED : ['AUTH', ...ALWAYS_DISABLED],
    disableReverseLookup: true,
    logger: false,
    maxRecipients: limits.maxRecipients,
    socketTimeout: limits.smtpTimeout,
    closeTimeout: 1000,
    onConnect: (session, cb) => h.onConnect(session, cb),
    onSecure: (socket, session, cb) => h.onSecure(socket as TLSSocket, session, cb),
    onAuth: (auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, r?: SMTPServerAuthenticationResponse) => void) =>
      h.onAuth(auth, session, cb),
    onMailFrom: (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) => h.onMailFrom(address, session, cb),
    onRcptTo: (address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) => h.onRcptTo(address, session, cb),
    // LMTP: smtp-server takes an array (one reply per RCPT) in place of the message text.
    onData: (stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) =>
      h.onData(stream, session, cb as (err?: Error | null, message?: string | Array<string | Error>) => void),
    onClose: (session: SMTPServerSession) => h.onClose(session),
  };
  return bindServer(ctx, options, hooks);
}

/** The SMTPServer with our connection class, and the ProtocolServer main.ts binds to listeners. */
function bindServer(ctx: SessionContext, options: SMTPServerOptions, hooks: Hooks): ProtocolServer {
  const { config, log } = ctx.deps;
  const smtp = new PillarboxSmtpServer(options);
  smtp.hooks = hooks;
  smtp.secureContext = new LiveContextMap(ctx.deps.tls);
  smtp.on('error', (err: Error) => log.debug('smtp.connection-error', { listener: ctx.kind, error: err }));
  /** Connections live when shutdown began (new ones are refused from then on). */
  let leaving: PillarboxConnection[] = [];

  const refuse = (socket: Socket, line: string) => {
    socket.on('error', () => {});
    socket.end(line + '\r\n');
    setTimeout(() => socket.destroy(), 2000).unref();
  };

  return {
    // Connection limits (per listener, per IP) are the listener's (src/net/listener.ts).
    handle(socket: Socket | TLSSocket, info: ConnectionInfo) {
      if (ctx.closing) return refuse(socket, `421 ${shuttingDown(config.hostname)}`);
      // The client's address (a PROXY protocol header's, src/net/listener.ts) becomes the
      // session's remoteAddress: Received field, SPF, logins, logs.
      smtp.connect(socket, info.remoteAddress ? { remoteAddress: info.remoteAddress, remotePort: info.remotePort } : null);
    },

    async close() {
      ctx.closing = true;
      leaving = [...smtp.connections] as PillarboxConnection[];
      await Promise.all(leaving.map((c) => c.shutdown()));
    },

    abort() {
      for (const c of leaving) void c.shutdown(true);
    },

    async settled() {
      // Deliveries that reached the store finish (and answer, if the client is still there).
      await Promise.allSettled([...ctx.inflight]);
    },
  };
}

/** Send limits are per account across both submission ports (587 and 465). */
const limiters = new WeakMap<object, SendLimiter>();
function sharedLimiter(limits: ServerDeps['config']['limits']): SendLimiter {
  let l = limiters.get(limits);
  if (!l) limiters.set(limits, (l = new SendLimiter(limits)));
  return l;
}

let secret: string | null = null;
function processSecret(): string {
  secret ??= randomBytes(32).toString('base64url');
  return secret;
}

export { SmtpError, DataAborted };
