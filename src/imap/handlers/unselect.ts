// UNSELECT (RFC 3691, RFC 9051 §6.4.2): leave the mailbox without expunging.
import type { Handler } from '../commands.ts';

export const unselect: Handler<'UNSELECT'> = async (s) => {
  s.unselect();
  return 'UNSELECT completed';
};
