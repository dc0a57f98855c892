// SEARCH and UID SEARCH (RFC 9051 §6.4.4), ESEARCH return options (RFC 4731; the IMAP4rev2 answer
// form), PARTIAL (RFC 9394), SEARCHRES SAVE (RFC 5182), CONDSTORE MODSEQ (RFC 7162 §3.1.5); the
// ESEARCH line itself in ../esearch.ts.
import type { Handler } from '../commands.ts';
import { runSearch } from '../search-eval.ts';
import { esearch } from '../esearch.ts';
import { quotedOrNil } from '../../protocol/imap/response.ts';
import { checkCharset } from '../sort.ts';
import { beginContext } from '../context.ts';

export const search: Handler<'SEARCH'> = async (s, tag, cmd) => {
  if (cmd.charset !== null) checkCharset(cmd.charset);
  // RFC 5267 §4.3 UPDATE: the context notes changes from before the search reads the mailbox.
  const ctx = cmd.update ? beginContext(s, tag, cmd.key, cmd.uid, null) : null;
  let r: Awaited<ReturnType<typeof runSearch>>;
  try {
    r = await runSearch(s, cmd.key);
  } catch (err) {
    ctx?.abort();
    throw err;
  }
  if (r.usedModseq) s.enableCondstore();
  const values = cmd.uid ? r.uids : r.seqs;
  const name = cmd.uid ? 'UID SEARCH' : 'SEARCH';
  if (cmd.returns === null && !s.rev2) {
    const mod = r.usedModseq && values.length ? ` (MODSEQ ${r.highestModseq})` : '';
    await s.writeAwait(`* SEARCH${values.map((v) => ' ' + v).join('')}${mod}\r\n`);
    return `${name} completed`;
  }
  const a = esearch(tag, cmd.uid, cmd.returns ?? [], cmd.partial, { values, uids: r.uids, modseqs: r.modseqs, sorted: false }, r.usedModseq, cmd.update);
  if (a.saved) s.savedSearch = a.saved;
  if (a.line) await s.writeAwait(a.line);
  const refused = ctx?.install({ uids: r.uids });
  // RFC 5267 §4.3.1: the other return options are still honoured.
  if (refused) await s.writeAwait(`* NO [NOUPDATE ${quotedOrNil(tag)}] ${refused}\r\n`);
  return `${name} completed`;
};
