// ID (RFC 2971): keep what the client says about itself; say who we are.
import type { Handler } from '../commands.ts';

export const id: Handler<'ID'> = async (s, _tag, cmd) => {
  if (cmd.params) {
    const info: Record<string, string | null> = {};
    for (const [k, v] of cmd.params) info[k.toLowerCase().slice(0, 30)] = v === null ? null : v.slice(0, 1024);
    s.clientId = info;
    s.deps.log.debug('imap.client-id', { session: s.id, ip: s.remoteAddress, ...info });
  }
  s.write('* ID ("name" "Pillarbox" "vendor" "Pillarbox" "version" "0.1.0")\r\n');
  return 'ID completed';
};
