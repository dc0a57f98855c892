// The IMAP server (RFC 9051 IMAP4rev2 + RFC 3501 IMAP4rev1): one ImapSession per connection, on
// 143 (STARTTLS) and 993 (implicit TLS); main.ts binds `handle` to both listeners.

import type { ProtocolServer, ServerDeps } from '../net/types.ts';
import { flushedOrClosed } from '../net/drain.ts';
import { ImapSession } from './session.ts';

export interface ImapServer extends ProtocolServer {
  /** Live sessions (for a per-device view: client ID, last command time). */
  sessions(): ReadonlySet<ImapSession>;
}

export function createImapServer(deps: ServerDeps): ImapServer {
  const sessions = new Set<ImapSession>();
  /** Sessions live when shutdown began (new ones are refused from then on). */
  let leaving: ImapSession[] = [];
  let closing = false;
  return {
    handle(socket, info) {
      if (closing) {
        socket.on('error', () => {});
        socket.end('* BYE [UNAVAILABLE] Server shutting down\r\n');
        return;
      }
      const s = new ImapSession(deps, socket, info);
      sessions.add(s);
      s.onClose(() => sessions.delete(s));
    },
    async close() {
      closing = true;
      leaving = [...sessions];
      const gone = leaving.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.onClose(resolve))).then(() => flushedOrClosed(s.socket)));
      for (const s of leaving) s.shutdown();
      await Promise.all(gone);
    },
    abort() {
      for (const s of leaving) s.shutdown(true);
    },
    async settled() {
      await Promise.all(leaving.map((s) => s.settled()));
    },
    sessions: () => sessions,
  };
}
