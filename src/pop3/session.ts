// One POP3 connection: RFC 1939 states (AUTHORIZATION → TRANSACTION → UPDATE), RFC 2449 CAPA and
// PIPELINING, RFC 2595 STLS, RFC 5034 AUTH PLAIN, and the per-account POP policy (issue #5).
//
// The session works on a snapshot of INBOX taken at login. DELE only marks; the marks are applied
// in the UPDATE state after QUIT (RFC 1939 §6). A connection that ends any other way changes
// nothing. Messages another client expunges meanwhile stay numbered but are reported as gone.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { ServerDeps, ConnectionInfo } from '../net/types.ts';
import { deferred, flushedOrClosed } from '../net/drain.ts';
import type { Account, Mailbox, MessageSummary, PopDeleteAction, Store } from '../store/store.ts';
import { POP_DELETED_KEYWORD, StoreError, SystemFlag, accountSettings } from '../store/store.ts';
import type { Change } from '../store/bus.ts';
import { COMMAND_STATES, LineSplitter, decodeSaslPlain, parseCommand, parseNumber } from '../protocol/pop3/commands.ts';
import type { LineEvent, Pop3Command } from '../protocol/pop3/commands.ts';
import { DotStuffEncoder, TopFilter, continuationLine, errLine, multiLine, okLine } from '../protocol/pop3/responses.ts';

/** Keyword that hides a message from later (non-recent) POP sessions once POP deleted it under `keep`. */
export { POP_DELETED_KEYWORD };
/** Login prefix that selects recent mode: the last RECENT_DAYS days of INBOX, nothing deleted. */
export const RECENT_PREFIX = 'recent:';
export const RECENT_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Failed logins on one connection before it is closed. */
const MAX_AUTH_FAILURES = 5;
/** Lines queued (pipelined) before the socket is paused. */
const QUEUE_HIGH = 64;
const QUEUE_LOW = 16;
/** Bytes of unsent output after which command processing waits for the client to read. */
const OUTPUT_HIGH = 256 * 1024;
/** How often RETR/TOP re-read the store's expunge log. */
const EXPUNGE_CHECK_MS = 1000;
/** Messages up to this size are read in one call rather than streamed. */
const SMALL_MESSAGE = 128 * 1024;
/** Largest single write while streaming a message. */
const WRITE_CHUNK = 64 * 1024;

type State = 'authorization' | 'transaction' | 'update' | 'closed';

interface SnapMessage {
  /** Message number, 1-based (RFC 1939 §4). */
  num: number;
  /** RFC 1939 §7 unique-id: `<uidValidity>.<uid>` of INBOX, stable for the message's life. */
  uidl: string;
  uid: number;
  /** Not in INBOX any more: a POP-removed message the store retains for recent mode. */
  retained: boolean;
  savedAt: number;
  size: number;
  blobId: string;
  deleted: boolean;
  /** Expunged or moved away by another client during this session. */
  gone: boolean;
  retrieved: boolean;
}

interface Login {
  account: Account;
  inbox: Mailbox;
  recent: boolean;
  deleteAction: PopDeleteAction;
  markSeen: boolean;
  release: (() => void) | null;
  unsubscribe: () => void;
  /** INBOX HIGHESTMODSEQ at login: expunges after it come from other clients. */
  modseqAtLogin: number;
}

export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a); // linear: a socket address; anchored, disjoint parts
}

export class Pop3Session {
  readonly id: string;
  readonly #deps: ServerDeps;
  readonly #store: Store;
  #socket: Socket | TLSSocket;
  #tls: boolean;
  readonly #remote: string;
  readonly #splitter: LineSplitter;
  #queue: LineEvent[] = [];
  #processing = false;
  #state: State = 'authorization';
  #user: string | null = null;
  /** Waiting for the client's AUTH PLAIN response line (RFC 5034 §4). */
  #saslPending = false;
  #authFailures = 0;
  #login: Login | null = null;
  #messages: SnapMessage[] = [];
  #byUid = new Map<number, SnapMessage>();
  /** When the store's expunge log was last read (see #refreshExpunged). */
  #expungeCheckedAt = 0;
  #shuttingDown = false;
  /** The command loop's run (see settled); resolved by #end (see gone). */
  #work: Promise<void> = Promise.resolve();
  #ended = deferred();
  /** Set while a long response (RETR/TOP) is being written. */
  #streaming: Readable | null = null;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  /** limits.preauthTimeout: the AUTHORIZATION state may last this long, activity or not. */
  #preauthTimer: NodeJS.Timeout | null = null;

