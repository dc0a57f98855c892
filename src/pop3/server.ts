// The POP3 server (issue #5): one Pop3Session per accepted connection. main.ts binds `handle` to
// the 110 listener (plain, STLS) and the 995 listener (implicit TLS, RFC 8314).

import type { ProtocolServer, ServerDeps } from '../net/types.ts';
import { errLine } from '../protocol/pop3/responses.ts';
import { Pop3Session } from './session.ts';

export function createPop3Server(deps: ServerDeps): ProtocolServer {
  const sessions = new Set<Pop3Session>();
  /** Sessions live when shutdown began (new ones are refused from then on). */
  let leaving: Pop3Session[] = [];
  let closing = false;
  let seq = 0;
  const prefix = Date.now().toString(36);
  return {
    handle(socket, info) {
      if (closing) {
        socket.on('error', () => {});
        socket.end(errLine('Server shutting down', 'SYS/TEMP'));
        return;
      }
      socket.setNoDelay(true);
      const session = new Pop3Session(deps, socket, info, `${prefix}-${++seq}`);
      sessions.add(session);
      void session.closed.then(() => sessions.delete(session));
    },
    async close() {
      closing = true;
      leaving = [...sessions];
      for (const s of leaving) s.shutdown();
      await Promise.all(leaving.map((s) => s.gone()));
    },
    abort() {
      for (const s of leaving) s.shutdown(true);
    },
    async settled() {
      await Promise.all(leaving.map((s) => s.settled()));
    },
  };
}
