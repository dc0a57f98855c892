// Literal decisions and the APPEND upload of one IMAP session. The receiver
// (src/protocol/imap/receiver.ts) announces each literal `{n}` / `{n+}` before any of its data;
// this decides at once: buffer it (small), stream it into the store (an APPEND message), read and
// drop it (a refused non-synchronizing literal), refuse it (a synchronizing one: no "+"), or, for a
// non-synchronizing literal over its cap, BAD [TOOBIG] and close (RFC 7888 §4).

import { PassThrough } from 'node:stream';
import type { StagedBlob } from '../store/store.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';
import { MimeParser, finishSliced } from '../protocol/mime/parser.ts';
import type { RawCommand, Receiver } from '../protocol/imap/receiver.ts';
import { appendLiteralTarget, readCommandName, readTag, type AppendLiteral } from '../protocol/imap/parser.ts';
import { statusLine } from '../protocol/imap/response.ts';
import { drainOrClose } from '../net/drain.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { toReply } from './errors.ts';
import { UIDREQUIRED_TEXT } from './uidonly.ts';
import type { ImapSession } from './session.ts';
import { APPEND_COMMAND_FACTOR, MAX_BUFFERED_LITERAL, PREAUTH_LITERAL_COMMANDS, PREAUTH_MAX_BYTES } from './limits.ts';

/** Bytes of an APPEND literal given to the MIME parser at a time (src/obs/loop-lag.ts LoopBudget between). */
const PARSE_SLICE = 4096;

/** An APPEND message being streamed into the store while it arrives. */
export interface AppendStage {
  size: number;
  blob: Promise<StagedBlob>;
  /** Set when the literal is complete; its last steps run sliced (finishSliced). */
  meta: Promise<MessageMeta> | null;
  error: unknown;
}

type Refusal = { cond: 'NO' | 'BAD'; code: string | null; text: string };

/** One literal being decided about. `discardCap`: what of it may be read and dropped if refused. */
interface Decision {
  receiver: Receiver;
  tag: string;
  size: number;
  nonSync: boolean;
  discardCap: number;
}

export class Literals {
  readonly #s: ImapSession;
  /** The answer to a refused non-synchronizing literal, written once its data was read and dropped. */
  #discardReply: Refusal | null = null;
  #appendStream: PassThrough | null = null;
  #appendParser: MimeParser | null = null;
  readonly #budget = new LoopBudget(5);
  /**
   * The APPEND messages (MULTIAPPEND, RFC 3502) and CATENATE text parts (RFC 4469) of the command
   * being read, staged in literal order (taken by the APPEND/REPLACE handler, see take), with the
   * command they belong to (its segment list, the same array for all of its literals).
   */
  #appends: AppendStage[] = [];
  #appendsOf: Buffer[] | null = null;
  #appendBytes = 0;

  constructor(s: ImapSession) {
    this.#s = s;
  }

  /** An APPEND message is being uploaded or waits for its handler. */
  get appending(): boolean {
    return this.#appends.length > 0;
  }

  /** Decides about an announced literal before any of its data is read (RFC 7888 §4, RFC 7889 §4). */
  async decide(receiver: Receiver, pending: RawCommand, size: number, nonSync: boolean): Promise<void> {
    const s = this.#s;
    const head = readCommandName(pending);
    const d: Decision = { receiver, tag: head?.tag ?? '*', size, nonSync, discardCap: receiver.limits.maxCommand };
    if (s.idle.active || s.continuation) return this.#refuse(d, 'BAD', null, 'Literal not expected here');
    if (s.state === 'notauth' && !PREAUTH_LITERAL_COMMANDS.has(head?.name ?? '')) return this.#refuse(d, 'BAD', null, 'Log in first');
    const name = head?.name ?? '';
    const target = name === 'APPEND' || name === 'REPLACE' || name === 'UID REPLACE' ? appendLiteralTarget(pending) : null;
    // A command already refused and being read and dropped: its further literals go the same way.
    if (this.#discardReply) {
      if (target) d.discardCap = s.deps.config.limits.appendLimit;
      return this.#refuse(d, this.#discardReply.cond, this.#discardReply.code, this.#discardReply.text);
    }
    // RFC 9586 §3: REPLACE by sequence number with UIDONLY, refused before its upload.
    if (target && name === 'REPLACE' && s.uidOnly) return this.#refuse(d, 'BAD', 'UIDREQUIRED', UIDREQUIRED_TEXT);
    if (target) return this.#decideAppend(d, pending, target);
    const cap = s.state === 'notauth' ? PREAUTH_MAX_BYTES : MAX_BUFFERED_LITERAL;
    if (size > cap) return this.#tooBig(d, 'BAD', `Literal larger than ${cap} bytes${s.state === 'notauth' ? ' before login' : ''}`);
    if (!nonSync) s.write('+ Ready for literal data\r\n');
    receiver.accept('buffer');
  }

