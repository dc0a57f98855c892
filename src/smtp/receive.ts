// DATA: the client's bytes (after dot-unstuffing, RFC 5321 §4.5.2) go, behind our Return-Path and
// Received fields, at the same time to store.stageBlob and to the streaming MIME parser — or, when
// the message must be inspected whole first (the MX's SPF/DKIM/DMARC check), into memory, bounded
// by the message size limit, and are staged afterwards (stageMessage). A message only the outbound
// queue takes stays in memory up to `inlineMax` bytes, parsed as it comes ('inline': the queue stores
// it with its rows, one commit for both), and is staged from the moment it grows past that.
//
// The client's DATA is always read to its end (so the protocol stays in step), whatever happens to
// the staging; a body past the limit is discarded, never stored (RFC 1870 §6.3: 552 after the data).

import { PassThrough } from 'node:stream';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { StagedBlob, Store } from '../store/store.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';
import { ReceivedCounter } from '../protocol/smtp/trace.ts';
import type { Logger } from '../obs/log.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { createMetaSink, type MetaSink } from './meta.ts';
import { connections, DataAborted, SmtpError } from './connection.ts';

export type ReceivedData =
  | { kind: 'staged'; blob: StagedBlob; meta: MessageMeta; hops: number }
  /** Kept in memory (o.inlineMax; the prefix included), not staged. */
  | { kind: 'inline'; raw: Buffer; meta: MessageMeta; hops: number }
  | { kind: 'buffered'; raw: Buffer; hops: number };

export interface ReceiveOptions {
  store: Store;
  log: Logger;
  session: SMTPServerSession;
  /** limits.maxMessageSize (the client's bytes, without our prefix). */
  max: number;
  /** limits.smtpTimeout: the whole transfer gets twice this (RFC 5321 §4.5.3.2.6). */
  timeout: number;
  /** Return-Path and Received fields, CRLF. */
  prefix: Buffer;
  /** Keep the message in memory instead of staging it (the prefix is not included then). */
  buffer: boolean;
  /** Keep a message of up to this many bytes (prefix included) in memory, parsed, not staged ('inline');
   *  a bigger one is staged from the moment it passes this size. */
  inlineMax?: number;
}

/** Reads the DATA stream; throws SmtpError 552 past the size limit, DataAborted if the client went away. */
export async function receiveData(stream: SMTPServerDataStream, o: ReceiveOptions): Promise<ReceivedData> {
  const { session, max } = o;
  const counter = new ReceivedCounter();
  const meta = o.buffer ? null : createMetaSink();
  const chunks: Buffer[] = [];
  let out = null as PassThrough | null;
  /** Bytes kept in `chunks` while inline (the prefix included). */
  let inline = o.buffer || o.inlineMax === undefined ? -1 : o.prefix.length;
  let received = 0;
  let oversize = false;
  let failed = false;
  // Input is paused while the staging stream is full or the parser is behind; resumed when neither.
  const held = { out: false, parse: false };
  const release = (why: keyof typeof held) => {
    held[why] = false;
    if (!held.out && !held.parse) stream.resume();
  };
  const parser = meta ? new SlicedParse(meta, () => release('parse')) : null;

  // Assigned in stage() (a closure): typed wide so the checks below are not narrowed away.
  let staging = null as Promise<StagedBlob> | null;
  /** Starts the staging stream with what was kept so far (the prefix, and inline chunks). */
  const stage = (head: Buffer[]): PassThrough => {
    const s = new PassThrough({ highWaterMark: 256 * 1024 });
    // The store starts reading `s` only after an await (its temporary file): a DATA cut off
    // before then destroys `s` with an error nobody listened to yet, which ended the process.
    // The staging still sees that error (a destroyed stream's iterator throws it).
    s.on('error', () => {});
    for (const b of head) s.write(b);
    staging = o.store.stageBlob(s, { maxBytes: max + o.prefix.length });
    staging.catch(() => {
      failed = true;
      stream.resume();
    });
    s.on('close', () => stream.resume());
    return s;
  };
  if (meta) {
    meta.write(o.prefix);
    if (inline < 0) out = stage([o.prefix]);
    else chunks.push(o.prefix);
  }

  const deadline = setTimeout(() => {
    o.log.info('smtp.data-timeout', { session: session.id, received });
    const conn = connections.get(session);
    conn?.send(421, '4.4.2 Message transfer took too long; closing connection');
    conn?._socket.destroy();
  }, 2 * o.timeout);
  deadline.unref();

  const ended = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (oversize || failed) return;
      if (received > max) {
        oversize = true;
        out?.destroy();
        chunks.length = 0;
        return;
      }
      counter.write(chunk);
      if (!meta) {
        chunks.push(chunk);
        return;
      }
      if (!out) {
        inline += chunk.length;
        chunks.push(chunk);
        // Past the inline size: staged from here on, what was kept first.
        if (inline > o.inlineMax!) {
          out = stage(chunks.splice(0));
          inline = -1;
        }
      } else if (!out.write(chunk)) {
        held.out = true;
        stream.pause();
        out.once('drain', () => release('out'));
      }
      if (parser!.push(chunk)) {
        held.parse = true;
        stream.pause();
      }
    });
    stream.once('end', () => {
      if (!oversize && !failed) out?.end();
      resolve();
    });
    // The data stream errs (or is destroyed without an error) only when the connection goes away
    // before the final dot: never an 'end' then.
    const aborted = () => {
      out?.destroy(new Error('DATA aborted'));
      reject(new DataAborted(received));
    };
    stream.once('error', aborted);
    stream.once('close', () => {
      if (!stream.readableEnded) aborted();
    });
  });

  let blob: StagedBlob | null = null;
  let handed = false;
  try {
    await ended;
    if (staging) blob = await staging.catch(() => null);
    await parser?.done();
    if (oversize) throw new SmtpError(552, `5.3.4 Message exceeds the fixed maximum message size of ${max} bytes`);
    if (!meta) return { kind: 'buffered', raw: Buffer.concat(chunks), hops: counter.count };
    if (!out) return { kind: 'inline', raw: Buffer.concat(chunks), meta: meta.end(), hops: counter.count };
    if (!blob) throw new SmtpError(451, '4.3.0 Local error in processing; try again later');
    const staged = { kind: 'staged' as const, blob, meta: await parser!.finish(), hops: counter.count };
    handed = true;
    return staged;
  } finally {
    clearTimeout(deadline);
    // Unpin a body that is not handed to the caller (also if staging finished after a failure).
    if (!handed) {
      if (blob) blob.release();
      else staging?.then((b) => b.release(), () => {});
    }
  }
}

