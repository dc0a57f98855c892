// IDLE (RFC 9051 §6.3.13, RFC 2177): changes are reported as they happen until the client sends DONE.
import type { Handler } from '../commands.ts';

export const idle: Handler<'IDLE'> = async (s, tag) => {
  s.startIdle(tag);
  return null;
};