  /** A message (or CATENATE text part) of an APPEND/REPLACE: checked, then streamed into the store. */
  async #decideAppend(d: Decision, pending: RawCommand, target: AppendLiteral): Promise<void> {
    const s = this.#s;
    // Stages of an earlier command that never reached its handler are dropped first.
    if (this.#appendsOf !== pending.segments) this.abort();
    const limit = s.deps.config.limits.appendLimit;
    if (d.size > limit) return this.#tooBig(d, 'NO', `Message is larger than the APPENDLIMIT of ${limit} bytes`);
    // What may be read and dropped of a refused non-synchronizing literal: for an APPEND within
    // APPENDLIMIT refused for another reason (TRYCREATE, OVERQUOTA) the message, since the client
    // then acts on the answer (creates the mailbox and retries).
    d.discardCap = limit;
    // RFC 8508 §3.5: REPLACE only in the selected state (the handler would refuse it after the upload).
    if (target.replace && s.state !== 'selected') return this.#refuse(d, 'BAD', null, 'REPLACE: Select a mailbox first');
    // RFC 3502 §6.3.11: "a zero-length message literal argument is an error, and MUST return a NO.
    // This can be used to cancel the append."
    if (d.size === 0 && target.part === null) return this.#refuse(d, 'NO', null, 'Empty message: APPEND cancelled');
    const total = this.#appendBytes + d.size;
    if (total > limit * APPEND_COMMAND_FACTOR) {
      return this.#refuse(d, 'NO', 'LIMIT', `One APPEND may carry at most ${limit * APPEND_COMMAND_FACTOR} bytes; send the messages in several`);
    }
    // Refuse before the upload what would be refused after it: no mailbox, no room (REPLACE: the
    // quota is counted net of the replaced message, RFC 8508 §3.4, which the store does).
    const refusal = await this.#appendRefusal(target.mailbox, target.replace ? null : total);
    if (refusal) return this.#refuse(d, refusal.cond, refusal.code, refusal.text);
    if (s.closed) return;
    this.#startAppend(d.size, pending.segments);
    if (!d.nonSync) s.write('+ Ready for literal data\r\n');
    d.receiver.accept('stream');
  }

