// SORT and UID SORT (RFC 5256 §3) with the DISPLAY keys (RFC 5957), ESORT return options (RFC 5267
// §3, answered as ESEARCH in sort order), PARTIAL (RFC 9394) and CONDSTORE's MODSEQ (RFC 7162
// §3.1.9, §3.1.10): SEARCH, then the matches in the order kept by the mailbox's key index
// (src/imap/sort-index.ts, src/imap/sort-run.ts).
import type { Handler } from '../commands.ts';
import { checkCharset } from '../sort.ts';
import { sortedNumbers, sortMatches, sortResponse } from '../sort-run.ts';
import { esearch } from '../esearch.ts';

export const sort: Handler<'SORT'> = async (s, tag, cmd) => {
  checkCharset(cmd.charset);
  const m = await sortMatches(s, cmd.criteria, cmd.key);
  if (m.usedModseq) s.enableCondstore();
  const name = cmd.uid ? 'UID SORT' : 'SORT';
  if (cmd.returns !== null) {
    const { uids, seqs } = sortedNumbers(m);
    const values = cmd.uid ? uids : seqs;
    const a = esearch(tag, cmd.uid, cmd.returns, cmd.partial, { values, uids, modseqs: uids.map((u) => m.modseqs.get(u) ?? 0), sorted: true }, m.usedModseq);
    if (a.saved) s.savedSearch = a.saved.sort((x, y) => x - y);
    if (a.line) await s.writeAwait(a.line);
    return `${name} completed`;
  }
  await s.writeAwait(sortResponse(m, cmd.uid));
  return `${name} completed`;
};
