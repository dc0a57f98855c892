// Drain and shutdown helpers shared by the protocol servers (see stop() in src/main.ts for the
// shutdown sequence).

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * Resolves once the socket is closed, or once everything written to it and our FIN (after end())
 * are handed to the kernel: a goodbye that is flushed is delivered even if the socket is destroyed
 * afterwards, so the server need not wait for clients that don't read (and never close).
 */
export function flushedOrClosed(socket: Socket | TLSSocket): Promise<void> {
  if (socket.destroyed || socket.writableFinished) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('finish', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('finish', done);
    socket.on('close', done);
  });
}

/** A promise with its resolve function (for "the session has said goodbye" and the like). */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves at the stream's next 'drain' or 'close' (a write that returned false; backpressure). */
export function drainOrClose(s: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}
