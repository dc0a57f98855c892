// APPEND (RFC 9051 §6.3.12) with UIDPLUS APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889, checked by
// the session before "+"), LITERAL+ and UTF8 (RFC 6855). The message was streamed into
// store.stageBlob while it arrived; OK only after store.append returned.
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { parseMessage } from '../../protocol/mime/parser.ts';
import type { StagedBlob } from '../../store/store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { StoreError } from '../../store/store.ts';

export const append: Handler<'APPEND'> = async (s, _tag, cmd) => {
  const stage = s.takeAppend();
  let blob: StagedBlob | null = null;
  try {
    let meta: MessageMeta;
    if (cmd.message !== null) {
      // A small message that was buffered (e.g. a literal the session did not recognise as the body).
      blob = await s.deps.store.stageBlob(cmd.message);
      meta = parseMessage(cmd.message);
    } else {
      if (!stage) throw new ImapNo('CANNOT', 'APPEND data missing');
      try {
        blob = await stage.blob;
      } catch (err) {
        if (err instanceof StoreError) throw new ImapNo('CANNOT', `Message could not be stored: ${err.message}`);
        throw err;
      }
      if (!stage.meta) throw new ImapNo('CANNOT', 'APPEND data incomplete');
      meta = await stage.meta;
    }
    const name = s.mailboxFromClient(cmd.mailbox);
    const mb = await s.deps.store.getMailbox(s.account!.id, name);
    // RFC 9051 §6.3.12: TRYCREATE when the mailbox does not exist.
    if (!mb) throw new ImapNo('TRYCREATE', `Mailbox ${name} does not exist`);
    if (blob.size === 0) throw new ImapNo('CANNOT', 'Empty message');
    const r = await s.deps.store.append(
      blob,
      meta,
      { mailboxId: mb.id, systemFlags: cmd.flags?.systemFlags ?? 0, keywords: cmd.flags?.keywords ?? [], internalDate: cmd.date ?? Date.now() },
      { origin: s.origin },
    );
    if (s.selected && s.selected.mailboxId === mb.id) s.selected.added([r.uid]);
    return { code: `APPENDUID ${r.uidValidity} ${r.uid}`, text: 'APPEND completed' };
  } finally {
    blob?.release();
  }
};
