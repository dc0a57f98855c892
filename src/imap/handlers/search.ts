// SEARCH and UID SEARCH (RFC 9051 §6.4.4), ESEARCH return options (RFC 4731; the IMAP4rev2 answer
// form), SEARCHRES SAVE (RFC 5182), CONDSTORE MODSEQ (RFC 7162 §3.1.5).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { runSearch } from '../search-eval.ts';
import { formatSeqSet, quotedOrNil } from '../../protocol/imap/response.ts';

export const search: Handler<'SEARCH'> = async (s, tag, cmd) => {
  if (cmd.charset !== null && cmd.charset !== 'UTF-8' && cmd.charset !== 'US-ASCII') {
    throw new ImapNo('BADCHARSET (UTF-8 US-ASCII)', `Charset ${cmd.charset} is not supported`);
  }
  const r = await runSearch(s, cmd.key);
  if (r.usedModseq) s.enableCondstore();
  const values = cmd.uid ? r.uids : r.seqs;
  const name = cmd.uid ? 'UID SEARCH' : 'SEARCH';
  if (cmd.returns === null && !s.rev2) {
    const mod = r.usedModseq && values.length ? ` (MODSEQ ${r.highestModseq})` : '';
    await s.writeAwait(`* SEARCH${values.map((v) => ' ' + v).join('')}${mod}\r\n`);
    return `${name} completed`;
  }
  let opts = cmd.returns ?? [];
  if (opts.length === 0) opts = ['ALL'];
  if (opts.includes('SAVE')) {
    s.savedSearch = r.uids;
    // RFC 5182 §2.4: SAVE alone produces no ESEARCH response.
    if (opts.length === 1) return `${name} completed`;
  }
  let out = `* ESEARCH (TAG ${quotedOrNil(tag)})${cmd.uid ? ' UID' : ''}`;
  if (values.length) {
    if (opts.includes('MIN')) out += ` MIN ${values[0]}`;
    if (opts.includes('MAX')) out += ` MAX ${values[values.length - 1]}`;
  }
  if (opts.includes('COUNT')) out += ` COUNT ${values.length}`;
  if (opts.includes('ALL') && values.length) out += ` ALL ${formatSeqSet(values)}`;
  if (r.usedModseq && values.length) out += ` MODSEQ ${returnedModseq(opts, r.modseqs, r.highestModseq)}`;
  await s.writeAwait(out + '\r\n');
  return `${name} completed`;
};

/**
 * RFC 7162 §3.1.5 with RFC 4731 §3.2: the MODSEQ of an ESEARCH is the highest of the messages
 * returned. With only MIN and/or MAX those are at most two messages; with ALL or COUNT every match
 * counts (as Dovecot does).
 */
function returnedModseq(opts: readonly string[], modseqs: readonly number[], highest: number): number {
  if (opts.includes('ALL') || opts.includes('COUNT')) return highest;
  let m = 0;
  if (opts.includes('MIN')) m = modseqs[0]!;
  if (opts.includes('MAX')) m = Math.max(m, modseqs[modseqs.length - 1]!);
  return m || highest;
}
