// LOGOUT (RFC 9051 §6.1.3): untagged BYE, tagged OK, close.
import type { Handler } from '../commands.ts';
import { statusLine } from '../../protocol/imap/response.ts';

export const logout: Handler<'LOGOUT'> = async (s, tag) => {
  s.write('* BYE Logging out\r\n');
  s.write(statusLine(tag, 'OK', null, 'LOGOUT completed'));
  s.close();
  return null;
};
