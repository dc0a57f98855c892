// SORT and UID SORT (RFC 5256 §3) with the DISPLAY keys (RFC 5957), ESORT return options (RFC 5267
// §3, answered as ESEARCH in sort order), PARTIAL (RFC 9394) and CONDSTORE's MODSEQ (RFC 7162
// §3.1.9, §3.1.10): SEARCH, then the matches in the order kept by the mailbox's key index
// (src/imap/sort-index.ts, src/imap/sort-run.ts). With RETURN (UPDATE) (CONTEXT=SORT, RFC 5267
// §4) the context needs every match's keys to place later changes (src/imap/context.ts), so that
// form reads them (matchWithKeys) and sorts them itself.
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { SortItem } from '../../protocol/imap/sort-order.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { sortComparator, sortSliced } from '../../protocol/imap/sort-order.ts';
import { checkCharset, matchWithKeys } from '../sort.ts';
import { sortedNumbers, sortMatches, sortResponse } from '../sort-run.ts';
import { esearch } from '../esearch.ts';
import { beginContext } from '../context.ts';
import { quotedOrNil } from '../../protocol/imap/response.ts';

type SortCmd = Parameters<Handler<'SORT'>>[2];

export const sort: Handler<'SORT'> = async (s, tag, cmd) => {
  checkCharset(cmd.charset);
  if (cmd.update) return sortWithContext(s, tag, cmd);
  const m = await sortMatches(s, cmd.criteria, cmd.key);
  if (m.usedModseq) s.enableCondstore();
  const name = cmd.uid ? 'UID SORT' : 'SORT';
  if (cmd.returns !== null) {
    const { uids, seqs } = sortedNumbers(m);
    const values = cmd.uid ? uids : seqs;
    const a = esearch(tag, cmd.uid, cmd.returns, cmd.partial, { values, uids, modseqs: uids.map((u) => m.modseqs.get(u) ?? 0), sorted: true }, m.usedModseq, false);
    if (a.saved) s.savedSearch = a.saved.sort((x, y) => x - y);
    if (a.line) await s.writeAwait(a.line);
    return `${name} completed`;
  }
  await s.writeAwait(sortResponse(m, cmd.uid));
  return `${name} completed`;
};

/** SORT RETURN (UPDATE …): RFC 5267 §4.3 (ESORT answer, then a live context). */
async function sortWithContext(s: ImapSession, tag: string, cmd: SortCmd): Promise<string> {
  const budget = new LoopBudget(5);
  // Noting changes from before the search reads the mailbox.
  const ctx = beginContext(s, tag, cmd.key, cmd.uid, cmd.criteria);
  let m: Awaited<ReturnType<typeof matchWithKeys>>;
  let ordered: SortItem[];
  try {
    m = await matchWithKeys(s, cmd.key, false, budget);
    ordered = await sortSliced(m.items, sortComparator(cmd.criteria), () => budget.pause());
  } catch (err) {
    ctx.abort();
    throw err;
  }
  if (m.usedModseq) s.enableCondstore();
  const uids = ordered.map((x) => x.uid);
  const values = cmd.uid ? uids : ordered.map((x) => x.seq);
  // The parser gives UPDATE only with RETURN, so returns is a list here.
  const a = esearch(tag, cmd.uid, cmd.returns ?? [], cmd.partial, { values, uids, modseqs: uids.map((u) => m.modseqs.get(u) ?? 0), sorted: true }, m.usedModseq, true);
  if (a.saved) s.savedSearch = a.saved.sort((x, y) => x - y);
  if (a.line) await s.writeAwait(a.line);
  const refused = ctx.install({ items: ordered });
  // RFC 5267 §4.3.1: the other return options are still honoured.
  if (refused) await s.writeAwait(`* NO [NOUPDATE ${quotedOrNil(tag)}] ${refused}\r\n`);
  return `${cmd.uid ? 'UID SORT' : 'SORT'} completed`;
}