  constructor(deps: ServerDeps, socket: Socket | TLSSocket, info: ConnectionInfo, id: string) {
    this.id = id;
    this.#deps = deps;
    this.#store = deps.store;
    this.#socket = socket;
    this.#tls = info.implicitTls;
    this.#remote = socket.remoteAddress ?? '';
    this.#splitter = new LineSplitter(Math.max(255, deps.config.limits.maxLineLength));
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    this.#attach(socket);
    this.#armPreauthTimeout();
    this.#deps.log.debug('pop3.connect', { session: id, remote: this.#remote, listener: info.listener, tls: this.#tls });
    this.#send(okLine(`Pillarbox POP3 server ready`));
  }

  // ---------------------------------------------------------------- socket plumbing

  readonly #onData = (chunk: Buffer) => {
    for (const ev of this.#splitter.push(chunk)) this.#queue.push(ev);
    if (this.#queue.length >= QUEUE_HIGH) this.#socket.pause();
    if (!this.#processing) this.#work = this.#pump();
  };
  readonly #onClose = () => this.#cleanup();
  readonly #onError = (err: Error) => this.#deps.log.debug('pop3.socket-error', { session: this.id, error: err });
  readonly #onTimeout = () => {
    // RFC 1939 §3: autologout timer; the session does not enter UPDATE, nothing is changed.
    this.#deps.log.info('pop3.timeout', { session: this.id });
    this.#send(errLine('Disconnected for inactivity; no changes were made', 'SYS/TEMP'));
    this.#end();
  };

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('timeout', this.#onTimeout);
    socket.setTimeout(this.#deps.config.limits.pop3Timeout);
  }

  #detach(socket: Socket | TLSSocket): void {
    socket.off('data', this.#onData);
    socket.off('close', this.#onClose);
    socket.off('timeout', this.#onTimeout);
    socket.setTimeout(0);
    // Keep the error listener: a late error on the raw socket must not crash the process.
  }

  /** Read through a method so TypeScript does not narrow the state across awaits. */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #send(s: string | Buffer): boolean {
    if (this.#isClosed() || this.#socket.destroyed) return false;
    return this.#socket.write(s);
  }

  /** Writes and waits for the socket to drain if its buffer is full; false if the socket closed. */
  async #write(s: string | Buffer): Promise<boolean> {
    if (this.#isClosed() || this.#socket.destroyed) return false;
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

  /**
   * An unauthenticated connection gets limits.preauthTimeout to log in (the 10-minute RFC 1939 §3
   * autologout counts inactivity, so a client sending CAPA every few minutes would stay forever).
   */
  #armPreauthTimeout(): void {
    const ms = this.#deps.config.limits.preauthTimeout;
    if (!(ms > 0)) return;
    this.#preauthTimer = setTimeout(() => {
      if (this.#state !== 'authorization') return;
      this.#deps.log.info('pop3.preauth-timeout', { session: this.id, remote: this.#remote });
      this.#send(errLine('Login timeout; log in sooner after connecting', 'SYS/TEMP'));
      this.#end();
    }, ms);
    this.#preauthTimer.unref();
  }

  #clearPreauthTimeout(): void {
    if (this.#preauthTimer) clearTimeout(this.#preauthTimer);
    this.#preauthTimer = null;
  }

  #end(): void {
    if (this.#isClosed()) return;
    this.#state = 'closed';
    this.#queue = [];
    this.#socket.end();
    this.#ended.resolve();
    // A peer that never reads must not keep the socket forever.
    setTimeout(() => this.#socket.destroy(), 10_000).unref();
  }

  #cleanup(): void {
    this.#clearPreauthTimeout();
    const wasOpen = !this.#isClosed();
    this.#state = 'closed';
    this.#queue = [];
    this.#streaming?.destroy();
    if (this.#login) {
      this.#login.release?.();
      this.#login.unsubscribe();
      this.#login.release = null;
    }
    if (wasOpen) this.#deps.log.debug('pop3.disconnect', { session: this.id });
    this.#resolveClosed();
  }

  /**
   * Server shutdown (RFC 2449 §8 / RFC 3206 §4 [SYS/TEMP]): -ERR at once between commands, else
   * after the current command's reply (a QUIT in UPDATE finishes its store call and says +OK).
   * `force` (drain time over): a session still in a command has its socket destroyed.
   */
  shutdown(force = false): void {
    this.#shuttingDown = true;
    if (this.#isClosed()) return;
    if (!this.#processing) this.#goodbye();
    else if (force) this.#socket.destroy();
  }

  #goodbye(): void {
    this.#send(errLine('Server shutting down; no changes were made', 'SYS/TEMP'));
    this.#end();
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
    try {
      while (this.#queue.length && !this.#isClosed()) {
        const ev = this.#queue.shift()!;
        try {
          await this.#handle(ev);
        } catch (err) {
          this.#deps.log.error('pop3.command-failed', { session: this.id, error: err });
          if (!this.#isClosed()) this.#send(errLine('Internal server error; please try again', 'SYS/TEMP'));
        }
        // Output backpressure: a client that pipelines without reading must not grow our buffers.
        if (this.#socket.writableLength > OUTPUT_HIGH && !(await this.#write(''))) break;
        if (this.#queue.length <= QUEUE_LOW && !this.#isClosed() && this.#socket.isPaused()) this.#socket.resume();
        if (this.#shuttingDown && !this.#isClosed()) this.#goodbye();
      }
    } finally {
      this.#processing = false;
      if (!this.#isClosed()) this.#socket.setTimeout(this.#deps.config.limits.pop3Timeout);
    }
  }

  async #handle(ev: LineEvent): Promise<void> {
    if (ev.kind === 'overlong') {
      this.#saslPending = false;
      this.#send(errLine(`Line too long (${ev.length} octets; the limit is ${this.#splitter.maxLength})`));
      return;
    }
    if (this.#saslPending) {
      this.#saslPending = false;
      await this.#saslResponse(ev.text.trim());
      return;
    }
    const cmd = parseCommand(ev.text);
    this.#deps.log.debug('pop3.command', { session: this.id, command: cmd.name.slice(0, 16), arg: cmd.name === 'PASS' || cmd.name === 'AUTH' ? undefined : cmd.args[0]?.slice(0, 16) });
    if (cmd.name === '') {
      this.#send(errLine('Empty command'));
      return;
    }
    const where = COMMAND_STATES[cmd.name];
    if (!where) {
      this.#send(errLine(`Unknown command: ${cmd.name.slice(0, 40)}`));
      return;
    }
    if (where === 'transaction' && this.#state !== 'transaction') {
      this.#send(errLine(`${cmd.name} is not valid before login; log in with USER/PASS or AUTH first`));
      return;
    }
    if (where === 'authorization' && this.#state !== 'authorization') {
      this.#send(errLine(`${cmd.name} is not valid after login`));
      return;
    }
    switch (cmd.name) {
      case 'CAPA':
        return this.#capa(cmd);
      case 'QUIT':
        return this.#quit(cmd);
      case 'STLS':
        return this.#stls(cmd);
      case 'USER':
        return this.#userCmd(cmd);
      case 'PASS':
        return this.#pass(cmd);
      case 'APOP':
        this.#send(errLine('APOP is not supported; use USER/PASS or AUTH PLAIN over TLS'));
        return;
      case 'AUTH':
        return this.#auth(cmd);
      case 'NOOP':
        if (cmd.args.length) return void this.#send(errLine('NOOP takes no arguments'));
        this.#send(okLine());
        return;
      case 'STAT':
        return this.#stat(cmd);
      case 'LIST':
        return this.#list(cmd);
      case 'UIDL':
        return this.#uidl(cmd);
      case 'RETR':
        return this.#retr(cmd);
      case 'TOP':
        return this.#top(cmd);
      case 'DELE':
        return this.#dele(cmd);
      case 'RSET':
        return this.#rset(cmd);
    }
  }

  // ---------------------------------------------------------------- AUTHORIZATION state

  #plaintextAllowed(): boolean {
    return this.#tls || (this.#deps.config.allowPlaintextLoopback && isLoopback(this.#remote));
  }

  /** RFC 2449 §5 CAPA; RFC 2595 §4: STLS only while it is permitted. */
  #capa(cmd: Pop3Command): void {
    if (cmd.args.length) return void this.#send(errLine('CAPA takes no arguments'));
    const caps = ['TOP', 'UIDL'];
    if (this.#state === 'authorization') {
      if (this.#plaintextAllowed()) caps.push('USER', 'SASL PLAIN');
      if (!this.#tls) caps.push('STLS');
    }
    caps.push('RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING');
    // RFC 2449 §6.7: NEVER only when the server never deletes on its own; true (it has no expiry).
    caps.push('EXPIRE NEVER');
    caps.push('IMPLEMENTATION Pillarbox');
    this.#send(multiLine('Capability list follows', caps));
  }

  async #stls(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length) return void this.#send(errLine('STLS takes no arguments'));
    if (this.#tls) return void this.#send(errLine('Command not permitted when TLS is active'));
    if (this.#user !== null) this.#user = null;
    // RFC 2595 §4 / RFC 2449 §6.6: nothing after STLS may be pipelined; drop what arrived already
    // so plaintext injected before the handshake is never run under TLS.
    this.#queue = [];
    const raw = this.#socket as Socket;
    this.#detach(raw);
    raw.pause();
    const ok = await this.#write(okLine('Begin TLS negotiation'));
    if (!ok) return this.#cleanup();
    this.#splitter.push(Buffer.from('\n')); // finish any partial line left in the splitter
    this.#queue = [];
    let tls: TLSSocket;
    try {
      tls = await this.#deps.tls.upgrade(raw);
    } catch (err) {
      this.#deps.log.info('pop3.tls-failed', { session: this.id, error: err });
      raw.destroy();
      this.#cleanup();
      return;
    }
    if (this.#isClosed()) {
      tls.destroy();
      return;
    }
    this.#socket = tls;
    this.#tls = true;
    this.#attach(tls);
    if (tls.destroyed) this.#cleanup();
  }

  #userCmd(cmd: Pop3Command): void {
    if (!this.#plaintextAllowed()) {
      this.#send(errLine('Plaintext authentication is not allowed without TLS; use STLS first', 'AUTH'));
      return;
    }
    const name = cmd.rest.trim();
    if (!name) return void this.#send(errLine('USER needs a user name'));
    this.#user = name;
    this.#send(okLine('Send your password with PASS'));
  }

  async #pass(cmd: Pop3Command): Promise<void> {
    if (!this.#plaintextAllowed()) {
      this.#send(errLine('Plaintext authentication is not allowed without TLS; use STLS first', 'AUTH'));
      return;
    }
    if (this.#user === null) return void this.#send(errLine('Send USER before PASS'));
    const user = this.#user;
    this.#user = null;
    // The password is the rest of the line: it may contain spaces (RFC 1939 §7 leaves this open).
    const password = cmd.rest;
    if (!password) return void this.#send(errLine('PASS needs a password'));
    await this.#authenticate(user, password);
  }

  async #auth(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length === 0) {
      // Pre-RFC 5034 clients list mechanisms with a bare AUTH.
      this.#send(multiLine('Supported SASL mechanisms follow', this.#plaintextAllowed() ? ['PLAIN'] : []));
      return;
    }
    const mech = cmd.args[0]!.toUpperCase();
    if (mech !== 'PLAIN') return void this.#send(errLine(`Unsupported SASL mechanism ${mech.slice(0, 40)}; use PLAIN`));
    if (!this.#plaintextAllowed()) {
      this.#send(errLine('Plaintext authentication is not allowed without TLS; use STLS first', 'AUTH'));
      return;
    }
    if (cmd.args.length > 2) return void this.#send(errLine('AUTH PLAIN takes at most one initial response'));
    const initial = cmd.args[1];
    if (initial === undefined) {
      // RFC 5034 §4: empty server challenge, the client answers on the next line.
      this.#saslPending = true;
      this.#send(continuationLine());
      return;
    }
    // RFC 5034 §4: "=" is an empty initial response, which PLAIN cannot use.
    await this.#saslResponse(initial === '=' ? '' : initial);
  }

  async #saslResponse(b64: string): Promise<void> {
    if (b64 === '*') return void this.#send(errLine('Authentication cancelled')); // RFC 5034 §4
    const plain = decodeSaslPlain(b64);
    if (!plain) return void this.#send(errLine('Malformed SASL PLAIN response (expected base64 of authzid NUL authcid NUL password)'));
    if (plain.authzid && plain.authzid.toLowerCase() !== plain.authcid.toLowerCase()) {
      this.#send(errLine('Authorization identity must be empty or equal to the authentication identity', 'AUTH'));
      return;
    }
    await this.#authenticate(plain.authcid, plain.password);
  }

  async #authenticate(user: string, password: string): Promise<void> {
    let name = user.trim();
    let recent = false;
    if (name.toLowerCase().startsWith(RECENT_PREFIX)) {
      recent = true;
      name = name.slice(RECENT_PREFIX.length);
    }
    const res = await this.#deps.auth.login(name, password, this.#remote);
    if (this.#state !== 'authorization') return;
    if (!res.ok) {
      this.#authFailures++;
      this.#deps.log.info('pop3.login-failed', { protocol: 'pop3', session: this.id, user: name.slice(0, 200), ip: this.#remote, reason: res.reason });
      // RFC 3206 §4: SYS/TEMP, a condition that goes away by itself; the client should retry later.
      if (res.reason === 'throttled') this.#send(errLine(res.message || 'Too many failed logins; try again later', 'SYS/TEMP'));
      else if (res.reason === 'disabled') this.#send(errLine(res.message || 'This account is disabled', 'AUTH'));
      else this.#send(errLine('Authentication failed: wrong user name or password', 'AUTH'));
      if (this.#authFailures >= MAX_AUTH_FAILURES) {
        this.#send(errLine('Too many failed logins on this connection; closing'));
        this.#end();
      }
      return;
    }
    const account = res.account;
    const settings = accountSettings(account).pop;
    if (!settings.enabled) {
      this.#deps.log.info('pop3.login-failed', { protocol: 'pop3', session: this.id, user: account.address, ip: this.#remote, reason: 'pop-disabled' });
      this.#send(errLine('POP is disabled for this account; use IMAP, or ask the administrator to enable POP', 'AUTH'));
      return;
    }
    // RFC 2449 §8.1.2: one maildrop lock per account. Recent-mode sessions delete nothing, so
    // they neither take nor respect the lock.
    let release: (() => void) | null = null;
    if (!recent) {
      release = this.#deps.connections.acquire('pop3', account.id, 1);
      if (!release) {
        this.#deps.log.info('pop3.login-failed', { protocol: 'pop3', session: this.id, user: account.address, ip: this.#remote, reason: 'in-use' });
        this.#send(errLine('Another POP3 session of this account is open; try again when it ends', 'IN-USE'));
        return;
      }
    }
    try {
      const inbox = await this.#store.getMailbox(account.id, 'INBOX');
      if (!inbox) throw new StoreError('not-found', 'INBOX missing');
      const unsubscribe = this.#store.bus.subscribe(account.id, (changes) => this.#onChanges(changes));
      this.#login = {
        account,
        inbox,
        recent,
        deleteAction: settings.deleteAction,
        markSeen: settings.markSeen,
        release,
        unsubscribe,
        modseqAtLogin: inbox.highestModseq,
      };
      if (this.#state !== 'authorization') {
        // The connection closed while we waited.
        this.#cleanup();
        return;
      }
      const list = await this.#store.listMessages(inbox.id);
      const now = Date.now();
      let since = settings.showSince ?? -Infinity;
      if (recent) since = Math.max(since, now - RECENT_DAYS * DAY_MS);
      const snap: SnapMessage[] = [];
      this.#byUid.clear();
      const make = (uidValidity: number, m: { uid: number; size: number; blobId: string; savedAt: number }, retained: boolean): SnapMessage => ({
        num: 0,
        uidl: `${uidValidity}.${m.uid}`,
        uid: m.uid,
        retained,
        savedAt: m.savedAt,
        size: m.size,
        blobId: m.blobId,
        deleted: false,
        gone: false,
        retrieved: false,
      });
      for (const m of list) {
        if (!this.#visible(m, since, recent)) continue;
        const sm = make(inbox.uidValidity, m, false);
        snap.push(sm);
        this.#byUid.set(m.uid, sm);
      }
      if (recent) {
        // Recent mode also shows what other POP sessions removed from INBOX in the window.
        const present = new Set(snap.map((m) => m.uidl));
        for (const r of await this.#store.popRetained(inbox.id, since)) {
          const sm = make(r.uidValidity, r, true);
          if (!present.has(sm.uidl)) snap.push(sm);
        }
        snap.sort((a, b) => a.savedAt - b.savedAt || (a.retained === b.retained ? a.uid - b.uid : a.retained ? -1 : 1));
      }
      snap.forEach((m, i) => (m.num = i + 1));
      this.#messages = snap;
    } catch (err) {
      release?.();
      this.#login?.unsubscribe();
      this.#login = null;
      throw err;
    }
    if (this.#state !== 'authorization') return;
    this.#state = 'transaction';
    this.#clearPreauthTimeout();
    this.#deps.log.info('pop3.login', {
      protocol: 'pop3',
      session: this.id,
      user: account.address,
      ip: this.#remote,
      recent,
      messages: this.#messages.length,
    });
    const { count, size } = this.#totals();
    this.#send(okLine(`Logged in; ${count} message${count === 1 ? '' : 's'} (${size} octets)${recent ? ', recent mode' : ''}`));
  }

  /** What POP shows: INBOX since `since`; hidden: what a POP client deleted under `keep` (except in recent mode). */
  #visible(m: MessageSummary, since: number, recent: boolean): boolean {
    if (m.savedAt < since) return false;
    if (!recent && m.keywords.some((k) => k.toLowerCase() === POP_DELETED_KEYWORD.toLowerCase())) return false;
    return true;
  }

  #onChanges(changes: readonly Change[]): void {
    const login = this.#login;
    if (!login) return;
    for (const c of changes) {
      if (c.kind === 'messages-expunged' && c.mailboxId === login.inbox.id) {
        for (const uid of c.uids) {
          const m = this.#byUid.get(uid);
          if (m) m.gone = true;
        }
      } else if ((c.kind === 'mailbox-deleted' || c.kind === 'mailbox-renamed') && c.mailboxId === login.inbox.id) {
        for (const m of this.#messages) m.gone = true;
      } else if (c.kind === 'account-removed') {
        for (const m of this.#messages) m.gone = true;
      }
    }
  }

  // ---------------------------------------------------------------- TRANSACTION state

  #live(): SnapMessage[] {
    return this.#messages.filter((m) => !m.deleted && !m.gone);
  }

  #totals(): { count: number; size: number } {
    let count = 0;
    let size = 0;
    for (const m of this.#messages) {
      if (m.deleted || m.gone) continue;
      count++;
      size += m.size;
    }
    return { count, size };
  }

  /** Resolves a message-number argument; sends the -ERR and returns null when unusable. */
  #pick(arg: string | undefined, cmdName: string): SnapMessage | null {
    if (arg === undefined) {
      this.#send(errLine(`${cmdName} needs a message number`));
      return null;
    }
    const n = parseNumber(arg);
    if (n === null) {
      this.#send(errLine(`Invalid message number: ${arg.slice(0, 40)}`));
      return null;
    }
    const m = this.#messages[n - 1];
    if (!m) {
      const total = this.#messages.length;
      this.#send(errLine(`No such message: ${n} (the maildrop has ${total} message${total === 1 ? '' : 's'})`));
      return null;
    }
    if (m.deleted) {
      this.#send(errLine(`Message ${n} is already deleted`));
      return null;
    }
    if (m.gone) {
      this.#send(errLine(`Message ${n} was removed by another client during this session`));
      return null;
    }
    return m;
  }

  #stat(cmd: Pop3Command): void {
    if (cmd.args.length) return void this.#send(errLine('STAT takes no arguments'));
    const { count, size } = this.#totals();
    this.#send(okLine(`${count} ${size}`)); // RFC 1939 §5 drop listing
  }

