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
import { appendMessageMailbox, readCommandName, readTag } from '../protocol/imap/parser.ts';
import { statusLine } from '../protocol/imap/response.ts';
import { drainOrClose } from '../net/drain.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { toReply } from './errors.ts';
import type { ImapSession } from './session.ts';
import { MAX_BUFFERED_LITERAL, PREAUTH_LITERAL_COMMANDS, PREAUTH_MAX_BYTES } from './limits.ts';

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

export class Literals {
  readonly #s: ImapSession;
  /** The answer to a refused non-synchronizing literal, written once its data was read and dropped. */
  #discardReply: Refusal | null = null;
  #appendStream: PassThrough | null = null;
  #appendParser: MimeParser | null = null;
  readonly #budget = new LoopBudget(5);
  /** The APPEND message staged so far (taken by the APPEND handler, see take). */
  #append: AppendStage | null = null;

  constructor(s: ImapSession) {
    this.#s = s;
  }

  /** An APPEND message is being uploaded or waits for its handler. */
  get appending(): boolean {
    return this.#append !== null;
  }

  /** Decides about an announced literal before any of its data is read (RFC 7888 §4, RFC 7889 §4). */
  async decide(receiver: Receiver, pending: RawCommand, size: number, nonSync: boolean): Promise<void> {
    const s = this.#s;
    const head = readCommandName(pending);
    const tag = head?.tag ?? '*';
    // What may be read and dropped of a refused non-synchronizing literal: the command cap, or for
    // an APPEND within APPENDLIMIT refused for another reason (TRYCREATE, OVERQUOTA) the message,
    // since the client then acts on the answer (creates the mailbox and retries).
    let discardCap = receiver.limits.maxCommand;
    const refuse = (cond: 'NO' | 'BAD', code: string | null, text: string) => {
      if (!nonSync) {
        // A synchronizing literal: no "+", the client sends no data, the command ends here.
        s.write(statusLine(tag, cond, code, text));
        receiver.reject();
      } else if (size <= discardCap) {
        // The client sends the data anyway: read and drop it (at most the command cap), then answer.
        this.#discardReply = { cond, code, text };
        receiver.accept('discard');
      } else {
        this.#literalTooBig(tag, text);
      }
    };
    // Over a cap: NO/BAD [TOOBIG] for a synchronizing literal; for a non-synchronizing one,
    // RFC 7888 §4-5: BAD [TOOBIG] and close (reading it would cost what the cap prevents).
    const tooBig = (syncCond: 'NO' | 'BAD', text: string) => (nonSync ? this.#literalTooBig(tag, text) : refuse(syncCond, 'TOOBIG', text));
    if (s.idle.active || s.continuation) return refuse('BAD', null, 'Literal not expected here');
    if (s.state === 'notauth' && !PREAUTH_LITERAL_COMMANDS.has(head?.name ?? '')) return refuse('BAD', null, 'Log in first');
    const appendTo = head?.name === 'APPEND' ? appendMessageMailbox(pending) : null;
    if (appendTo !== null) {
      const limit = s.deps.config.limits.appendLimit;
      if (size > limit) return tooBig('NO', `Message is larger than the APPENDLIMIT of ${limit} bytes`);
      discardCap = limit;
      // Refuse before the upload what would be refused after it: no mailbox, no room.
      const refusal = await this.#appendRefusal(appendTo, size);
      if (refusal) return refuse(refusal.cond, refusal.code, refusal.text);
      if (s.closed) return;
      this.#startAppend(size);
      if (!nonSync) s.write('+ Ready for literal data\r\n');
      receiver.accept('stream');
      return;
    }
    const cap = s.state === 'notauth' ? PREAUTH_MAX_BYTES : MAX_BUFFERED_LITERAL;
    if (size > cap) return tooBig('BAD', `Literal larger than ${cap} bytes${s.state === 'notauth' ? ' before login' : ''}`);
    if (!nonSync) s.write('+ Ready for literal data\r\n');
    receiver.accept('buffer');
  }

  /** Why an APPEND of `size` bytes to the client's mailbox name would fail (TRYCREATE, OVERQUOTA), or null. */
  async #appendRefusal(appendTo: string, size: number): Promise<Refusal | null> {
    const s = this.#s;
    try {
      const name = s.mailboxFromClient(appendTo);
      if (!(await s.deps.store.getMailbox(s.account!.id, name))) return { cond: 'NO', code: 'TRYCREATE', text: `Mailbox ${name} does not exist` };
      const acc = await s.deps.store.getAccountById(s.account!.id);
      if (acc && acc.quota > 0 && acc.usedBytes + size > acc.quota) return { cond: 'NO', code: 'OVERQUOTA', text: 'The message does not fit in the mailbox quota' };
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
    if (pt && this.#append) {
      const meta = finishSliced(this.#appendParser!, () => this.#budget.pause());
      meta.catch(() => {}); // kept for the APPEND handler, which awaits it
      this.#append.meta = meta;
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

  #startAppend(size: number): void {
    this.abort();
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
    this.#append = stage;
  }

  /** Drops an APPEND upload (refused command, error, close); the staged blob is released. */
  abort(): void {
    if (this.#appendStream) {
      this.#appendStream.destroy(new Error('APPEND aborted'));
      this.#appendStream = null;
    }
    this.#appendParser = null;
    const a = this.#append;
    this.#append = null;
    if (a) a.blob.then((b) => b.release(), () => {});
  }

  /** Takes the staged APPEND message (the handler releases it). */
  take(): AppendStage | null {
    const a = this.#append;
    this.#append = null;
    return a;
  }
}
