// The IMAP server (RFC 9051 IMAP4rev2 + RFC 3501 IMAP4rev1): one ImapSession per connection, on
// 143 (STARTTLS) and 993 (implicit TLS); main.ts binds `handle` to both listeners.

import type { ProtocolServer, ServerDeps } from '../net/types.ts';
import { ImapSession } from './session.ts';

export interface ImapServer extends ProtocolServer {
  /** Live sessions (for a per-device view: client ID, last command time). */
  sessions(): ReadonlySet<ImapSession>;
}

export function createImapServer(deps: ServerDeps): ImapServer {
  const sessions = new Set<ImapSession>();
  let closing = false;
  return {
    handle(socket, info) {
      if (closing) {
        socket.end('* BYE Server shutting down\r\n');
        return;
      }
      const s = new ImapSession(deps, socket, info);
      sessions.add(s);
      s.onClose(() => sessions.delete(s));
    },
    async close() {
      closing = true;
      const waits: Promise<void>[] = [];
      for (const s of [...sessions]) {
        waits.push(
          new Promise<void>((resolve) => {
            if (s.socket.destroyed) return resolve();
            s.socket.once('close', () => resolve());
            setTimeout(resolve, 3000).unref();
          }),
        );
        s.shutdown();
      }
      await Promise.all(waits);
    },
    sessions: () => sessions,
  };
}