  #list(cmd: Pop3Command): void {
    if (cmd.args.length > 1) return void this.#send(errLine('LIST takes at most one message number'));
    if (cmd.args.length === 1) {
      const m = this.#pick(cmd.args[0], 'LIST');
      if (m) this.#send(okLine(`${m.num} ${m.size}`));
      return;
    }
    const { count, size } = this.#totals();
    this.#send(multiLine(`${count} messages (${size} octets)`, this.#live().map((m) => `${m.num} ${m.size}`)));
  }

  /** RFC 1939 §7: unique-id, 1–70 chars in 0x21–0x7E, stable for the message's life. */
  #uidOf(m: SnapMessage): string {
    return m.uidl;
  }

  #uidl(cmd: Pop3Command): void {
    if (cmd.args.length > 1) return void this.#send(errLine('UIDL takes at most one message number'));
    if (cmd.args.length === 1) {
      const m = this.#pick(cmd.args[0], 'UIDL');
      if (m) this.#send(okLine(`${m.num} ${this.#uidOf(m)}`));
      return;
    }
    this.#send(multiLine('Unique-ID listing follows', this.#live().map((m) => `${m.num} ${this.#uidOf(m)}`)));
  }

  #dele(cmd: Pop3Command): void {
    if (cmd.args.length !== 1) return void this.#send(errLine('DELE needs exactly one message number'));
    const m = this.#pick(cmd.args[0], 'DELE');
    if (!m) return;
    m.deleted = true;
    this.#send(okLine(`Message ${m.num} deleted`));
  }

  #rset(cmd: Pop3Command): void {
    if (cmd.args.length) return void this.#send(errLine('RSET takes no arguments'));
    for (const m of this.#messages) m.deleted = false;
    const { count, size } = this.#totals();
    this.#send(okLine(`Maildrop has ${count} message${count === 1 ? '' : 's'} (${size} octets)`));
  }

  async #retr(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length !== 1) return void this.#send(errLine('RETR needs exactly one message number'));
    const m = this.#pick(cmd.args[0], 'RETR');
    if (!m) return;
    if (await this.#sendMessage(m, null, `${m.size} octets`)) m.retrieved = true;
  }

  async #top(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length !== 2) return void this.#send(errLine('TOP needs a message number and a line count'));
    const m = this.#pick(cmd.args[0], 'TOP');
    if (!m) return;
    const lines = parseNumber(cmd.args[1], { allowZero: true });
    if (lines === null) return void this.#send(errLine(`Invalid line count: ${cmd.args[1]!.slice(0, 40)}`));
    await this.#sendMessage(m, new TopFilter(lines), 'Top of message follows');
  }

  /**
   * Expunges by other server processes (which the in-process change bus does not carry) are read
   * from the store's expunge log, at most once a second.
   */
  async #refreshExpunged(): Promise<void> {
    const now = Date.now();
    if (now - this.#expungeCheckedAt < EXPUNGE_CHECK_MS) return;
    this.#expungeCheckedAt = now;
    const login = this.#login!;
    for (const uid of await this.#store.expungedSince(login.inbox.id, login.modseqAtLogin)) {
      const m = this.#byUid.get(uid);
      if (m) m.gone = true;
    }
  }

  /**
   * Sends a message as a multi-line response, streamed with backpressure. Its first bytes are read
   * before +OK is sent, so an unreadable message gets a clean -ERR. Messages other sessions of this
   * server expunge are known from the change bus (`gone`, refused in #pick), those other processes
   * expunge from the expunge log (#refreshExpunged). Returns true when the whole response was written.
   */
  async #sendMessage(m: SnapMessage, top: TopFilter | null, okText: string): Promise<boolean> {
    if (!m.retained) await this.#refreshExpunged();
    if (m.gone) {
      this.#send(errLine(`Message ${m.num} was removed by another client during this session`));
      return false;
    }
    let stream: Readable | null = null;
    let it: AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      if (m.size <= SMALL_MESSAGE) {
        // One read instead of a stream: most mail is small.
        const whole = await this.#store.readBlob(m.blobId, 0, m.size);
        first = { done: false, value: whole };
        it = { next: async () => ({ done: true, value: undefined }) };
      } else {
        stream = this.#store.streamBlob(m.blobId);
        this.#streaming = stream;
        it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        first = await it.next();
      }
    } catch (err) {
      stream?.destroy();
      this.#streaming = null;
      const login = this.#login!;
      if (!m.retained && (await this.#store.getMessages(login.inbox.id, [m.uid])).length === 0) {
        m.gone = true;
        this.#send(errLine(`Message ${m.num} was removed by another client during this session`));
      } else {
        this.#deps.log.warn('pop3.read-failed', { session: this.id, uid: m.uid, error: err });
        this.#send(errLine(`Message ${m.num} cannot be read right now; try again later`, 'SYS/TEMP'));
      }
      return false;
    }
    try {
      if (this.#isClosed()) return false;
      // Output is coalesced into writes of up to WRITE_CHUNK bytes: the status line goes out with
      // the first bytes of the message and the terminator with the last, never as tiny writes.
      const enc = new DotStuffEncoder();
      let held: Buffer[] = [Buffer.from(okLine(okText))];
      let heldLen = held[0]!.length;
      let r = first;
      try {
        while (!r.done) {
          let chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
          if (top) chunk = top.push(chunk);
          if (chunk.length) {
            const out = enc.push(chunk);
            if (heldLen + out.length > WRITE_CHUNK) {
              if (!(await this.#write(held.length === 1 ? held[0]! : Buffer.concat(held, heldLen)))) return false;
              held = [];
              heldLen = 0;
            }
            held.push(out);
            heldLen += out.length;
          }
          if (top?.done) break;
          r = await it.next();
        }
      } catch (err) {
        // Part of a response may already be out: the only safe thing left is to drop the connection.
        this.#deps.log.error('pop3.stream-failed', { session: this.id, uid: m.uid, error: err });
        this.#socket.destroy();
        return false;
      }
      held.push(enc.end());
      return this.#write(Buffer.concat(held));
    } finally {
      this.#streaming = null;
      stream?.destroy();
    }
  }

  // ---------------------------------------------------------------- QUIT / UPDATE

  async #quit(cmd: Pop3Command): Promise<void> {
    if (cmd.args.length) return void this.#send(errLine('QUIT takes no arguments'));
    if (this.#state === 'authorization') {
      this.#send(okLine('Bye'));
      this.#end();
      return;
    }
    // RFC 1939 §6: UPDATE state.
    this.#state = 'update';
    let text: string;
    let ok = true;
    try {
      text = await this.#update();
    } catch (err) {
      ok = false;
      this.#deps.log.error('pop3.update-failed', { session: this.id, error: err });
      text = 'Some deleted messages could not be removed; they are still in the maildrop';
    }
    if (this.#isClosed()) return; // can't answer, but the update went through (or failed) anyway
    this.#send(ok ? okLine(text) : errLine(text, 'SYS/TEMP'));
    this.#end();
  }

  /** Applies DELE marks and \Seen per the account's POP policy. */
  async #update(): Promise<string> {
    const login = this.#login!;
    const origin = `pop3:${this.id}`;
    const inboxId = login.inbox.id;
    const inInbox = (m: SnapMessage) => !m.gone && !m.retained;
    const deleted = this.#messages.filter((m) => m.deleted && inInbox(m)).map((m) => m.uid);
    const retrieved = this.#messages.filter((m) => m.retrieved && inInbox(m)).map((m) => m.uid);
    if (login.recent) {
      const seen = login.markSeen ? retrieved : [];
      if (seen.length) await this.#store.storeFlags(inboxId, seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, { origin });
      this.#logUpdate('recent', 0, retrieved.length);
      return `Bye; recent mode deletes nothing (${deleted.length} marked message${deleted.length === 1 ? '' : 's'} left in place)`;
    }
    return this.#updateInOneCall(login, deleted, retrieved);
  }

  /** The whole UPDATE in one store transaction (store.popUpdate), retaining removed mail for recent mode. */
  async #updateInOneCall(login: Login, deleted: number[], retrieved: number[]): Promise<string> {
    const action = login.deleteAction;
    const deletedSet = new Set(deleted);
    // Expunged messages need no \Seen; moved ones keep their flags, so they get it first.
    const seen = !login.markSeen ? [] : action === 'expunge' ? retrieved.filter((u) => !deletedSet.has(u)) : retrieved;
    const res = await this.#store.popUpdate(
      login.inbox.id,
      { seen, remove: deleted, action, retainSince: action === 'keep' ? null : Date.now() - RECENT_DAYS * DAY_MS },
      { origin: `pop3:${this.id}` },
    );
    const count = action === 'keep' ? deleted.length : res.removed.length;
    this.#logUpdate(action, count, retrieved.length);
    const s = count === 1 ? '' : 's';
    if (action === 'keep') return `Bye; ${count} message${s} kept on the server and hidden from POP`;
    if (count === 0) return 'Bye; no messages deleted';
    if (action === 'expunge') return `Bye; ${count} message${s} deleted`;
    return `Bye; ${count} message${s} moved to ${res.mailbox?.name ?? (action === 'trash' ? 'Trash' : 'Archive')}`;
  }

  #logUpdate(action: string, changed: number, retrieved: number): void {
    this.#deps.log.info('pop3.update', { session: this.id, account: this.#login?.account.address, action, changed, retrieved });
  }
}
