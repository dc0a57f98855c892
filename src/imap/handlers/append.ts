// APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS APPENDUID (RFC 4315 §3; a UID
// set for several messages, RFC 3502 "MULTIAPPEND Interaction with UIDPLUS"), APPENDLIMIT
// (RFC 7889, checked by the session before "+"), LITERAL+, UTF8 (RFC 6855) and CATENATE (RFC 4469).
// Each message was streamed into store.stageBlob (written and fsync'd) while it arrived; all of
// them are committed in one store transaction — every one or none (RFC 3502 §6.3.11) — and the OK
// comes only after that commit.
import type { Handler } from '../commands.ts';
import type { AppendItem } from '../../store/store.ts';
import { uidRanges } from '../selected.ts';
import { StagedLiterals, appendItem, appendMailbox, messageData } from './append-data.ts';

export const append: Handler<'APPEND'> = async (s, _tag, cmd) => {
  const staged = new StagedLiterals(s.takeAppend());
  try {
    const mb = await appendMailbox(s, cmd.mailbox);
    const items: AppendItem[] = [];
    for (const m of cmd.messages) items.push(appendItem(m, await messageData(s, m, staged)));
    const r = await s.deps.store.appendMessages(mb.id, items, { origin: s.origin });
    if (s.selected && s.selected.mailboxId === mb.id) s.selected.added(r.uids);
    return { code: `APPENDUID ${r.uidValidity} ${uidRanges(r.uids)}`, text: 'APPEND completed' };
  } finally {
    staged.release();
  }
};
