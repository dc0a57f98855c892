// THREAD and UID THREAD (RFC 5256 §3): SEARCH, then ORDEREDSUBJECT or REFERENCES over the keys
// stored at delivery, cached per mailbox (src/imap/thread-cache.ts). The response is unchanged by
// a MODSEQ criterion (RFC 7162 §3.1.9).
import type { Handler } from '../commands.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { checkCharset } from '../sort.ts';
import { threadMatches, threadResponse } from '../thread-cache.ts';

export const thread: Handler<'THREAD'> = async (s, _tag, cmd) => {
  checkCharset(cmd.charset);
  const t = await threadMatches(s, cmd.algorithm, cmd.key);
  if (t.usedModseq) s.enableCondstore();
  // One response line, written in ~64 KB pieces with event-loop turns between (100,000 messages: ~700 KB).
  const budget = new LoopBudget(5);
  for (const part of threadResponse(t, cmd.uid)) {
    await budget.pause();
    await s.writeAwait(part);
  }
  return `${cmd.uid ? 'UID THREAD' : 'THREAD'} completed`;
};
