// An IMAP session's two clocks: autologout (RFC 9051 §5.4: at least 30 minutes without a command;
// never while in IDLE; limits.imapIdleTimeout, 0: none) and the login timeout (an unauthenticated
// connection gets limits.preauthTimeout to log in; 0: none). Both unref'd: they never keep the
// process alive.

import type { ImapSession } from './session.ts';

type Timed = Pick<ImapSession, 'deps' | 'idle' | 'state' | 'closed' | 'id' | 'remoteAddress' | 'write' | 'close'>;

export class SessionTimers {
  readonly #s: Timed;
  #autologout: NodeJS.Timeout | null = null;
  #preauth: NodeJS.Timeout | null = null;

  constructor(s: Timed) {
    this.#s = s;
  }

  /** The connection opened: both clocks start. */
  start(): void {
    this.activity();
    const ms = this.#s.deps.config.limits.preauthTimeout;
    if (!(ms > 0)) return;
    this.#preauth = setTimeout(() => {
      const s = this.#s;
      if (s.state !== 'notauth' || s.closed) return;
      s.write('* BYE Login timeout; log in sooner after connecting\r\n');
      s.deps.log.info('imap.preauth-timeout', { session: s.id, ip: s.remoteAddress });
      s.close();
    }, ms);
    this.#preauth.unref();
  }

  /** A command came: autologout starts over. */
  activity(): void {
    if (this.#autologout) clearTimeout(this.#autologout);
    const ms = this.#s.deps.config.limits.imapIdleTimeout;
    if (!(ms > 0)) return;
    this.#autologout = setTimeout(() => {
      if (this.#s.idle.active) {
        this.activity();
        return;
      }
      this.#s.write('* BYE Autologout; idle for too long\r\n');
      this.#s.close();
    }, ms);
    this.#autologout.unref();
  }

  /** Logged in: the login timeout is over. */
  loggedIn(): void {
    if (this.#preauth) clearTimeout(this.#preauth);
    this.#preauth = null;
  }

  /** The session closed. */
  stop(): void {
    if (this.#autologout) clearTimeout(this.#autologout);
    this.loggedIn();
  }
}
