// CAPABILITY (RFC 9051 §6.1.1).
import type { Handler } from '../commands.ts';

export const capability: Handler<'CAPABILITY'> = async (s) => {
  s.write(`* CAPABILITY ${s.capabilities().join(' ')}\r\n`);
  return 'CAPABILITY completed';
};
