// IMAP output corked until the end of the event-loop turn: a command's untagged lines and its
// tagged reply (and a pipelined burst's replies) leave in one writev instead of one write system
// call each, which was ~12% of the server's CPU under a persistent-session load. The socket is
// read through `socket()` each time: STARTTLS replaces it.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export class CorkedWriter {
  readonly #socket: () => Socket | TLSSocket;
  #corked = false;

  constructor(socket: () => Socket | TLSSocket) {
    this.#socket = socket;
  }

  /** Writes `data` (corking the socket until the turn ends); false when its buffer is full. */
  write(data: string | Buffer): boolean {
    const s = this.#socket();
    if (!this.#corked) {
      this.#corked = true;
      s.cork();
      setImmediate(this.uncork);
    }
    return s.write(data);
  }

  /** Hands what is corked to the kernel now (before waiting for a drain, or a TLS handshake). */
  readonly uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket().uncork();
  };
}
