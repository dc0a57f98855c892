// CANCELUPDATE (RFC 5267 §4.3.5): no further ADDTO / REMOVEFROM for the named contexts; their
// resources are freed. A tag that names no live context: NO (as Dovecot 2.3), the others are
// cancelled all the same.
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { cancelContexts } from '../context.ts';

export const cancelupdate: Handler<'CANCELUPDATE'> = async (s, _tag, cmd) => {
  const unknown = cancelContexts(s, cmd.tags);
  if (unknown.length) throw new ImapNo(null, `Unknown update context ${unknown.map((t) => JSON.stringify(t.slice(0, 64))).join(' ')}`);
  return 'No further updates';
};
