// SORT and UID SORT (RFC 5256 §3) with the DISPLAY keys (RFC 5957) and CONDSTORE's MODSEQ
// (RFC 7162 §3.1.9): SEARCH, then the matches ordered by the keys stored at delivery.
import type { Handler } from '../commands.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { sortComparator, sortSliced } from '../../protocol/imap/sort-order.ts';
import { checkCharset, matchWithKeys } from '../sort.ts';
import { ImapBad } from '../errors.ts';

export const sort: Handler<'SORT'> = async (s, _tag, cmd) => {
  if (cmd.returns !== null) throw new ImapBad('SORT RETURN (ESORT) is not supported');
  checkCharset(cmd.charset);
  const budget = new LoopBudget(5);
  const m = await matchWithKeys(s, cmd.key, false, budget);
  if (m.usedModseq) s.enableCondstore();
  const ordered = await sortSliced(m.items, sortComparator(cmd.criteria), () => budget.pause());
  let out = '* SORT';
  for (const x of ordered) out += ' ' + (cmd.uid ? x.uid : x.seq);
  // RFC 7162 §3.1.9: with a MODSEQ criterion, a non-empty result ends with the highest MODSEQ.
  if (m.usedModseq && ordered.length) {
    let hi = 0;
    for (const v of m.modseqs.values()) if (v > hi) hi = v;
    out += ` (MODSEQ ${hi})`;
  }
  await s.writeAwait(out + '\r\n');
  return `${cmd.uid ? 'UID SORT' : 'SORT'} completed`;
};
