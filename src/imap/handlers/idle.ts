// IDLE (RFC 9051 §6.3.13, RFC 2177): changes are reported as they happen until the client sends DONE.
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { RawCommand } from '../../protocol/imap/receiver.ts';
import { statusLine } from '../../protocol/imap/response.ts';
import { OUTPUT_HIGH_WATER } from '../limits.ts';

export const idle: Handler<'IDLE'> = async (s, tag) => {
  s.idle.start(tag);
  return null;
};

/**
 * One session's IDLE: the keepalive (limits.imapIdleKeepalive), updates pushed at once with
 * backpressure, and the line that ends it. The session's autologout never fires while it is active.
 */
export class Idle {
  readonly #s: ImapSession;
  #tag: string | null = null;
  #keepalive: NodeJS.Timeout | null = null;
  /** An update waits for the client to read what it was sent before (see push). */
  #flushPending = false;

  constructor(s: ImapSession) {
    this.#s = s;
  }

  get active(): boolean {
    return this.#tag !== null;
  }

  start(tag: string): void {
    const s = this.#s;
    const every = s.deps.config.limits.imapIdleKeepalive;
    // 0 turns the keepalive off.
    const keepalive = setInterval(() => {
      // Not in the middle of a NOTIFY response being written (a FETCH literal in parts).
      if (every > 0 && !s.notify.delivering) s.write('* OK Still here\r\n');
    }, every > 0 ? every : 2 ** 30);
    keepalive.unref();
    this.#tag = tag;
    this.#keepalive = keepalive;
    s.write('+ idling\r\n');
    s.flushChanges(true);
  }

  /** The client's next line ends IDLE: DONE, or anything else (BAD). */
  end(raw: RawCommand): void {
    const s = this.#s;
    const tag = this.#tag!;
    this.stop();
    const line = Buffer.concat(raw.segments).toString('latin1').trim();
    s.flushChanges(true);
    if (line.toUpperCase() === 'DONE') s.write(statusLine(tag, 'OK', null, 'IDLE terminated'));
    else s.write(statusLine(tag, 'BAD', null, 'Expected DONE'));
  }

  /** Stops the keepalive (DONE, or the session closes). */
  stop(): void {
    if (this.#keepalive) clearInterval(this.#keepalive);
    this.#keepalive = null;
    this.#tag = null;
  }

  /**
   * Changes arrived during IDLE: report them at once — unless the client has not read what it was
   * sent (output over the session's high-water mark): then they wait, merged in the selected
   * mailbox, until the socket drains.
   */
  push(): void {
    const s = this.#s;
    if (s.outputBuffered <= OUTPUT_HIGH_WATER) {
      s.flushChanges(true);
      return;
    }
    if (this.#flushPending) return;
    this.#flushPending = true;
    void s.drain().then(() => {
      this.#flushPending = false;
      if (this.active && !s.closed) this.push();
    });
  }
}
