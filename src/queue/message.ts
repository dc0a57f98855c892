// The bytes a queued message is sent as: its prefix (the DKIM-Signature fields made at submission,
// kept in the queue row) followed by its blob from byte `start` (the Return-Path the SMTP layer
// stored on top is skipped: RFC 5321 §4.4, a relayed message carries none). The prefix goes on top
// of the fields it signed (RFC 6376 §5.6); the rest is byte for byte what was signed.

import { Readable } from 'node:stream';
import type { QueueMessage } from '../store/queue.ts';

type Queued = Pick<QueueMessage, 'blob' | 'prefix' | 'start' | 'size'>;

/** The outgoing message as a stream (the blob is streamed, never read whole). */
export function outgoingStream(m: Queued, streamBlob: (blobId: string, start?: number) => Readable): Readable {
  if (!m.prefix) return m.start ? streamBlob(m.blob.id, m.start) : streamBlob(m.blob.id);
  const head = Buffer.from(m.prefix, 'utf8');
  async function* bytes() {
    yield head;
    yield* streamBlob(m.blob.id, m.start);
  }
  return Readable.from(bytes(), { objectMode: false });
}

/** The outgoing message's first `end` bytes (all of it by default), e.g. for a DSN's returned content. */
export async function outgoingBytes(m: Queued, readBlob: (blobId: string, start?: number, end?: number) => Promise<Buffer>, end = m.size): Promise<Buffer> {
  const head = Buffer.from(m.prefix, 'utf8');
  const want = Math.max(0, Math.min(end, m.size));
  if (want <= head.length) return head.subarray(0, want);
  const body = await readBlob(m.blob.id, m.start, m.start + want - head.length);
  return head.length ? Buffer.concat([head, body]) : body;
}
