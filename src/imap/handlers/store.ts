// STORE and UID STORE (RFC 9051 §6.4.6) with CONDSTORE UNCHANGEDSINCE / MODIFIED (RFC 7162 §3.1.3).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';
import { flagList, formatSeqSet } from '../../protocol/imap/response.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { fetchOpen } from '../uidonly.ts';

export const store: Handler<'STORE'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  if (sel.readOnly) throw new ImapNo('READ-ONLY', 'Mailbox is read-only');
  if (cmd.unchangedSince !== null) s.enableCondstore();
  const uids = resolveSet(s, cmd.set, cmd.uid);
  const name = cmd.uid ? 'UID STORE' : 'STORE';
  if (uids.length === 0) return `${name} completed`;
  // The store changes a step of messages per commit (other sessions get each step's FETCHes).
  const r = await s.deps.store.storeFlags(sel.mailboxId, uids, cmd.op, cmd.flags, {
    unchangedSince: cmd.unchangedSince ?? undefined,
    origin: s.origin,
  });
  // One FETCH per changed message (131,072 for `STORE 1:* +FLAGS (\Seen)`): written in ~64 KB
  // parts with backpressure, an event-loop turn between parts once the budget is spent. The
  // updates and the session's UID list are both ascending: one merge walk gives the numbers.
  const budget = new LoopBudget();
  let out = '';
  let si = 0;
  let last = 0;
  for (const u of r.updated) {
    let seq: number;
    if (u.uid > last) {
      while (si < sel.uids.length && sel.uids[si]! < u.uid) si++;
      seq = sel.uids[si] === u.uid ? si + 1 : 0;
      last = u.uid;
    } else seq = sel.seqOf(u.uid);
    if (!seq) continue;
    if (u.modseq > sel.highestModseq) sel.highestModseq = u.modseq;
    const items: string[] = [];
    const o = fetchOpen(s.uidOnly, seq, u.uid, !s.uidOnly && (cmd.uid || s.qresync));
    // RFC 7162 §3.1.3: with UNCHANGEDSINCE the MODSEQ is reported even for .SILENT; with CONDSTORE
    // on, Pillarbox (like Dovecot) always reports it so the client's cache keeps the new MODSEQ.
    if (!cmd.silent) items.push(`FLAGS ${flagList(u.systemFlags, u.keywords, sel.isRecent(u.uid))}`);
    // RFC 3501 §7.2.6: a keyword new to the mailbox is announced in FLAGS before a FETCH shows it.
    if (!cmd.silent && u.keywords.length && sel.noteKeywords(u.keywords)) out += sel.flagsResponses();
    if (s.condstore) items.push(`MODSEQ (${u.modseq})`);
    if (!cmd.silent || s.condstore) out += `${o.head}${o.more && items.length ? ' ' : ''}${items.join(' ')})\r\n`;
    // A pending report for the same message from another session is now stale.
    sel.pendingFlags.delete(u.uid);
    if (out.length >= 65536) {
      await s.writeAwait(out);
      out = '';
      if (s.closed) return null;
      await budget.pause();
    }
  }
  if (out) await s.writeAwait(out);
  if (r.modified.length) {
    const set = cmd.uid ? r.modified : r.modified.map((u) => sel.seqOf(u)).filter((n) => n > 0);
    return { code: `MODIFIED ${formatSeqSet(set)}`, text: 'Conditional STORE failed for some messages' };
  }
  return `${name} completed`;
};
