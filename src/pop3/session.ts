// One POP3 connection: RFC 1939 states (AUTHORIZATION → TRANSACTION → UPDATE), RFC 2449 CAPA and
// PIPELINING, RFC 2595 STLS, RFC 5034 AUTH PLAIN, and the per-account POP policy (issue #5).
//
// This file is the connection: socket plumbing, timers, the pipelined command loop with input and
// output backpressure, the state check per command, STLS, shutdown. The commands live in
// src/pop3/commands.ts (the table, CAPA), auth.ts (USER/PASS/AUTH, login), transaction.ts
// (STAT/LIST/UIDL/RETR/TOP/DELE/RSET/NOOP), update.ts (QUIT → UPDATE); the maildrop snapshot,
// POP policy and recent mode in snapshot.ts.
//
// The session works on a snapshot of INBOX taken at login. DELE only marks; the marks are applied
// in the UPDATE state after QUIT (RFC 1939 §6). A connection that ends any other way changes
// nothing. Messages another client expunges meanwhile stay numbered but are reported as gone.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { ServerDeps, ConnectionInfo } from '../net/types.ts';
import { deferred, flushedOrClosed } from '../net/drain.ts';
import type { Store } from '../store/store.ts';
import { POP_DELETED_KEYWORD } from '../store/store.ts';
import type { Change } from '../store/bus.ts';
import { COMMAND_STATES, LineSplitter, parseCommand } from '../protocol/pop3/commands.ts';
import type { LineEvent, Pop3Command } from '../protocol/pop3/commands.ts';
import { errLine, okLine } from '../protocol/pop3/responses.ts';
import { HANDLERS } from './commands.ts';
import { saslResponse } from './auth.ts';
import { Maildrop, type Login } from './snapshot.ts';
import { activity, LoopBudget } from '../obs/loop-lag.ts';

/** Commands that get an activity label: logins, the maildrop snapshot, message output, the update. */
const LABELLED = new Set(['PASS', 'APOP', 'AUTH', 'RETR', 'TOP', 'UIDL', 'LIST', 'QUIT', 'DELE']);

/** Keyword that hides a message from later (non-recent) POP sessions once POP deleted it under `keep`. */
export { POP_DELETED_KEYWORD };
export { RECENT_DAYS, RECENT_PREFIX } from './snapshot.ts';
export { isLoopback } from './auth.ts';
/** Lines queued (pipelined) before the socket is paused. */
const QUEUE_HIGH = 64;
const QUEUE_LOW = 16;
/** Bytes of unsent output after which command processing waits for the client to read. */
const OUTPUT_HIGH = 256 * 1024;
/** Work (ms) the command loop does before other connections get an event-loop turn (50,000 pipelined STATs). */
const PUMP_SLICE_MS = 5;

export type State = 'authorization' | 'transaction' | 'update' | 'closed';

export class Pop3Session {
  readonly id: string;
  readonly deps: ServerDeps;
  readonly store: Store;
  #socket: Socket | TLSSocket;
  #tls: boolean;
  readonly remote: string;
  readonly #splitter: LineSplitter;
  #queue: LineEvent[] = [];
  #processing = false;
  state: State = 'authorization';
  /** The name from USER, waiting for PASS. */
  user: string | null = null;
  /** Waiting for the client's AUTH PLAIN response line (RFC 5034 §4). */
  saslPending = false;
  authFailures = 0;
  login: Login | null = null;
  /** The snapshot of INBOX taken at login (src/pop3/snapshot.ts). */
  readonly drop = new Maildrop();
  #shuttingDown = false;
  /** The command loop's run (see settled); resolved by end (see gone). */
  #work: Promise<void> = Promise.resolve();
  #ended = deferred();
  /** Set while a long response (RETR/TOP) is being written. */
  streaming: Readable | null = null;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  /** limits.preauthTimeout: the AUTHORIZATION state may last this long, activity or not. */
  #preauthTimer: NodeJS.Timeout | null = null;

