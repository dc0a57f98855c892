// One IMAP connection: reads commands through the protocol receiver, checks state, runs one handler
// per command, reports mailbox changes from the bus at the moments RFC 9051 allows, and writes
// replies with backpressure.

import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ServerDeps, ConnectionInfo } from '../net/types.ts';
import type { Account, StagedBlob } from '../store/store.ts';
import type { Change } from '../store/bus.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';
import { MimeParser } from '../protocol/mime/parser.ts';
import { Receiver, type RawCommand, type ReceiverEvent } from '../protocol/imap/receiver.ts';
import { ImapParseError, appendMessageMailbox, parseCommand, readCommandName, readTag } from '../protocol/imap/parser.ts';
import { statusLine } from '../protocol/imap/response.ts';
import type { ImapCommand } from '../protocol/imap/types.ts';
import { ImapBad, ImapBye, ImapNo, toReply } from './errors.ts';
import { SelectedMailbox } from './selected.ts';
import { checkNewMailboxName, mailboxFromClient, mailboxToClient } from './mailbox-names.ts';
import { capabilities } from './capabilities.ts';
import { COMMANDS, type HandlerResult } from './commands.ts';
import { activity } from '../obs/loop-lag.ts';

export type SessionState = 'notauth' | 'auth' | 'selected' | 'logout';

/** Largest literal buffered in memory for anything but an APPEND message. */
export const MAX_BUFFERED_LITERAL = 64 * 1024;
/** Pause reading when this much unparsed input is queued. */
const INPUT_HIGH_WATER = 256 * 1024;
/**
 * Before login a connection may hold at most this much: its longest line, one command with its
 * literals, and queued input. Literals only for the commands that carry credentials or ID.
 */
export const PREAUTH_MAX_BYTES = 8 * 1024;
const PREAUTH_LITERAL_COMMANDS = new Set(['LOGIN', 'AUTHENTICATE', 'ID']);
/**
 * Output backpressure: no further command is read while this much output waits for the client
 * (socket.writableLength), so a client that sends without reading can't make us buffer without
 * bound. Input stops as well (the input high-water mark pauses the socket).
 */
export const OUTPUT_HIGH_WATER = 256 * 1024;
/** Consecutive syntax errors before the server gives up on a client. */
const MAX_BAD_COMMANDS = 50;

/** An APPEND message being streamed into the store while it arrives. */
export interface AppendStage {
  size: number;
  blob: Promise<StagedBlob>;
  meta: MessageMeta | null;
  error: unknown;
}

let nextSessionId = 1;

