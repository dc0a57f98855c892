// TCP listeners: one per configured port, implicit TLS where the port says so, a cap on
// connections per listener and per remote IP. Sockets are handed to the protocol server.

import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ConnectionHandler, TlsProvider } from './types.ts';
import type { Logger } from '../obs/log.ts';

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  implicitTls: boolean;
  handler: ConnectionHandler;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Line sent before closing a connection over a limit (e.g. '421 4.7.0 …', '* BYE …'). */
  tooManyLine?: string;
}

export interface BoundListener {
  name: string;
  port: number;
  server: Server;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export class PortBindError extends Error {
  readonly listener: string;
  readonly port: number;
  readonly code: string;
  constructor(listener: string, port: number, code: string, message: string) {
    super(message);
    this.listener = listener;
    this.port = port;
    this.code = code;
  }
}

export async function bindListener(spec: ListenerSpec, tls: TlsProvider, log: Logger): Promise<BoundListener> {
  const sockets = new Set<Socket>();
  const perIp = new Map<string, number>();
  const server = createServer({ pauseOnConnect: false, noDelay: true }, (raw) => {
    const ip = raw.remoteAddress ?? '?';
    const n = perIp.get(ip) ?? 0;
    if (sockets.size >= spec.maxConnections || n >= spec.maxConnectionsPerIp) {
      log.warn('net.connection-refused', { listener: spec.name, ip, reason: sockets.size >= spec.maxConnections ? 'listener-full' : 'per-ip-limit' });
      if (spec.tooManyLine && !spec.implicitTls) raw.end(spec.tooManyLine + '\r\n');
      else raw.destroy();
      return;
    }
    perIp.set(ip, n + 1);
    sockets.add(raw);
    // One line when a connection opens and one when it closes (net.open / net.close).
    const remote = `${ip.startsWith('::ffff:') ? ip.slice(7) : ip}:${raw.remotePort ?? 0}`;
    const opened = Date.now();
    let reason: string | null = null;
    const note = (r: string) => {
      reason ??= r;
    };
    raw.once('timeout', () => note('timeout'));
    log.info('net.open', { listener: spec.name, remote, tls: spec.implicitTls });
    raw.once('close', () => {
      sockets.delete(raw);
      const m = (perIp.get(ip) ?? 1) - 1;
      if (m <= 0) perIp.delete(ip);
      else perIp.set(ip, m);
      // Bytes on the wire (TLS records included). After STARTTLS the TLS socket owns the handle and
      // the client's FIN is not seen here, so such a connection closes as "server" unless it failed.
      log.info('net.close', { listener: spec.name, remote, durationMs: Date.now() - opened, bytesIn: raw.bytesRead, bytesOut: raw.bytesWritten, reason: reason ?? 'server' });
    });
    // The client's FIN before we ended our side: the client closed.
    raw.once('end', () => note(raw.writableEnded ? 'server' : 'client'));
    raw.on('error', (err: NodeJS.ErrnoException) => note(`error:${err.code ?? 'ERR'}`));
    if (spec.implicitTls) {
      const t = new TLSSocket(raw, { isServer: true, secureContext: tls.context });
      let secured = false;
      t.once('end', () => note(t.writableEnded ? 'server' : 'client'));
      t.on('error', (err: NodeJS.ErrnoException) => {
        note(secured ? `error:${err.code ?? 'ERR'}` : 'tls-handshake');
        log.debug('net.tls-error', { listener: spec.name, ip, err });
        raw.destroy();
      });
      const timer = setTimeout(() => {
        note('tls-handshake-timeout');
        raw.destroy();
      }, 30_000);
      // A handshake that never completes must not leave the timer holding the process at shutdown.
      raw.once('close', () => clearTimeout(timer));
      t.once('secure', () => {
        secured = true;
        clearTimeout(timer);
        spec.handler(t, { implicitTls: true, listener: spec.name });
      });
    } else {
      spec.handler(raw, { implicitTls: false, listener: spec.name });
    }
  });
  server.maxConnections = spec.maxConnections + 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'ERR';
      let msg = `cannot listen on ${spec.host}:${spec.port} for ${spec.name}: ${err.message}`;
      if (code === 'EACCES' && spec.port < 1024)
        msg = `cannot bind port ${spec.port} for ${spec.name}: ports below 1024 need root (or CAP_NET_BIND_SERVICE). Pick another with --${flagFor(spec.name)} PORT (0 = any free port).`;
      else if (code === 'EADDRINUSE') msg = `port ${spec.port} for ${spec.name} is already in use. Pick another with --${flagFor(spec.name)} PORT (0 = any free port).`;
      reject(new PortBindError(spec.name, spec.port, code, msg));
    });
    server.listen({ host: spec.host, port: spec.port, exclusive: true }, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : spec.port;
  return {
    name: spec.name,
    port,
    server,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

export function flagFor(listener: string): string {
  return `${listener}-port`;
}
