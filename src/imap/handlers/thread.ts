// THREAD and UID THREAD (RFC 5256 §3): SEARCH, then ORDEREDSUBJECT or REFERENCES over the keys
// stored at delivery. The response is unchanged by a MODSEQ criterion (RFC 7162 §3.1.9).
import type { Handler } from '../commands.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { formatThreadParts, orderedSubject, references } from '../../protocol/imap/thread.ts';
import { checkCharset, matchWithKeys } from '../sort.ts';

export const thread: Handler<'THREAD'> = async (s, _tag, cmd) => {
  checkCharset(cmd.charset);
  const budget = new LoopBudget(5);
  const refs = cmd.algorithm === 'REFERENCES';
  const m = await matchWithKeys(s, cmd.key, refs, budget);
  if (m.usedModseq) s.enableCondstore();
  const pause = () => budget.pause();
  const threads = refs ? await references(m.items, pause) : await orderedSubject(m.items, pause);
  // One response line, written in ~64 KB pieces with event-loop turns between (100,000 messages: ~700 KB).
  let head = threads.length ? '* THREAD ' : '* THREAD';
  for (const part of formatThreadParts(threads, cmd.uid ? (x) => x.uid : (x) => x.seq)) {
    await budget.pause();
    await s.writeAwait(head + part);
    head = '';
  }
  await s.writeAwait(head + '\r\n');
  return `${cmd.uid ? 'UID THREAD' : 'THREAD'} completed`;
};
