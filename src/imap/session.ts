// One IMAP connection: reads commands through the protocol receiver, checks state, runs one handler
// per command, reports mailbox changes from the bus at the moments RFC 9051 allows, and writes
// replies with backpressure. Literal decisions and the APPEND upload are in src/imap/literals.ts,
// IDLE in handlers/idle.ts, the untagged updates in selected.ts, the caps in limits.ts, the
// autologout and login-timeout clocks in session-timers.ts.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ServerDeps, ConnectionInfo } from '../net/types.ts';
import { drainOrClose } from '../net/drain.ts';
import type { Account } from '../store/store.ts';
import type { Change } from '../store/bus.ts';
import { Receiver, type RawCommand, type ReceiverEvent } from '../protocol/imap/receiver.ts';
import { ImapParseError, parseCommand, readTag } from '../protocol/imap/parser.ts';
import { statusLine } from '../protocol/imap/response.ts';
import type { ImapCommand } from '../protocol/imap/types.ts';
import { ImapBad, ImapBye, ImapNo, toReply } from './errors.ts';
import { SelectedMailbox, type FlushOptions } from './selected.ts';
import { UIDREQUIRED_TEXT, usesSequenceNumbers } from './uidonly.ts';
import { checkNewMailboxName, mailboxFromClient, mailboxToClient } from './mailbox-names.ts';
import { capabilities } from './capabilities.ts';
import { COMMANDS, type HandlerResult } from './commands.ts';
import { activity, LoopBudget } from '../obs/loop-lag.ts';
import { Literals, type AppendStage } from './literals.ts';
import { Idle } from './handlers/idle.ts';
import { Notify } from './notify.ts';
import { Compression } from './compress.ts';
import { SessionTimers } from './session-timers.ts';
import { CorkedWriter } from './corked-writer.ts';
import { INPUT_HIGH_WATER, MAX_BAD_COMMANDS, MAX_BUFFERED_LITERAL, OUTPUT_HIGH_WATER, PREAUTH_MAX_BYTES } from './limits.ts';

export { MAX_BUFFERED_LITERAL, OUTPUT_HIGH_WATER, PREAUTH_MAX_BYTES, type AppendStage };

export type SessionState = 'notauth' | 'auth' | 'selected' | 'logout';

let nextSessionId = 1;

/** Work (ms) the command loop does before it lets other connections have an event-loop turn. */
export const PUMP_SLICE_MS = 5;

export class ImapSession {
  readonly id: string;
  readonly origin: string;
  socket: Socket | TLSSocket;
  state: SessionState = 'notauth';
  tls: boolean;
  account: Account | null = null;
  selected: SelectedMailbox | null = null;
  readonly enabled = new Set<string>();
  /** CONDSTORE active (RFC 7162 §3.1: enabled by ENABLE or a CONDSTORE-enabling command). */
  condstore = false;
  /** What the client said in ID (RFC 2971). */
  clientId: Record<string, string | null> | null = null;
  readonly connectedAt = Date.now();
  lastCommandAt = Date.now();
  readonly remoteAddress: string;
  /** SEARCHRES saved result (RFC 5182), as UIDs. */
  savedSearch: number[] = [];
  /** IDLE (handlers/idle.ts): active from the handler's "+ idling" to the client's DONE. */
  readonly idle: Idle = new Idle(this);
  /** NOTIFY (RFC 5465, src/imap/notify.ts): inactive until the client's first NOTIFY. */
  readonly notify: Notify = new Notify(this);
  /** A handler waiting for a continuation line (AUTHENTICATE). */
  continuation: ((line: string) => Promise<void>) | null = null;

  #receiver: Receiver;
  #pumping = false;
  #work: Promise<void> = Promise.resolve(); // the command loop's run (see settled)
  #leaving = false;
  #inputEnded = false;
  #closed = false;
  #paused = false;
  #badCount = 0;
  #release: (() => void) | null = null;
  #unsubscribe: (() => void) | null = null;
  /** Literal decisions and the APPEND upload (src/imap/literals.ts). */
  readonly #literals: Literals = new Literals(this);
  readonly #timers = new SessionTimers(this);
  /** COMPRESS=DEFLATE (src/imap/compress.ts), once the client turned it on. */
  #compress: Compression | null = null;
  #onData = (chunk: Buffer) => (this.#compress ? this.#compress.received(chunk) : this.#input(chunk));
  #closedCallbacks: Array<() => void> = [];