/**
 * Slices the MIME parser is fed in, with an event-loop turn once PARSE_BUDGET_MS of parsing has run:
 * one 64 KiB socket chunk of tiny MIME parts (11,329 `--zz` parts in 0.5 MB) took 300 ms in one go.
 */
const META_SLICE = 4096;
const PARSE_BUDGET_MS = 5;
/** Bytes received but not parsed yet above which the client's input is paused. */
const PARSE_BACKLOG = 256 * 1024;

/** Feeds a MetaSink in time-bounded slices, in order, behind the reception. */
class SlicedParse {
  readonly #sink: MetaSink;
  readonly #caughtUp: () => void;
  readonly #budget = new LoopBudget(PARSE_BUDGET_MS);
  #work: Promise<void> = Promise.resolve();
  #backlog = 0;

  constructor(sink: MetaSink, caughtUp: () => void) {
    this.#sink = sink;
    this.#caughtUp = caughtUp;
  }

  /** Queues a chunk; true when the backlog is over PARSE_BACKLOG (pause input until caughtUp is called). */
  push(chunk: Buffer): boolean {
    const over = this.#backlog <= PARSE_BACKLOG && this.#backlog + chunk.length > PARSE_BACKLOG;
    this.#backlog += chunk.length;
    this.#work = this.#work.then(async () => {
      await feedSliced(this.#sink, chunk, this.#budget);
      const before = this.#backlog;
      this.#backlog -= chunk.length;
      if (before > PARSE_BACKLOG && this.#backlog <= PARSE_BACKLOG) this.#caughtUp();
    });
    return over;
  }

  /** Resolves when everything queued is parsed (rejects if the parser threw). */
  done(): Promise<void> {
    return this.#work;
  }

  /** The message's meta, its last steps (the root header's ENVELOPE and SEARCH texts) sliced too. */
  finish(): Promise<MessageMeta> {
    return this.#sink.finish(() => this.#budget.pause());
  }
}

async function feedSliced(sink: MetaSink, buf: Buffer, budget: LoopBudget): Promise<void> {
  for (let i = 0; i < buf.length; i += META_SLICE) {
    sink.write(buf.subarray(i, i + META_SLICE));
    await budget.pause();
  }
}

/** Stages a message held in memory (parts concatenated) and computes its MessageMeta. */
export async function stageMessage(store: Store, parts: Buffer[], maxBytes: number): Promise<{ blob: StagedBlob; meta: MessageMeta }> {
  const raw = Buffer.concat(parts);
  const sink = createMetaSink();
  const budget = new LoopBudget(PARSE_BUDGET_MS);
  await feedSliced(sink, raw, budget);
  const meta = await sink.finish(() => budget.pause());
  const blob = await store.stageBlob(raw, { maxBytes });
  return { blob, meta };
}

/** The message without the byte ranges [start, end) (sorted or not, overlapping or not). */
export function withoutRanges(raw: Buffer, ranges: Array<[number, number]>): Buffer[] {
  const sorted = ranges
    .map(([a, b]) => [Math.max(0, Math.min(a, raw.length)), Math.max(0, Math.min(b, raw.length))] as [number, number])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  const out: Buffer[] = [];
  let at = 0;
  for (const [a, b] of sorted) {
    if (a > at) out.push(raw.subarray(at, a));
    at = Math.max(at, b);
  }
  if (at < raw.length) out.push(raw.subarray(at));
  return out;
}
