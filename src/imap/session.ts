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
import { decodeMailboxUtf7, encodeMailboxUtf7 } from '../protocol/imap/utf7.ts';
import { imapString } from '../protocol/imap/strings.ts';
import { statusLine } from '../protocol/imap/response.ts';
import type { ImapCommand } from '../protocol/imap/types.ts';
import { ImapBad, ImapBye, ImapNo, toReply } from './errors.ts';
import { SelectedMailbox } from './selected.ts';
import { capabilities } from './capabilities.ts';
import { COMMANDS, type HandlerResult } from './commands.ts';
import { activity } from '../obs/loop-lag.ts';

export type SessionState = 'notauth' | 'auth' | 'selected' | 'logout';

/** Largest literal buffered in memory for anything but an APPEND message. */
export const MAX_BUFFERED_LITERAL = 64 * 1024;
/** Pause reading when this much unparsed input is queued. */
const INPUT_HIGH_WATER = 256 * 1024;
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
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] ${deps.config.hostname} Pillarbox IMAP ready\r\n`);
  }

  #newReceiver(): Receiver {
    const maxLine = this.deps.config.limits.maxLineLength;
    return new Receiver({ maxLine, maxCommand: maxLine + 4 * MAX_BUFFERED_LITERAL });
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
    await new Promise<void>((resolve) => {
      const done = () => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
  }

  async writeAwait(data: string | Buffer): Promise<void> {
    if (!this.write(data)) await this.drain();
  }

  // ---- mailbox names

  /** Client mailbox name → store name (UTF-8, `/` separator, INBOX canonical). */
  mailboxFromClient(raw: string): string {
    let name = raw;
    if (!this.utf8 || raw.includes('&')) {
      // Modified UTF-7 from rev1 clients (RFC 3501 §5.1.3); a UTF-8 client's "&" is literal.
      if (!this.utf8) {
        const d = decodeMailboxUtf7(raw);
        if (d === null) throw new ImapNo('CANNOT', 'Mailbox name is not valid modified UTF-7');
        name = d;
      }
    }
    if (name.length === 0) throw new ImapNo('CANNOT', 'Empty mailbox name');
    if (name.length > 1000) throw new ImapNo('CANNOT', 'Mailbox name too long');
    // INBOX is case-insensitive (RFC 9051 §5.1).
    const first = name.split('/')[0]!;
    if (first.toUpperCase() === 'INBOX') name = 'INBOX' + name.slice(first.length);
    return name;
  }

  /** Validates a name for CREATE/RENAME targets. */
  checkNewMailboxName(name: string): void {
    if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) throw new ImapNo('CANNOT', 'Invalid mailbox name');
    for (const ch of name) {
      const c = ch.codePointAt(0)!;
      if (c < 0x20 || c === 0x7f || ch === '*' || ch === '%') throw new ImapNo('CANNOT', 'Mailbox names cannot contain control characters or wildcards');
    }
  }

  /** Store name → wire form (astring). */
  mailboxToClient(name: string): string {
    return imapString(this.utf8 ? name : encodeMailboxUtf7(name), this.utf8);
  }

  // ---- authentication

  /** Called after a successful login: connection limit, bus subscription, state. */
  authenticated(account: Account, release: () => void): void {
    this.account = account;
    this.#release = release;
    this.state = 'auth';
    this.#unsubscribe = this.deps.store.bus.subscribe(account.id, (changes) => this.#onChanges(changes));
    this.deps.log.info('imap.login', { session: this.id, account: account.address, ip: this.remoteAddress });
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
    // During IDLE, report at once (RFC 2177 / RFC 9051 §6.3.13).
    if (this.idle) this.flushChanges(true);
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
    if (this.#receiver.buffered > INPUT_HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed) {
        const ev = this.#receiver.next();
        if (!ev) break;
        await this.#onEvent(ev);
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
            ? `* BYE [TOOBIG] Line longer than ${this.deps.config.limits.maxLineLength} bytes\r\n`
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
        if (!pt.write(ev.data)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              pt.off('drain', done);
              pt.off('close', done);
              resolve();
            };
            pt.on('drain', done);
            pt.on('close', done);
          });
        }
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
    const refuse = (cond: 'NO' | 'BAD', code: string | null, text: string) => {
      if (nonSync) {
        // The client sends the data anyway: read and drop it, then answer.
        this.#discardReply = { cond, code, text };
        this.#receiver.accept('discard');
      } else {
        this.write(statusLine(tag, cond, code, text));
        this.#receiver.reject();
      }
    };
    if (this.idle || this.continuation) {
      refuse('BAD', null, 'Literal not expected here');
      return;
    }
    const appendTo = head?.name === 'APPEND' ? appendMessageMailbox(pending) : null;
    if (appendTo !== null) {
      if (this.state !== 'auth' && this.state !== 'selected') return refuse('BAD', null, 'Log in first');
      const limit = this.deps.config.limits.appendLimit;
      if (size > limit) return refuse('NO', 'TOOBIG', `Message is larger than the APPENDLIMIT of ${limit} bytes`);
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
    if (size > MAX_BUFFERED_LITERAL) return refuse('BAD', 'TOOBIG', `Literal larger than ${MAX_BUFFERED_LITERAL} bytes`);
    if (!nonSync) this.write('+ Ready for literal data\r\n');
    this.#receiver.accept('buffer');
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

  // ---- STARTTLS (RFC 9051 §6.2.1)

  async startTls(): Promise<void> {
    const plain = this.socket as Socket;
    plain.off('data', this.#onData);
    // Discard anything pipelined after STARTTLS (RFC 9051 §6.2.1: command injection).
    this.#receiver = this.#newReceiver();
    const tls = await this.deps.tls.upgrade(plain);
    this.socket = tls;
    this.tls = true;
    tls.on('data', this.#onData);
    tls.on('error', () => this.close());
    tls.on('close', () => this.close());
    tls.on('end', () => {
      this.#inputEnded = true;
      if (!this.#pumping) this.close();
    });
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
    this.#abortAppend();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#release?.();
    this.#release = null;
    this.selected = null;
    const s = this.socket;
    if (!s.destroyed) {
      s.end();
      setTimeout(() => s.destroy(), 2000).unref();
    }
    for (const cb of this.#closedCallbacks) cb();
    this.#closedCallbacks = [];
  }

  /** Server shutdown: BYE and close. */
  shutdown(): void {
    this.write('* BYE Server shutting down\r\n');
    this.close();
  }
}

export { ImapBad, ImapNo };
