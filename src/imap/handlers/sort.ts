// SORT and UID SORT (RFC 5256 §3) with the DISPLAY keys (RFC 5957), ESORT return options (RFC 5267
// §3, answered as ESEARCH in sort order), PARTIAL (RFC 9394) and CONDSTORE's MODSEQ (RFC 7162
// §3.1.9, §3.1.10): SEARCH, then the matches ordered by the keys stored at delivery.
import type { Handler } from '../commands.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { sortComparator, sortSliced } from '../../protocol/imap/sort-order.ts';
import { checkCharset, matchWithKeys } from '../sort.ts';
import { esearch } from '../esearch.ts';
import { beginContext } from '../context.ts';
import { quotedOrNil } from '../../protocol/imap/response.ts';

export const sort: Handler<'SORT'> = async (s, tag, cmd) => {
  checkCharset(cmd.charset);
  const budget = new LoopBudget(5);
  // RFC 5267 §4.3 UPDATE (CONTEXT=SORT): noting changes from before the search reads the mailbox.
  const ctx = cmd.update ? beginContext(s, tag, cmd.key, cmd.uid, cmd.criteria) : null;
  let m: Awaited<ReturnType<typeof matchWithKeys>>;
  let ordered: typeof m.items;
  try {
    m = await matchWithKeys(s, cmd.key, false, budget);
    ordered = await sortSliced(m.items, sortComparator(cmd.criteria), () => budget.pause());
  } catch (err) {
    ctx?.abort();
    throw err;
  }
  if (m.usedModseq) s.enableCondstore();
  const name = cmd.uid ? 'UID SORT' : 'SORT';
  if (cmd.returns !== null) {
    const uids = ordered.map((x) => x.uid);
    const values = cmd.uid ? uids : ordered.map((x) => x.seq);
    const a = esearch(tag, cmd.uid, cmd.returns, cmd.partial, { values, uids, modseqs: uids.map((u) => m.modseqs.get(u) ?? 0), sorted: true }, m.usedModseq, cmd.update);
    if (a.saved) s.savedSearch = a.saved.sort((x, y) => x - y);
    if (a.line) await s.writeAwait(a.line);
    const refused = ctx?.install({ items: ordered });
    // RFC 5267 §4.3.1: the other return options are still honoured.
    if (refused) await s.writeAwait(`* NO [NOUPDATE ${quotedOrNil(tag)}] ${refused}\r\n`);
    return `${name} completed`;
  }
  let out = '* SORT';
  for (const x of ordered) out += ' ' + (cmd.uid ? x.uid : x.seq);
  // RFC 7162 §3.1.9: with a MODSEQ criterion, a non-empty result ends with the highest MODSEQ.
  if (m.usedModseq && ordered.length) {
    let hi = 0;
    for (const v of m.modseqs.values()) if (v > hi) hi = v;
    out += ` (MODSEQ ${hi})`;
  }
  await s.writeAwait(out + '\r\n');
  return `${name} completed`;
};
