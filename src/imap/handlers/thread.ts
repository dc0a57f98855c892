// THREAD and UID THREAD (RFC 5256 §3): SEARCH, then ORDEREDSUBJECT or REFERENCES over the keys
// stored at delivery. The response is unchanged by a MODSEQ criterion (RFC 7162 §3.1.9).
import type { Handler } from '../commands.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { formatThreads, orderedSubject, references } from '../../protocol/imap/thread.ts';
import { checkCharset, matchWithKeys } from '../sort.ts';

export const thread: Handler<'THREAD'> = async (s, _tag, cmd) => {
  checkCharset(cmd.charset);
  const budget = new LoopBudget(5);
  const refs = cmd.algorithm === 'REFERENCES';
  const m = await matchWithKeys(s, cmd.key, refs, budget);
  if (m.usedModseq) s.enableCondstore();
  const pause = () => budget.pause();
  const threads = refs ? await references(m.items, pause) : await orderedSubject(m.items, pause);
  await budget.pause();
  const text = formatThreads(threads, cmd.uid ? (x) => x.uid : (x) => x.seq);
  await s.writeAwait(text === '' ? '* THREAD\r\n' : `* THREAD ${text}\r\n`);
  return `${cmd.uid ? 'UID THREAD' : 'THREAD'} completed`;
};
