// NAMESPACE (RFC 2342, RFC 9051 §6.3.10): one personal namespace, "/" separator.
import type { Handler } from '../commands.ts';

export const namespace: Handler<'NAMESPACE'> = async (s) => {
  s.write('* NAMESPACE (("" "/")) NIL NIL\r\n');
  return 'NAMESPACE completed';
};