  constructor(deps: ServerDeps, socket: Socket | TLSSocket, info: ConnectionInfo, id: string) {
    this.id = id;
    this.deps = deps;
    this.store = deps.store;
    this.#socket = socket;
    this.#tls = info.implicitTls;
    // The client: the socket's peer, or what a PROXY protocol header said (src/net/listener.ts).
    this.remote = info.remoteAddress ?? socket.remoteAddress ?? '';
    this.#splitter = new LineSplitter(Math.max(255, deps.config.limits.maxLineLength));
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    this.#attach(socket);
    this.#armPreauthTimeout();
    this.deps.log.debug('pop3.connect', { session: id, remote: this.remote, listener: info.listener, tls: this.#tls });
    this.send(okLine(`Pillarbox POP3 server ready`));
  }

  get tls(): boolean {
    return this.#tls;
  }

  // ---------------------------------------------------------------- socket plumbing

  readonly #onData = (chunk: Buffer) => {
    for (const ev of this.#splitter.push(chunk)) this.#queue.push(ev);
    if (this.#queue.length >= QUEUE_HIGH) this.#socket.pause();
    if (!this.#processing) this.#work = this.#pump();
  };
  readonly #onClose = () => this.cleanup();
  readonly #onError = (err: Error) => this.deps.log.debug('pop3.socket-error', { session: this.id, error: err });
  readonly #onTimeout = () => {
    // RFC 1939 §3: autologout timer; the session does not enter UPDATE, nothing is changed.
    this.deps.log.info('pop3.timeout', { session: this.id });
    this.send(errLine('Disconnected for inactivity; no changes were made', 'SYS/TEMP'));
    this.end();
  };

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('timeout', this.#onTimeout);
    socket.setTimeout(this.deps.config.limits.pop3Timeout);
  }

  #detach(socket: Socket | TLSSocket): void {
    socket.off('data', this.#onData);
    socket.off('close', this.#onClose);
    socket.off('timeout', this.#onTimeout);
    socket.setTimeout(0);
    // Keep the error listener: a late error on the raw socket must not crash the process.
  }

  /** Read through a method so TypeScript does not narrow the state across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  send(s: string | Buffer): boolean {
    if (this.isClosed() || this.#socket.destroyed) return false;
    return this.#socket.write(s);
  }

  /** Writes and waits for the socket to drain if its buffer is full; false if the socket closed. */
  async write(s: string | Buffer): Promise<boolean> {
    if (this.isClosed() || this.#socket.destroyed) return false;
    if (this.#socket.write(s)) return true;
    const sock = this.#socket;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        sock.off('drain', onDrain);
        sock.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      sock.on('drain', onDrain);
      sock.on('close', onClose);
    });
  }

  /** Drops the connection at once (a response already part-way out cannot be finished). */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * An unauthenticated connection gets limits.preauthTimeout to log in (the 10-minute RFC 1939 §3
   * autologout counts inactivity, so a client sending CAPA every few minutes would stay forever).
   */
  #armPreauthTimeout(): void {
    const ms = this.deps.config.limits.preauthTimeout;
    if (!(ms > 0)) return;
    this.#preauthTimer = setTimeout(() => {
      if (this.state !== 'authorization') return;
      this.deps.log.info('pop3.preauth-timeout', { session: this.id, remote: this.remote });
      this.send(errLine('Login timeout; log in sooner after connecting', 'SYS/TEMP'));
      this.end();
    }, ms);
    this.#preauthTimer.unref();
  }

  clearPreauthTimeout(): void {
    if (this.#preauthTimer) clearTimeout(this.#preauthTimer);
    this.#preauthTimer = null;
  }

  /** Closes after what was written (FIN); the socket goes in any case after 10 s. */
  end(): void {
    if (this.isClosed()) return;
    this.state = 'closed';
    this.#queue = [];
    this.#socket.end();
    this.#ended.resolve();
    // A peer that never reads must not keep the socket forever.
    setTimeout(() => this.#socket.destroy(), 10_000).unref();
  }

  /** The socket closed: release the maildrop lock and the bus subscription. */
  cleanup(): void {
    this.clearPreauthTimeout();
    const wasOpen = !this.isClosed();
    this.state = 'closed';
    this.#queue = [];
    this.streaming?.destroy();
    if (this.login) {
      this.login.release?.();
      this.login.unsubscribe();
      this.login.release = null;
    }
    if (wasOpen) this.deps.log.debug('pop3.disconnect', { session: this.id });
    this.#resolveClosed();
  }

  /** Bus changes for the logged-in account (see Maildrop.applyChanges). */
  onChanges(changes: readonly Change[]): void {
    const login = this.login;
    if (!login) return;
    this.drop.applyChanges(changes, login.inbox.id);
  }

  /**
   * Server shutdown (RFC 2449 §8 / RFC 3206 §4 [SYS/TEMP]): -ERR at once between commands, else
   * after the current command's reply (a QUIT in UPDATE finishes its store call and says +OK).
   * `force` (drain time over): a session still in a command has its socket destroyed.
   */
  shutdown(force = false): void {
    this.#shuttingDown = true;
    if (this.isClosed()) return;
    if (!this.#processing) this.#goodbye();
    else if (force) this.#socket.destroy();
  }

  #goodbye(): void {
    this.send(errLine('Server shutting down; no changes were made', 'SYS/TEMP'));
    this.end();
  }

  /** Resolves once the session is closed or its last line (and FIN) is flushed. */
  gone(): Promise<void> {
    return Promise.race([this.closed, this.#ended.promise.then(() => flushedOrClosed(this.#socket))]);
  }

  /** Resolves when the command in progress (if any) is done with the store. */
  settled(): Promise<void> {
    return this.#work;
  }

  // ---------------------------------------------------------------- command loop

  async #pump(): Promise<void> {
    if (this.#processing) return;
    this.#processing = true;
    // The autologout timer measures client inactivity (RFC 1939 §3), not time we spend working.
    this.#socket.setTimeout(0);
    const budget = new LoopBudget(PUMP_SLICE_MS);
    try {
      while (this.#queue.length && !this.isClosed()) {
        const ev = this.#queue.shift()!;
        try {
          await this.#handle(ev);
        } catch (err) {
          this.deps.log.error('pop3.command-failed', { session: this.id, error: err });
          if (!this.isClosed()) this.send(errLine('Internal server error; please try again', 'SYS/TEMP'));
        }
        // Output backpressure: a client that pipelines without reading must not grow our buffers.
        if (this.#socket.writableLength > OUTPUT_HIGH && !(await this.write(''))) break;
        if (this.#queue.length <= QUEUE_LOW && !this.isClosed() && this.#socket.isPaused()) this.#socket.resume();
        if (this.#shuttingDown && !this.isClosed()) this.#goodbye();
        await budget.pause();
      }
    } finally {
      this.#processing = false;
      if (!this.isClosed()) this.#socket.setTimeout(this.deps.config.limits.pop3Timeout);
    }
  }

  /** One line: an AUTH continuation, or a command checked against the state (RFC 1939 §3) and run. */
  async #handle(ev: LineEvent): Promise<void> {
    if (ev.kind === 'overlong') {
      this.saslPending = false;
      this.send(errLine(`Line too long (${ev.length} octets; the limit is ${this.#splitter.maxLength})`));
      return;
    }
    if (this.saslPending) {
      this.saslPending = false;
      await activity.run(`pop3.command=AUTH-response`, () => saslResponse(this, ev.text.trim()));
      return;
    }
    const cmd = parseCommand(ev.text);
    this.deps.log.debug('pop3.command', { session: this.id, command: cmd.name.slice(0, 16), arg: cmd.name === 'PASS' || cmd.name === 'AUTH' ? undefined : cmd.args[0]?.slice(0, 16) });
    if (cmd.name === '') {
      this.send(errLine('Empty command'));
      return;
    }
    const where = COMMAND_STATES[cmd.name];
    if (!where) {
      this.send(errLine(`Unknown command: ${cmd.name.slice(0, 40)}`));
      return;
    }
    if (where === 'transaction' && this.state !== 'transaction') {
      this.send(errLine(`${cmd.name} is not valid before login; log in with USER/PASS or AUTH first`));
      return;
    }
    if (where === 'authorization' && this.state !== 'authorization') {
      this.send(errLine(`${cmd.name} is not valid after login`));
      return;
    }
    // What a stall report names (src/obs/loop-lag.ts): only commands that may do real work (a
    // label per STAT/NOOP of a 50,000-command burst cost 25 MB of RSS in garbage).
    if (!LABELLED.has(cmd.name)) return HANDLERS[cmd.name]?.(this, cmd);
    const done = activity.begin(`pop3.command=${cmd.name} account=${this.login?.account.address ?? this.user ?? '-'}`);
    try {
      return await HANDLERS[cmd.name]?.(this, cmd);
    } finally {
      done();
    }
  }

  // ---------------------------------------------------------------- STLS (RFC 2595 §4)

  async stls(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length) return void this.send(errLine('STLS takes no arguments'));
    if (this.#tls) return void this.send(errLine('Command not permitted when TLS is active'));
    if (this.user !== null) this.user = null;
    // RFC 2595 §4 / RFC 2449 §6.6: nothing after STLS may be pipelined; drop what arrived already
    // so plaintext injected before the handshake is never run under TLS.
    this.#queue = [];
    const raw = this.#socket as Socket;
    this.#detach(raw);
    raw.pause();
    const ok = await this.write(okLine('Begin TLS negotiation'));
    if (!ok) return this.cleanup();
    this.#splitter.push(Buffer.from('\n')); // finish any partial line left in the splitter
    this.#queue = [];
    let tls: TLSSocket;
    try {
      tls = await this.deps.tls.upgrade(raw);
    } catch (err) {
      this.deps.log.info('pop3.tls-failed', { session: this.id, error: err });
      raw.destroy();
      this.cleanup();
      return;
    }
    if (this.isClosed()) {
      tls.destroy();
      return;
    }
    this.#socket = tls;
    this.#tls = true;
    this.#attach(tls);
    if (tls.destroyed) this.cleanup();
  }
}
