// The smtp-server pieces Pillarbox subclasses: the connection (our reply texts, the preauth timeout,
// the unauthenticated-command cap, AUTH refusals, the 421 goodbye at shutdown), the server that
// creates it, the live certificate map, and the errors handlers throw.

import type { Socket } from 'node:net';
import type { TLSSocket, SecureContext } from 'node:tls';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { TlsProvider } from '../net/types.ts';
import { deferred, flushedOrClosed } from '../net/drain.ts';
import { activity, LoopBudget } from '../obs/loop-lag.ts';

export type SmtpKind = 'mx' | 'submission' | 'submissions' | 'lmtp';

/** Commands nobody needs (sendmail jokes in smtp-server). */
export const ALWAYS_DISABLED = ['WIZ', 'SHELL', 'KILL'];
/**
 * How long one connection's pipelined commands may run before the next one waits for an event-loop
 * turn (ms). smtp-server yields only after 100 commands that completed synchronously; our hooks
 * complete through already-resolved promises (microtasks), which it doesn't count, so a burst of
 * pipelined MAIL/RCPT/RSET ran ~0.1 ms each without a turn for anyone else (702 ms in the fuzzer).
 */
const COMMAND_SLICE_MS = 5;
/** Commands an unauthenticated client may send on a submission port before it is disconnected. */
const MAX_UNAUTHENTICATED_COMMANDS = 20;
/** A reply text that already carries an RFC 3463 enhanced status code. */
const HAS_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
/** The 421 text at shutdown (RFC 5321 §3.8, §4.2.3 "<domain> Service not available"; RFC 3463 4.3.2 system not accepting messages). */
export const shuttingDown = (hostname: string) => `4.3.2 ${hostname} Service shutting down`;

/** The client's DATA ended without its final dot: the connection went away (or was closed at shutdown). */
export class DataAborted extends Error {
  readonly received: number;
  constructor(received: number) {
    super('connection closed during DATA');
    this.received = received;
  }
}


export interface Hooks {
  kind: SmtpKind;
  /** Submission ports: AUTH required, so the preauth timeout and the unauthenticated-command cap apply. */
  requireAuth: boolean;
  /** limits.preauthTimeout: a submission connection must authenticate within this (ms, 0: no limit). */
  preauthTimeout: number;
  closing(): boolean;
  /** The reply for an AUTH command this session may not use, or null if AUTH may proceed. */
  authRefusal(conn: SMTPConnection): { code: number; text: string } | null;
}

export class SmtpError extends Error {
  readonly responseCode: number;
  constructor(responseCode: number, message: string) {
    super(message);
    this.responseCode = responseCode;
  }
}

/** The connection of a session (the library hands handlers the session only). */
export const connections = new WeakMap<SMTPServerSession, SMTPConnection>();

/** Connection with Pillarbox's reply texts: enhanced codes chosen by us where the library's default mapping is wrong. */
export class PillarboxConnection extends SMTPConnection {
  #unauthenticated = 0;
  /** Set by shutdown(): a 421 follows the reply in progress. */
  #leaving = false;
  readonly #gone = deferred();
  readonly #budget = new LoopBudget(COMMAND_SLICE_MS);
  /** Closes the activity label of the command in progress. */
  #doing: (() => void) | null = null;

  constructor(server: SMTPServer, socket: Socket | TLSSocket, options?: SMTPConnectionOptions | null) {
    super(server, socket, options);
    connections.set(this.session, this);
    // Submission: the idle timeout (socketTimeout) restarts at every command, so a client that
    // never authenticates is also closed after preauthTimeout from connecting (421 closes).
    const hooks = (server as PillarboxSmtpServer).hooks;
    if (hooks.requireAuth && hooks.preauthTimeout > 0) {
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
    this.#endDoing();
    this.#gone.resolve();
  }

  override _onClose(): void {
    super._onClose();
    this.#endDoing();
    this.#gone.resolve();
  }

  #endDoing(): void {
    this.#doing?.();
    this.#doing = null;
  }

  override _onCommand(command: Buffer, resume?: () => void): void {
    // The parser reads the next pipelined line when `resume` is called: past the slice, only after
    // a turn of the event loop. Input stays bounded meanwhile: the socket is piped into the parser,
    // which takes no more until resumed, and replies wait for 'drain' (_whenWritable).
    const hooks = (this._server as PillarboxSmtpServer).hooks;
    // What a stall report names (src/obs/loop-lag.ts): open until the command (DATA: the message) is answered.
    const label = this._nextHandler ? 'AUTH-response' : (command.toString('latin1', 0, 16).trim().split(' ')[0] ?? '').toUpperCase();
    this.#endDoing();
    this.#doing = activity.begin(`smtp.command=${label} listener=${hooks.kind} account=${(this.session.user as { address?: string } | undefined)?.address ?? '-'}`);
    const callback =
      resume &&
      (() => {
        this.#endDoing();
        void this.#budget.pause().then(resume);
      });
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
      if (hooks.requireAuth && !this.session.user && name !== 'AUTH' && name !== 'QUIT') {
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

export class PillarboxSmtpServer extends SMTPServer {
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
export class LiveContextMap extends Map<string, SecureContext> {
  private readonly tls: TlsProvider;
  constructor(tls: TlsProvider) {
    super();
    this.tls = tls;
  }
  override get(_key: string): SecureContext {
    return this.tls.context;
  }
}

