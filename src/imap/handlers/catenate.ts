// CATENATE (RFC 4469): one APPEND (or REPLACE, RFC 8508 §4.2) message built from TEXT literals and
// IMAP URLs of messages / message parts of this account (§3; URL forms in
// src/protocol/imap/imap-url.ts). The pieces are located first (NO [BADURL url] for the first one
// that can't be, §4.1; NO [TOOBIG] when the sum is over APPENDLIMIT, §4.2), then streamed — the
// TEXT literals from the blobs the session staged while they arrived, the URL parts by range from
// their messages' blobs, octets unchanged (§3) — into a new durable blob, parsed on the way. No
// \Seen is set on a referenced message (§3).
import { Readable } from 'node:stream';
import type { ImapSession } from '../session.ts';
import type { CatPart } from '../../protocol/imap/types.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { MimeParser } from '../../protocol/mime/parser.ts';
import { parseImapUrl } from '../../protocol/imap/imap-url.ts';
import { filterHeaderFields, parseSection, resolveSection } from '../../protocol/imap/section.ts';
import type { BlobRef } from '../../store/store.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { ImapNo } from '../errors.ts';
import type { StagedLiterals } from './append-data.ts';

/** Bytes of a stored blob, or bytes in hand (a filtered header block, a buffered literal). */
type Piece = Buffer | { blobId: string; start: number; end: number };

const size = (p: Piece) => (Buffer.isBuffer(p) ? p.length : p.end - p.start);

/** RFC 4469 §5 url-resp-text: TEXT-CHAR but "]". */
function badUrl(url: string, why: string): ImapNo {
  // eslint-disable-next-line no-control-regex
  const text = url.replace(/[\]\x00-\x1f\x7f]/g, '?').slice(0, 200); // one class, linear
  return new ImapNo(`BADURL ${text}`, `CATENATE: ${why}`);
}

/** The bytes a URL names (RFC 4469 §3: as FETCH BODY[section]<partial> would return them). */
async function urlPiece(s: ImapSession, url: string): Promise<Piece> {
  const u = parseImapUrl(url);
  if (!u) throw badUrl(url, 'unsupported or invalid IMAP URL');
  let mailboxId: number;
  if (u.mailbox === null) {
    if (!s.selected) throw badUrl(url, 'no mailbox selected');
    mailboxId = s.selected.mailboxId;
    if (u.uidValidity !== null && u.uidValidity !== s.selected.uidValidity) throw badUrl(url, 'UIDVALIDITY changed');
  } else {
    const mb = await s.deps.store.getMailbox(s.account!.id, u.mailbox);
    if (!mb) throw badUrl(url, 'no such mailbox');
    if (u.uidValidity !== null && u.uidValidity !== mb.uidValidity) throw badUrl(url, 'UIDVALIDITY changed');
    mailboxId = mb.id;
  }
  const [rec] = await s.deps.store.getMessages(mailboxId, [u.uid]);
  if (!rec) throw badUrl(url, 'no such message');
  let piece: Piece = { blobId: rec.blobId, start: 0, end: rec.size };
  if (u.section !== null) {
    const spec = parseSection(u.section);
    const r = spec && resolveSection(rec.meta, spec);
    if (!r || r.kind === 'empty') throw badUrl(url, 'no such body part');
    piece =
      r.kind === 'bytes'
        ? { blobId: rec.blobId, start: r.start, end: r.end }
        : filterHeaderFields(await s.deps.store.readBlob(rec.blobId, r.start, r.end), r.names, r.not);
  }
  if (u.partial) {
    const { start, length } = u.partial;
    if (Buffer.isBuffer(piece)) piece = piece.subarray(Math.min(start, piece.length), length === null ? piece.length : Math.min(start + length, piece.length));
    else {
      const a = Math.min(piece.start + start, piece.end);
      piece = { ...piece, start: a, end: length === null ? piece.end : Math.min(a + length, piece.end) };
    }
  }
  return piece;
}

export async function catenate(s: ImapSession, parts: CatPart[], staged: StagedLiterals): Promise<{ blob: BlobRef; meta: MessageMeta }> {
  const pieces: Piece[] = [];
  for (const part of parts) {
    if (part.kind === 'url') pieces.push(await urlPiece(s, part.url));
    else if (part.data !== null) pieces.push(part.data);
    else {
      const { blob } = await staged.next();
      pieces.push({ blobId: blob.id, start: 0, end: blob.size });
    }
  }
  const limit = s.deps.config.limits.appendLimit;
  const total = pieces.reduce((n, p) => n + size(p), 0);
  if (total > limit) throw new ImapNo('TOOBIG', `The catenated message (${total} bytes) is larger than the APPENDLIMIT of ${limit} bytes`);
  if (total === 0) throw new ImapNo(null, 'Empty message: APPEND cancelled');
  const store = s.deps.store;
  const parser = new MimeParser();
  const budget = new LoopBudget(5);
  // The MIME parser in slices with a turn between (as for an uploaded literal, src/imap/literals.ts).
  async function* bytes(): AsyncGenerator<Buffer> {
    for (const p of pieces) {
      const chunks = Buffer.isBuffer(p) ? [p] : size(p) > 0 ? store.streamBlob(p.blobId, p.start, p.end) : [];
      for await (const chunk of chunks as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += 4096) {
          parser.write(chunk.subarray(i, i + 4096));
          await budget.pause();
        }
        yield chunk;
      }
    }
  }
  const blob = await store.stageBlob(Readable.from(bytes()), { maxBytes: limit });
  staged.owned.push(blob);
  return { blob, meta: parser.end() };
}