  /**
   * A refused literal. Synchronizing: no "+", the client sends no data, the command ends here.
   * Non-synchronizing: the client sends the data anyway; read and drop it (up to discardCap), then
   * answer; over that, BAD [TOOBIG] and close.
   */
  #refuse(d: Decision, cond: 'NO' | 'BAD', code: string | null, text: string): void {
    if (!d.nonSync) {
      this.#discardReply = null;
      this.abort();
      this.#s.write(statusLine(d.tag, cond, code, text));
      d.receiver.reject();
    } else if (d.size <= d.discardCap) {
      this.#discardReply = { cond, code, text };
      d.receiver.accept('discard');
    } else {
      this.#literalTooBig(d.tag, text);
    }
  }

  /**
   * Over a cap: NO/BAD [TOOBIG] for a synchronizing literal; for a non-synchronizing one,
   * RFC 7888 §4-5: BAD [TOOBIG] and close (reading it would cost what the cap prevents).
   */
  #tooBig(d: Decision, syncCond: 'NO' | 'BAD', text: string): void {
    if (d.nonSync) this.#literalTooBig(d.tag, text);
    else this.#refuse(d, syncCond, 'TOOBIG', text);
  }

  /** Why an APPEND of `size` bytes to the client's mailbox name would fail (TRYCREATE, OVERQUOTA; no quota check for null), or null. */
  async #appendRefusal(appendTo: string, size: number | null): Promise<Refusal | null> {
    const s = this.#s;
    try {
      const name = s.mailboxFromClient(appendTo);
      if (!(await s.deps.store.getMailbox(s.account!.id, name))) return { cond: 'NO', code: 'TRYCREATE', text: `Mailbox ${name} does not exist` };
      const acc = await s.deps.store.getAccountById(s.account!.id);
      if (size !== null && acc && acc.quota > 0 && acc.usedBytes + size > acc.quota) return { cond: 'NO', code: 'OVERQUOTA', text: 'The message does not fit in the mailbox quota' };
      return null;
    } catch (err) {
      const r = toReply(err);
      if (r) return r;
      throw err;
    }
  }

  /** A non-synchronizing literal over its cap: BAD [TOOBIG], BYE, close (RFC 7888 §4). */
  #literalTooBig(tag: string, text: string): void {
    const s = this.#s;
    this.abort();
    s.write(statusLine(tag, 'BAD', 'TOOBIG', text));
    s.write('* BYE [TOOBIG] Non-synchronizing literal too large; closing\r\n');
    s.deps.log.warn('imap.literal-too-big', { session: s.id, ip: s.remoteAddress });
    s.close();
  }

  /** A streamed literal's bytes: into the MIME parser and the store, with backpressure. */
  async data(chunk: Buffer): Promise<void> {
    const pt = this.#appendStream;
    if (!pt) return;
    // The MIME parser in slices with a turn once the budget is spent: a chunk of thousands of tiny
    // MIME parts held the loop ~200 ms in one write (the session's pump awaits this before the next event).
    const parser = this.#appendParser;
    for (let i = 0; parser && i < chunk.length && this.#appendParser === parser; i += PARSE_SLICE) {
      parser.write(chunk.subarray(i, i + PARSE_SLICE));
      await this.#budget.pause();
    }
    if (this.#appendStream !== pt) return; // aborted meanwhile
    if (!pt.write(chunk)) await drainOrClose(pt);
  }

  /** The streamed literal is complete: the message's meta is known, the store gets its end. */
  end(): void {
    const pt = this.#appendStream;
    const stage = this.#appends[this.#appends.length - 1];
    if (pt && stage) {
      const meta = finishSliced(this.#appendParser!, () => this.#budget.pause());
      meta.catch(() => {}); // kept for the APPEND handler, which awaits it
      stage.meta = meta;
      pt.end();
    }
    this.#appendStream = null;
    this.#appendParser = null;
  }

  /** The command of a read-and-dropped literal ended: its NO/BAD. */
  discarded(command: RawCommand): void {
    const tag = readTag(command) ?? '*';
    const r = this.#discardReply ?? { cond: 'BAD' as const, code: null, text: 'Command too large' };
    this.#discardReply = null;
    this.abort();
    this.#s.write(statusLine(tag, r.cond, r.code, r.text));
  }

  #startAppend(size: number, command: Buffer[]): void {
    const pt = new PassThrough({ highWaterMark: 256 * 1024 });
    // The store reads `pt` only after an await (its temporary file): an upload aborted before then
    // (the client closed mid-literal) destroys `pt` with an error nobody listened to yet, which
    // ended the process. The staging still sees it (a destroyed stream's iterator throws it).
    pt.on('error', () => {});
    const stage: AppendStage = { size, blob: this.#s.deps.store.stageBlob(pt, { maxBytes: size }), meta: null, error: null };
    // Keep a failure until the APPEND handler looks at it (no unhandled rejection).
    stage.blob.catch((err) => {
      stage.error = err;
      pt.resume();
    });
    this.#appendStream = pt;
    this.#appendParser = new MimeParser();
    this.#appends.push(stage);
    this.#appendsOf = command;
    this.#appendBytes += size;
  }

  /** Drops an APPEND upload (refused command, error, close); the staged blob is released. */
  abort(): void {
    if (this.#appendStream) {
      this.#appendStream.destroy(new Error('APPEND aborted'));
      this.#appendStream = null;
    }
    this.#appendParser = null;
    for (const a of this.take()) a.blob.then((b) => b.release(), () => {});
  }

  /** Takes the staged APPEND messages and text parts, in literal order (the handler releases them). */
  take(): AppendStage[] {
    const a = this.#appends;
    this.#appends = [];
    this.#appendsOf = null;
    this.#appendBytes = 0;
    return a;
  }
}