  readonly deps: ServerDeps;
  constructor(
    deps: ServerDeps,
    socket: Socket | TLSSocket,
    info: ConnectionInfo) {
    this.deps = deps;
    this.id = `imap-${process.pid}-${nextSessionId++}`;
    this.origin = this.id;
    this.socket = socket;
    this.tls = info.implicitTls;
    // The client: the socket's peer, or what a PROXY protocol header said (src/net/listener.ts).
    this.remoteAddress = info.remoteAddress ?? (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.#receiver = this.#newReceiver();
    this.#attach(socket);
    this.#timers.start();
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] ${deps.config.hostname} Pillarbox IMAP ready\r\n`);
  }

  #newReceiver(): Receiver {
    return new Receiver(this.#receiverLimits());
  }

  /** Line and command caps: small before login (PREAUTH_MAX_BYTES), the configured ones after. */
  #receiverLimits(): { maxLine: number; maxCommand: number } {
    const maxLine = this.deps.config.limits.maxLineLength;
    if (this.state === 'notauth') return { maxLine: Math.min(maxLine, PREAUTH_MAX_BYTES), maxCommand: PREAUTH_MAX_BYTES };
    return { maxLine, maxCommand: maxLine + 4 * MAX_BUFFERED_LITERAL };
  }

  get #inputHighWater(): number {
    return this.state === 'notauth' ? PREAUTH_MAX_BYTES : INPUT_HIGH_WATER;
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    // Half-close: finish the commands already received, then close.
    socket.on('end', () => (this.#compress ? this.#compress.endInput() : this.#ended()));
  }

  #ended(): void {
    this.#inputEnded = true;
    if (!this.#pumping) this.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  onClose(cb: () => void): void {
    this.#closedCallbacks.push(cb);
  }

  /** Mailbox names in UTF-8 on the wire (IMAP4rev2 or UTF8=ACCEPT enabled; RFC 9051 §5.1, RFC 6855 §3). */
  get utf8(): boolean {
    return this.enabled.has('IMAP4REV2') || this.enabled.has('UTF8=ACCEPT');
  }

  get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  get qresync(): boolean {
    return this.enabled.has('QRESYNC');
  }

  /** RFC 9586: UIDFETCH instead of FETCH, VANISHED instead of EXPUNGE, no sequence numbers from the client. */
  get uidOnly(): boolean {
    return this.enabled.has('UIDONLY');
  }

  /** How pending changes are reported: VANISHED with QRESYNC or UIDONLY (RFC 7162 §3.2.10, RFC 9586 §3). */
  flushOptions(allowExpunge: boolean): FlushOptions {
    return { allowExpunge, qresync: this.qresync || this.uidOnly, condstore: this.condstore, uidOnly: this.uidOnly };
  }

  /**
   * A CONDSTORE enabling command (RFC 7162 §3.1). The first one executed with a mailbox selected
   * makes the server return HIGHESTMODSEQ for it, before the command's own responses (RFC 7162
   * §3.1, example 4 of §3.1.3); SELECT/EXAMINE (CONDSTORE) give it in their own answer.
   */
  enableCondstore(): void {
    if (this.condstore) return;
    this.condstore = true;
    const sel = this.selected;
    if (sel) this.write(`* OK [HIGHESTMODSEQ ${sel.highestModseq}] Highest\r\n`);
  }

  get isLoopback(): boolean {
    const a = this.remoteAddress;
    return a === '127.0.0.1' || a === '::1' || a.startsWith('127.');
  }

  /** RFC 9051 §6.2.3: plain-text credentials only over TLS (or loopback when configured). */
  get loginAllowed(): boolean {
    return this.tls || (this.deps.config.allowPlaintextLoopback && this.isLoopback);
  }

  capabilities(): string[] {
    return capabilities({
      tls: this.tls,
      authenticated: this.state === 'auth' || this.state === 'selected',
      loginAllowed: this.loginAllowed,
      compressed: this.#compress !== null,
      appendLimit: this.deps.config.limits.appendLimit,
    });
  }

  // ---- output

  // Corked per event-loop turn (src/imap/corked-writer.ts).
  readonly #out = new CorkedWriter(() => this.socket);

  write(data: string | Buffer): boolean {
    if (this.#closed || this.socket.destroyed) return true;
    if (this.#compress) return this.#compress.write(data);
    return this.#out.write(data);
  }

  /** Output written and not yet handed to the kernel (the deflater's too, with COMPRESS). */
  get outputBuffered(): number {
    return this.#compress ? this.#compress.buffered : this.socket.writableLength;
  }

  /** Waits until the socket's buffer drained (or the socket closed). */
  async drain(): Promise<void> {
    const s = this.socket;
    if (this.#closed || s.destroyed) return;
    if (this.#compress) return this.#compress.drain();
    this.#out.uncork();
    if (!s.writableNeedDrain) return;
    await drainOrClose(s);
  }

  get compressed(): boolean {
    return this.#compress !== null;
  }

  /**
   * RFC 4978 §3: compression starts right after the CRLF of the tagged OK (already written).
   * Anything the client pipelined after COMPRESS is discarded (it must wait for the OK).
   */
  startCompression(): void {
    this.#receiver = this.#newReceiver();
    this.#compress = new Compression(
      this.socket,
      (chunk) => this.#input(chunk),
      () => this.#ended(),
      (err) => {
        this.deps.log.info('imap.compress-failed', { session: this.id, ip: this.remoteAddress, err });
        this.socket.destroy();
      },
    );
    if (this.#paused) this.#compress.pause();
  }

  async writeAwait(data: string | Buffer): Promise<void> {
    if (!this.write(data)) await this.drain();
  }

  // ---- mailbox names

  /** Client mailbox name → store name (src/imap/mailbox-names.ts). */
  mailboxFromClient(raw: string): string {
    return mailboxFromClient(raw, this.utf8, this.deps.config.limits.maxMailboxNameBytes);
  }

  checkNewMailboxName(name: string): void {
    checkNewMailboxName(name);
  }

  mailboxToClient(name: string): string {
    return mailboxToClient(name, this.utf8);
  }

  // ---- authentication

  /** Called after a successful login: connection limit, bus subscription, state. */
  authenticated(account: Account, release: () => void): void {
    this.account = account;
    this.#release = release;
    this.state = 'auth';
    this.#receiver.setLimits(this.#receiverLimits());
    this.#timers.loggedIn();
    this.#unsubscribe = this.deps.store.bus.subscribe(account.id, (changes) => this.#onChanges(changes));
    this.deps.log.info('imap.login', { protocol: 'imap', session: this.id, user: account.address, ip: this.remoteAddress });
  }

  // ---- selected mailbox changes

  #onChanges(changes: readonly Change[]): void {
    for (const c of changes) {
      if (c.kind === 'account-removed') {
        this.write('* BYE Account removed\r\n');
        this.close();
        return;
      }
    }
    const sel = this.selected;
    sel?.apply(changes, this.origin);
    // IMAP4rev1: new messages are checked for \Recent (a store claim) before their EXISTS.
    if (sel?.recentSource && sel.pendingAdded.size) {
      void sel.settleRecent().then(() => {
        if (this.selected === sel) this.#pushChanges();
      });
    }
    // After a NOTIFY, it decides what is reported and when (RFC 5465 §3.1, §4).
    if (this.notify.active) this.notify.changed(changes);
    else if (sel) this.#pushChanges();
  }

  /**
   * During IDLE, report at once (RFC 2177 / RFC 9051 §6.3.13) — unless the client has not read
   * what it was sent: then the changes wait (merged in `selected`) until the socket drains. With
   * NOTIFY, whenever the command loop is free.
   */
  #pushChanges(): void {
    if (this.notify.active) this.notify.kick();
    else if (this.idle.active) this.idle.push();
  }

  /** Runs the command loop for what NOTIFY owes between commands (src/imap/notify.ts). */
  wake(): void {
    if (!this.#pumping && !this.#closed) this.#work = this.#pump();
  }

  /** The same before a tagged reply: in parts, with backpressure (131,072 EXPUNGEs are 2 MB). */
  async flushChangesAsync(allowExpunge: boolean): Promise<void> {
    if (this.notify.active) return this.notify.commandEnd(allowExpunge); // RFC 5465 §3.1
    await this.selected?.flushTo(this, this.flushOptions(allowExpunge));
  }

  /** Writes pending untagged EXISTS / EXPUNGE / VANISHED / FETCH for the selected mailbox. */
  flushChanges(allowExpunge: boolean): void {
    if (this.notify.active) return this.notify.kick(); // the command loop reports them (RFC 5465 §4)
    const sel = this.selected;
    if (!sel || !sel.hasPending) return;
    const out = sel.flush(this.flushOptions(allowExpunge));
    if (out) this.write(out);
  }

  // ---- input

  #input(chunk: Buffer): void {
    if (this.#closed) return;
    this.#receiver.push(chunk);
    if (this.#receiver.buffered > this.#inputHighWater) this.#pauseInput();
    if (!this.#pumping) this.#work = this.#pump();
  }

  #pauseInput(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.socket.pause();
    this.#compress?.pause();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    // A pipelined burst (50,000 × SELECT) is many short commands, each awaiting only resolved
    // promises: without a turn now and then nobody else's socket would be read until it ends.
    const budget = new LoopBudget(PUMP_SLICE_MS);
    try {
      while (!this.#closed) {
        // Output backpressure (see OUTPUT_HIGH_WATER): wait for the client to read.
        if (this.outputBuffered > OUTPUT_HIGH_WATER) {
          this.#pauseInput();
          await this.drain();
          // Over the mark with nothing to wait for (the deflater is still working): a turn.
          if (this.outputBuffered > OUTPUT_HIGH_WATER) await new Promise((r) => setImmediate(r));
          continue;
        }
        const ev = this.#receiver.next();
        if (!ev) {
          if (this.#leaving) {
            if (!this.#literals.appending) this.#bye();
            break;
          }
          // RFC 5465 §3.1: NOTIFY events between commands, in the loop so no command's output is split.
          if (this.notify.owed) {
            await this.notify.between();
            continue;
          }
          break;
        }
        await this.#onEvent(ev);
        if (this.#leaving && !this.#literals.appending) this.#bye(); // shutdown: after the response, before the next command
        await budget.pause();
      }
    } catch (err) {
      this.deps.log.error('imap.session-error', { session: this.id, err });
      this.write('* BYE Internal error\r\n');
      this.close();
    } finally {
      this.#pumping = false;
    }
    if (this.#inputEnded) {
      this.close();
      return;
    }
    if (this.#paused && !this.#closed) {
      this.#paused = false;
      this.socket.resume();
      this.#compress?.resume();
    }
  }

  async #onEvent(ev: ReceiverEvent): Promise<void> {
    switch (ev.kind) {
      case 'fatal':
        // An unbounded line or command: say why and close (RFC 9051 §7.1.5).
        this.write(
          ev.reason === 'line-too-long'
            ? `* BYE [TOOBIG] Line longer than ${this.#receiver.limits.maxLine} bytes${this.state === 'notauth' ? ' before login' : ''}\r\n`
            : '* BYE [TOOBIG] Command too large\r\n',
        );
        this.deps.log.warn('imap.line-too-long', { session: this.id, ip: this.remoteAddress, reason: ev.reason });
        this.close();
        return;
      case 'literal':
        await this.#literals.decide(this.#receiver, ev.pending, ev.size, ev.nonSync);
        return;
      case 'literal-data':
        await this.#literals.data(ev.data);
        return;
      case 'literal-end':
        this.#literals.end();
        return;
      case 'discarded':
        this.#literals.discarded(ev.command);
        return;
      case 'command':
        await this.#command(ev.command);
        return;
    }
  }

  /** Takes the staged APPEND messages / CATENATE parts, in literal order (the handler releases them). */
  takeAppend(): AppendStage[] {
    return this.#literals.take();
  }

  async #command(raw: RawCommand): Promise<void> {
    this.lastCommandAt = Date.now();
    this.#timers.activity();
    if (this.idle.active) {
      this.idle.end(raw);
      return;
    }
    if (this.continuation) {
      const cont = this.continuation;
      this.continuation = null;
      await cont(Buffer.concat(raw.segments).toString('latin1'));
      return;
    }
    if (raw.segments.length === 1 && raw.segments[0]!.length === 0) return; // empty line: ignore
    let tag = readTag(raw);
    let cmd: ImapCommand;
    try {
      const parsed = parseCommand(raw);
      tag = parsed.tag;
      cmd = parsed.command;
    } catch (err) {
      this.#literals.abort();
      if (!(err instanceof ImapParseError)) throw err;
      this.#badCount++;
      this.write(statusLine(err.tag ?? tag ?? '*', 'BAD', null, err.message));
      if (this.#badCount >= MAX_BAD_COMMANDS) {
        this.write('* BYE Too many invalid commands\r\n');
        this.close();
      }
      return;
    }
    this.#badCount = 0;
    const entry = COMMANDS[cmd.name] as unknown as { states: SessionState[]; handler: (s: ImapSession, tag: string, cmd: ImapCommand) => Promise<HandlerResult> };
    if (!entry.states.includes(this.state)) {
      this.#literals.abort();
      const why =
        this.state === 'notauth' ? 'Log in first' : this.state === 'auth' && entry.states.includes('selected') ? 'Select a mailbox first' : 'Command not valid in this state';
      this.write(statusLine(tag!, 'BAD', null, `${cmd.name}: ${why}`));
      return;
    }
    // RFC 9586 §3: with UIDONLY, sequence numbers in a command are a BAD.
    if (this.uidOnly && usesSequenceNumbers(cmd)) {
      this.#literals.abort();
      this.write(statusLine(tag!, 'BAD', 'UIDREQUIRED', UIDREQUIRED_TEXT));
      return;
    }
    // RFC 9051 §7.5.1; SORT / THREAD as SEARCH (RFC 5256 §3).
    const allowExpunge = !((cmd.name === 'FETCH' || cmd.name === 'STORE' || cmd.name === 'SEARCH' || cmd.name === 'SORT' || cmd.name === 'THREAD') && !cmd.uid);
    let result: HandlerResult;
    // What a stall report names (src/obs/loop-lag.ts).
    const done = activity.begin(`imap.command=${'uid' in cmd && cmd.uid ? 'UID ' : ''}${cmd.name} account=${this.account?.address ?? '-'} mailbox=${this.selected?.name ?? '-'}`);
    try {
      result = await entry.handler(this, tag!, cmd);
    } catch (err) {
      this.#literals.abort();
      if (err instanceof ImapBye) {
        this.write(statusLine('*', 'BYE', err.code, err.message));
        this.close();
        return;
      }
      let reply = toReply(err);
      if (!reply) {
        this.deps.log.error('imap.command-failed', { session: this.id, command: cmd.name, err });
        reply = { cond: 'NO', code: 'SERVERBUG', text: 'Internal error, the command was not completed' };
      }
      await this.flushChangesAsync(allowExpunge);
      this.write(statusLine(tag!, reply.cond, reply.code, reply.text));
      return;
    } finally {
      done();
    }
    if (result === null) return; // the handler answers later (IDLE, AUTHENTICATE) or closed
    await this.flushChangesAsync(allowExpunge);
    const r = typeof result === 'string' ? { code: null, text: result } : result;
    this.write(statusLine(tag!, 'OK', r.code ?? null, r.text));
  }

  // ---- STARTTLS (RFC 9051 §6.2.1)

  async startTls(): Promise<void> {
    const plain = this.socket as Socket;
    this.#out.uncork(); // the tagged OK goes out in plain text before the handshake
    plain.off('data', this.#onData);
    // Discard anything pipelined after STARTTLS (RFC 9051 §6.2.1: command injection).
    this.#receiver = this.#newReceiver();
    const tls = await this.deps.tls.upgrade(plain);
    this.socket = tls;
    this.tls = true;
    this.#attach(tls);
  }

  // ---- shutdown

  /** Unselects (no expunge). */
  unselect(): void {
    this.selected = null;
    this.savedSearch = [];
    if (this.state === 'selected') this.state = 'auth';
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.state = 'logout';
    this.idle.stop();
    this.#timers.stop();
    this.#receiver.discard();
    this.#literals.abort();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#release?.();
    this.#release = null;
    this.selected = null;
    const s = this.socket;
    if (!s.destroyed) {
      s.pause(); // nothing more is read: a client still sending is not buffered until the destroy
      // With COMPRESS the deflater's end (what is still in it, then the final block) ends the socket.
      if (this.#compress) this.#compress.end();
      else s.end();
      setTimeout(() => s.destroy(), 2000).unref();
    }
    for (const cb of this.#closedCallbacks) cb();
    this.#closedCallbacks = [];
  }

  /**
   * Server shutdown (RFC 9051 §7.1.5): BYE at once between commands and in IDLE, else after the
   * current response. `force` (drain time over): BYE during an APPEND upload too, destroy mid-response.
   */
  shutdown(force = false): void {
    this.#leaving = true;
    if (this.#closed) return;
    if (this.#literals.appending ? force : !this.#pumping) this.#bye();
    else if (force) this.socket.destroy();
  }

  #bye(): void {
    this.write('* BYE [UNAVAILABLE] Server shutting down\r\n');
    this.close();
  }

  /** Resolves when the command in progress (if any) is done with the store. */
  settled = (): Promise<void> => this.#work;
}

export { ImapBad, ImapNo };
