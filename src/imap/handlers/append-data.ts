// The message data of APPEND and REPLACE: each append-message (RFC 4466 §2.3) as a durable blob
// and its parse, from the literals the session streamed into the store while they arrived
// (src/imap/literals.ts), from a small buffered literal, or built from CATENATE parts (RFC 4469,
// handlers/catenate.ts). Every blob is released once the command is over (committed or not).
import type { ImapSession } from '../session.ts';
import type { AppendStage } from '../literals.ts';
import type { AppendMessage } from '../../protocol/imap/types.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { parseMessage } from '../../protocol/mime/parser.ts';
import { StoreError, type AppendItem, type BlobRef, type Mailbox, type StagedBlob } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import { catenate } from './catenate.ts';

/** The literals one command streamed into the store, taken in literal order. */
export class StagedLiterals {
  readonly #stages: AppendStage[];
  #next = 0;
  /** Blobs made by the handler itself (buffered messages, CATENATE results). */
  readonly owned: StagedBlob[] = [];

  constructor(stages: AppendStage[]) {
    this.#stages = stages;
  }

  /** The next streamed literal, durable (written and fsync'd): its blob and its parse. */
  async next(): Promise<{ blob: StagedBlob; meta: MessageMeta | null }> {
    const st = this.#stages[this.#next++];
    if (!st) throw new ImapNo('CANNOT', 'APPEND data missing');
    try {
      return { blob: await st.blob, meta: st.meta === null ? null : await st.meta };
    } catch (err) {
      if (err instanceof StoreError) throw new ImapNo('CANNOT', `Message could not be stored: ${err.message}`);
      throw err;
    }
  }

  /** Drops every staging pin (the committed messages hold their own blob references). */
  release(): void {
    for (const st of this.#stages) st.blob.then((b) => b.release(), () => {});
    for (const b of this.owned) b.release();
  }
}

/** One append-message as a durable blob and its parse. */
export async function messageData(s: ImapSession, m: AppendMessage, staged: StagedLiterals): Promise<{ blob: BlobRef; meta: MessageMeta }> {
  if (m.catenate) return catenate(s, m.catenate, staged);
  if (m.message !== null) {
    // A small message that was buffered (a literal the session did not recognise as the body).
    if (m.message.length === 0) throw new ImapNo(null, 'Empty message: APPEND cancelled');
    const blob = await s.deps.store.stageBlob(m.message);
    staged.owned.push(blob);
    return { blob, meta: parseMessage(m.message) };
  }
  const { blob, meta } = await staged.next();
  if (!meta) throw new ImapNo('CANNOT', 'APPEND data incomplete');
  // RFC 3502 §6.3.11: a zero-length message is a NO (the session refuses it before its data).
  if (blob.size === 0) throw new ImapNo(null, 'Empty message: APPEND cancelled');
  return { blob, meta };
}

export function appendItem(m: AppendMessage, data: { blob: BlobRef; meta: MessageMeta }): AppendItem {
  return { blob: data.blob, meta: data.meta, systemFlags: m.flags?.systemFlags ?? 0, keywords: m.flags?.keywords ?? [], internalDate: m.date ?? Date.now() };
}

/** The destination mailbox; RFC 9051 §6.3.12: TRYCREATE when it does not exist. */
export async function appendMailbox(s: ImapSession, raw: string): Promise<Mailbox> {
  const name = s.mailboxFromClient(raw);
  const mb = await s.deps.store.getMailbox(s.account!.id, name);
  if (!mb) throw new ImapNo('TRYCREATE', `Mailbox ${name} does not exist`);
  return mb;
}