/** Resolves at the stream's next 'drain' or 'close'. */
function drainOrClose(s: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

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
  idle: { tag: string; keepalive: NodeJS.Timeout } | null = null;
  /** A handler waiting for a continuation line (AUTHENTICATE). */
  continuation: ((line: string) => Promise<void>) | null = null;
  append: AppendStage | null = null;

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
  #discardReply: { cond: 'NO' | 'BAD'; code: string | null; text: string } | null = null;
  #appendStream: PassThrough | null = null;
  #appendParser: MimeParser | null = null;
  #autologout: NodeJS.Timeout | null = null;
  #preauthTimer: NodeJS.Timeout | null = null;
  /** An IDLE update waits for the client to read what it was sent before (see #onChanges). */
  #idleFlushPending = false;
  #onData = (chunk: Buffer) => this.#input(chunk);
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
    this.remoteAddress = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.#receiver = this.#newReceiver();
    this.#attach(socket);
    this.#armAutologout();
    this.#armPreauthTimeout();
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
    socket.on('end', () => {
      this.#inputEnded = true;
      if (!this.#pumping) this.close();
    });
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
      appendLimit: this.deps.config.limits.appendLimit,
    });
  }

  // ---- output

  write(data: string | Buffer): boolean {
    if (this.#closed || this.socket.destroyed) return true;
    return this.socket.write(data);
  }

  /** Waits until the socket's buffer drained (or the socket closed). */
  async drain(): Promise<void> {
    const s = this.socket;
    if (this.#closed || s.destroyed || !s.writableNeedDrain) return;
    await drainOrClose(s);
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
    if (this.#preauthTimer) clearTimeout(this.#preauthTimer);
    this.#preauthTimer = null;
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
    if (!sel) return;
    sel.apply(changes, this.origin);
    // During IDLE, report at once (RFC 2177 / RFC 9051 §6.3.13) — unless the client has not read
    // what it was sent: then the changes wait (merged in `selected`) until the socket drains.
    if (this.idle) this.#idleFlush();
  }

  #idleFlush(): void {
    if (this.socket.writableLength <= OUTPUT_HIGH_WATER) {
      this.flushChanges(true);
      return;
    }
    if (this.#idleFlushPending) return;
    this.#idleFlushPending = true;
    void this.drain().then(() => {
      this.#idleFlushPending = false;
      if (this.idle && !this.#closed) this.#idleFlush();
    });
  }

  /** The same before a tagged reply: in parts, with backpressure (131,072 EXPUNGEs are 2 MB). */
  async flushChangesAsync(allowExpunge: boolean): Promise<void> {
    await this.selected?.flushTo(this, { allowExpunge, qresync: this.qresync, condstore: this.condstore });
  }

  /** Writes pending untagged EXISTS / EXPUNGE / VANISHED / FETCH for the selected mailbox. */
  flushChanges(allowExpunge: boolean): void {
    const sel = this.selected;
    if (!sel || !sel.hasPending) return;
    const out = sel.flush({ allowExpunge, qresync: this.qresync, condstore: this.condstore });
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
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed) {
        // Output backpressure (see OUTPUT_HIGH_WATER): wait for the client to read.
        if (this.socket.writableLength > OUTPUT_HIGH_WATER) {
          this.#pauseInput();
          await this.drain();
          continue;
        }
        const ev = this.#receiver.next();
        if (!ev) break;
        await this.#onEvent(ev);
        if (this.#leaving && !this.append) this.#bye(); // shutdown: after the response, before the next command
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
        await this.#onLiteral(ev.pending, ev.size, ev.nonSync);
        return;
      case 'literal-data': {
        const pt = this.#appendStream;
        if (!pt) return;
        this.#appendParser?.write(ev.data);
        if (!pt.write(ev.data)) await drainOrClose(pt);
        return;
      }
      case 'literal-end': {
        const pt = this.#appendStream;
        if (pt && this.append) {
          this.append.meta = this.#appendParser!.end();
          pt.end();
        }
        this.#appendStream = null;
        this.#appendParser = null;
        return;
      }
      case 'discarded': {
        const tag = readTag(ev.command) ?? '*';
        const r = this.#discardReply ?? { cond: 'BAD' as const, code: null, text: 'Command too large' };
        this.#discardReply = null;
        this.#abortAppend();
        this.write(statusLine(tag, r.cond, r.code, r.text));
        return;
      }
      case 'command':
        await this.#command(ev.command);
        return;
    }
  }

  /** Decides about an announced literal before any of its data is read (RFC 7888 §4, RFC 7889 §4). */
  async #onLiteral(pending: RawCommand, size: number, nonSync: boolean): Promise<void> {
    const head = readCommandName(pending);
    const tag = head?.tag ?? '*';
    // What may be read and dropped of a refused non-synchronizing literal: the command cap, or for
    // an APPEND within APPENDLIMIT refused for another reason (TRYCREATE, OVERQUOTA) the message,
    // since the client then acts on the answer (creates the mailbox and retries).
    let discardCap = this.#receiver.limits.maxCommand;
    const refuse = (cond: 'NO' | 'BAD', code: string | null, text: string) => {
      if (!nonSync) {
        // A synchronizing literal: no "+", the client sends no data, the command ends here.
        this.write(statusLine(tag, cond, code, text));
        this.#receiver.reject();
      } else if (size <= discardCap) {
        // The client sends the data anyway: read and drop it (at most the command cap), then answer.
        this.#discardReply = { cond, code, text };
        this.#receiver.accept('discard');
      } else {
        this.#literalTooBig(tag, text);
      }
    };
    // Over a cap: NO/BAD [TOOBIG] for a synchronizing literal; for a non-synchronizing one,
    // RFC 7888 §4-5: BAD [TOOBIG] and close (reading it would cost what the cap prevents).
    const tooBig = (syncCond: 'NO' | 'BAD', text: string) => (nonSync ? this.#literalTooBig(tag, text) : refuse(syncCond, 'TOOBIG', text));
    if (this.idle || this.continuation) return refuse('BAD', null, 'Literal not expected here');
    if (this.state === 'notauth' && !PREAUTH_LITERAL_COMMANDS.has(head?.name ?? '')) return refuse('BAD', null, 'Log in first');
    const appendTo = head?.name === 'APPEND' ? appendMessageMailbox(pending) : null;
    if (appendTo !== null) {
      const limit = this.deps.config.limits.appendLimit;
      if (size > limit) return tooBig('NO', `Message is larger than the APPENDLIMIT of ${limit} bytes`);
      discardCap = limit;
      // Refuse before the upload what would be refused after it: no mailbox, no room.
      try {
        const name = this.mailboxFromClient(appendTo);
        if (!(await this.deps.store.getMailbox(this.account!.id, name))) return refuse('NO', 'TRYCREATE', `Mailbox ${name} does not exist`);
        const acc = await this.deps.store.getAccountById(this.account!.id);
        if (acc && acc.quota > 0 && acc.usedBytes + size > acc.quota) return refuse('NO', 'OVERQUOTA', 'The message does not fit in the mailbox quota');
      } catch (err) {
        const r = toReply(err);
        if (r) return refuse(r.cond, r.code, r.text);
        throw err;
      }
      if (this.#closed) return;
      this.#startAppend(size);
      if (!nonSync) this.write('+ Ready for literal data\r\n');
      this.#receiver.accept('stream');
      return;
    }
    const cap = this.state === 'notauth' ? PREAUTH_MAX_BYTES : MAX_BUFFERED_LITERAL;
    if (size > cap) return tooBig('BAD', `Literal larger than ${cap} bytes${this.state === 'notauth' ? ' before login' : ''}`);
    if (!nonSync) this.write('+ Ready for literal data\r\n');
    this.#receiver.accept('buffer');
  }

  /** A non-synchronizing literal over its cap: BAD [TOOBIG], BYE, close (RFC 7888 §4). */
  #literalTooBig(tag: string, text: string): void {
    this.#abortAppend();
    this.write(statusLine(tag, 'BAD', 'TOOBIG', text));
    this.write('* BYE [TOOBIG] Non-synchronizing literal too large; closing\r\n');
    this.deps.log.warn('imap.literal-too-big', { session: this.id, ip: this.remoteAddress });
    this.close();
  }

  #startAppend(size: number): void {
    this.#abortAppend();
    const pt = new PassThrough({ highWaterMark: 256 * 1024 });
    const stage: AppendStage = { size, blob: this.deps.store.stageBlob(pt, { maxBytes: size }), meta: null, error: null };
    // Keep a failure until the APPEND handler looks at it (no unhandled rejection).
    stage.blob.catch((err) => {
      stage.error = err;
      pt.resume();
    });
    this.#appendStream = pt;
    this.#appendParser = new MimeParser();
    this.append = stage;
  }

  #abortAppend(): void {
    if (this.#appendStream) {
      this.#appendStream.destroy(new Error('APPEND aborted'));
      this.#appendStream = null;
    }
    this.#appendParser = null;
    const a = this.append;
    this.append = null;
    if (a) a.blob.then((b) => b.release(), () => {});
  }

  /** Takes the staged APPEND message (the handler releases it). */
  takeAppend(): AppendStage | null {
    const a = this.append;
    this.append = null;
    return a;
  }

  async #command(raw: RawCommand): Promise<void> {
    this.lastCommandAt = Date.now();
    this.#armAutologout();
    if (this.idle) {
      this.#endIdle(raw);
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
      this.#abortAppend();
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
      this.#abortAppend();
      const why =
        this.state === 'notauth' ? 'Log in first' : this.state === 'auth' && entry.states.includes('selected') ? 'Select a mailbox first' : 'Command not valid in this state';
      this.write(statusLine(tag!, 'BAD', null, `${cmd.name}: ${why}`));
      return;
    }
    const allowExpunge = !((cmd.name === 'FETCH' || cmd.name === 'STORE' || cmd.name === 'SEARCH') && !cmd.uid); // RFC 9051 §7.5.1
    let result: HandlerResult;
    // What a stall report names (src/obs/loop-lag.ts).
    const done = activity.begin(`imap.command=${'uid' in cmd && cmd.uid ? 'UID ' : ''}${cmd.name} account=${this.account?.address ?? '-'} mailbox=${this.selected?.name ?? '-'}`);
    try {
      result = await entry.handler(this, tag!, cmd);
    } catch (err) {
      this.#abortAppend();
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

  // ---- IDLE (RFC 9051 §6.3.13, RFC 2177)

  startIdle(tag: string): void {
    const every = this.deps.config.limits.imapIdleKeepalive;
    // 0 turns the keepalive off.
    const keepalive = setInterval(() => {
      if (every > 0) this.write('* OK Still here\r\n');
    }, every > 0 ? every : 2 ** 30);
    keepalive.unref();
    this.idle = { tag, keepalive };
    this.write('+ idling\r\n');
    this.flushChanges(true);
  }

  #endIdle(raw: RawCommand): void {
    const idle = this.idle!;
    clearInterval(idle.keepalive);
    this.idle = null;
    const line = Buffer.concat(raw.segments).toString('latin1').trim();
    this.flushChanges(true);
    if (line.toUpperCase() === 'DONE') this.write(statusLine(idle.tag, 'OK', null, 'IDLE terminated'));
    else this.write(statusLine(idle.tag, 'BAD', null, 'Expected DONE'));
  }

  // ---- autologout (RFC 9051 §5.4: at least 30 minutes; never during IDLE)

  #armAutologout(): void {
    if (this.#autologout) clearTimeout(this.#autologout);
    const ms = this.deps.config.limits.imapIdleTimeout;
    if (!(ms > 0)) return; // 0: no autologout
    this.#autologout = setTimeout(() => {
      if (this.idle) {
        this.#armAutologout();
        return;
      }
      this.write('* BYE Autologout; idle for too long\r\n');
      this.close();
    }, ms);
    this.#autologout.unref();
  }

  // ---- login timeout: an unauthenticated connection gets limits.preauthTimeout to log in

  #armPreauthTimeout(): void {
    const ms = this.deps.config.limits.preauthTimeout;
    if (!(ms > 0)) return; // 0: none
    this.#preauthTimer = setTimeout(() => {
      if (this.state !== 'notauth' || this.#closed) return;
      this.write('* BYE Login timeout; log in sooner after connecting\r\n');
      this.deps.log.info('imap.preauth-timeout', { session: this.id, ip: this.remoteAddress });
      this.close();
    }, ms);
    this.#preauthTimer.unref();
  }

  // ---- STARTTLS (RFC 9051 §6.2.1)

  async startTls(): Promise<void> {
    const plain = this.socket as Socket;
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
    if (this.idle) clearInterval(this.idle.keepalive);
    this.idle = null;
    if (this.#autologout) clearTimeout(this.#autologout);
    if (this.#preauthTimer) clearTimeout(this.#preauthTimer);
    this.#receiver.discard();
    this.#abortAppend();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#release?.();
    this.#release = null;
    this.selected = null;
    const s = this.socket;
    if (!s.destroyed) {
      s.pause(); // nothing more is read: a client still sending is not buffered until the destroy
      s.end();
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
    if (this.append ? force : !this.#pumping) this.#bye();
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
