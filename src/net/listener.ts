// TCP listeners: one per configured port, implicit TLS where the port says so, a cap on
// connections per listener and per remote IP. Sockets are handed to the protocol server.
//
// PROXY protocol (config proxyProtocol, src/config/proxy.ts; header format in proxy-protocol.ts):
// on a listener that has it, a connection from a trusted address must begin with a header, read
// here before anything else (before the TLS handshake of 993/995/465, as HAProxy sends it ahead of
// the ClientHello, and before any greeting: "the receiver MUST NOT start processing the connection
// before it receives a complete and valid PROXY protocol header", proxy-protocol.txt §2). The
// client address it carries is then the connection's address for everything: net.open/net.close,
// the per-IP limit, and ConnectionInfo.remoteAddress, which the sessions use for logins (throttle),
// logs, Received fields and SPF. A connection from any other address is refused, closed without
// a word, as Dovecot does for haproxy listeners outside haproxy_trusted_networks; Postfix
// (smtpd_upstream_proxy_protocol) has no list and requires the header of every client. A header
// that is malformed, too long (maxHeaderBytes) or not complete within the timeout closes the
// connection with a log line (net.proxy-refused, reason=…).

import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ConnectionHandler, TlsProvider } from './types.ts';
import type { Logger } from '../obs/log.ts';
import { ProxyHeaderReader, type ProxyHeader } from './proxy-protocol.ts';

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
  /** PROXY protocol on this listener (see the top of this file); absent: off. */
  proxy?: ProxySpec;
}

export interface ProxySpec {
  /** Is this socket address one of the proxies (config proxyProtocol.trusted)? */
  trusted(socketAddress: string): boolean;
  /** ms for the whole header. */
  timeout: number;
  maxHeaderBytes: number;
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

/** "::ffff:1.2.3.4" (an IPv4 client on a dual-stack socket) → "1.2.3.4". */
const plainIp = (a: string | undefined) => (a === undefined ? '?' : a.startsWith('::ffff:') ? a.slice(7) : a);

interface Client {
  address: string;
  port: number;
  /** The proxy's socket address ("ip:port") and the header's version, when the client came through one. */
  via?: { proxy: string; version: 1 | 2 };
}

export async function bindListener(spec: ListenerSpec, tls: TlsProvider, log: Logger): Promise<BoundListener> {
  const c: Ctx = { spec, tls, log, sockets: new Set<Socket>(), perIp: new Map<string, number>() };
  const sockets = c.sockets;
  const server = createServer({ pauseOnConnect: false, noDelay: true }, (raw) => onConnection(c, raw));
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
    // Not exclusive: in a worker of `--workers N` the primary holds the listening socket and hands
    // connections out (node:cluster); listeners are bound in the same order in every worker, so
    // port 0 gives each the same port. Alone, it makes no difference.
    server.listen({ host: spec.host, port: spec.port, exclusive: false }, () => resolve());
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

interface Ctx {
  spec: ListenerSpec;
  tls: TlsProvider;
  log: Logger;
  sockets: Set<Socket>;
  perIp: Map<string, number>;
}

/** A new connection: the listener's cap, then (PROXY protocol) trust and header, then accept(). */
function onConnection(c: Ctx, raw: Socket): void {
  const { spec, log, sockets } = c;
  const socketIp = plainIp(raw.remoteAddress);
  if (sockets.size >= spec.maxConnections) {
    log.warn('net.connection-refused', { listener: spec.name, ip: socketIp, reason: 'listener-full' });
    if (spec.tooManyLine && !spec.implicitTls && !spec.proxy) raw.end(spec.tooManyLine + '\r\n');
    else raw.destroy();
    return;
  }
  sockets.add(raw);
  raw.once('close', () => sockets.delete(raw));
  const self = { address: socketIp, port: raw.remotePort ?? 0 };
  if (!spec.proxy) return accept(c, raw, self);
  if (raw.remoteAddress === undefined) {
    // Reset before we could ask who it was: HAProxy's health checks connect, send their header
    // and close at once. Nobody to refuse, nothing to warn about.
    log.info('net.proxy-refused', { listener: spec.name, ip: socketIp, reason: 'closed-before-header', received: 0 });
    raw.destroy();
    return;
  }
  if (!spec.proxy.trusted(socketIp)) {
    log.warn('net.proxy-refused', { listener: spec.name, ip: socketIp, reason: 'untrusted' });
    raw.destroy();
    return;
  }
  readProxyHeader(raw, spec.proxy, (r) => {
    if (r.kind === 'refused') {
      // A proxy's plain TCP health check connects and leaves: not worth a warning.
      (r.reason === 'closed-before-header' ? log.info : log.warn).call(log, 'net.proxy-refused', { listener: spec.name, ip: socketIp, reason: r.reason, received: r.received });
      raw.destroy();
      return;
    }
    const via = { proxy: `${socketIp}:${self.port}`, version: r.header.version };
    // LOCAL / UNKNOWN (health checks): the proxy itself is the client.
    accept(c, raw, r.header.command === 'proxy' ? { ...r.header.source, via } : { ...self, via });
  });
}

/** The connection's client is known (the socket's peer, or what the PROXY header said). */
function accept(c: Ctx, raw: Socket, client: Client): void {
  const { spec, log, perIp } = c;
  const ip = client.address;
  const n = perIp.get(ip) ?? 0;
  if (n >= spec.maxConnectionsPerIp) {
    log.warn('net.connection-refused', { listener: spec.name, ip, reason: 'per-ip-limit', proxy: client.via?.proxy });
    if (spec.tooManyLine && !spec.implicitTls) raw.end(spec.tooManyLine + '\r\n');
    else raw.destroy();
    return;
  }
  perIp.set(ip, n + 1);
  // One line when a connection opens and one when it closes (net.open / net.close).
  const remote = `${ip}:${client.port}`;
  const via = client.via ? { proxy: client.via.proxy, proxyVersion: client.via.version } : {};
  const opened = Date.now();
  let reason: string | null = null;
  const note = (r: string) => {
    reason ??= r;
  };
  raw.once('timeout', () => note('timeout'));
  log.info('net.open', { listener: spec.name, remote, tls: spec.implicitTls, ...via });
  raw.once('close', () => {
    const m = (perIp.get(ip) ?? 1) - 1;
    if (m <= 0) perIp.delete(ip);
    else perIp.set(ip, m);
    // Bytes on the wire (TLS records included). After STARTTLS the TLS socket owns the handle and
    // the client's FIN is not seen here, so such a connection closes as "server" unless it failed.
    log.info('net.close', { listener: spec.name, remote, ...via, durationMs: Date.now() - opened, bytesIn: raw.bytesRead, bytesOut: raw.bytesWritten, reason: reason ?? 'server' });
  });
  // The client's FIN before we ended our side: the client closed.
  raw.once('end', () => note(raw.writableEnded ? 'server' : 'client'));
  raw.on('error', (err: NodeJS.ErrnoException) => note(`error:${err.code ?? 'ERR'}`));
  handOver(c, raw, client, note);
}

/** To the protocol server: after the TLS handshake on implicit-TLS ports, at once otherwise. */
function handOver(c: Ctx, raw: Socket, client: Client, note: (reason: string) => void): void {
  const { spec, log, tls } = c;
  const ip = client.address;
  const info = { listener: spec.name, remoteAddress: ip, remotePort: client.port };
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
      spec.handler(t, { implicitTls: true, ...info });
    });
  } else {
    spec.handler(raw, { implicitTls: false, ...info });
    // readProxyHeader paused the socket; the session has its 'data' listener now.
    if (client.via) raw.resume();
  }
}

export function flagFor(listener: string): string {
  return `${listener}-port`;
}

type HeaderResult = { kind: 'header'; header: ProxyHeader } | { kind: 'refused'; reason: string; received: number };

/**
 * Reads the PROXY header off `raw`, within the timeout and the size cap. On success the socket is
 * paused and the bytes after the header (the client's first data) are back at the front of its
 * buffer, where a TLSSocket or the session reads them first.
 */
function readProxyHeader(raw: Socket, spec: ProxySpec, done: (r: HeaderResult) => void): void {
  const reader = new ProxyHeaderReader(spec.maxHeaderBytes);
  let finished = false;
  const finish = (r: HeaderResult) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    raw.off('data', onData);
    raw.off('end', onEnd);
    raw.off('close', onEnd);
    done(r);
  };
  const onData = (chunk: Buffer) => {
    const r = reader.push(chunk);
    if (r.kind === 'incomplete') return;
    if (r.kind === 'invalid') return finish({ kind: 'refused', reason: r.reason, received: reader.received });
    raw.pause();
    if (r.rest.length > 0) raw.unshift(Buffer.from(r.rest.buffer, r.rest.byteOffset, r.rest.byteLength));
    finish({ kind: 'header', header: r.header });
  };
  // A proxy that connects and leaves without a header (a plain TCP health check) is logged too.
  const onEnd = () => finish({ kind: 'refused', reason: reader.received ? 'closed-mid-header' : 'closed-before-header', received: reader.received });
  const timer = setTimeout(() => finish({ kind: 'refused', reason: 'timeout', received: reader.received }), spec.timeout);
  raw.on('data', onData);
  raw.once('end', onEnd);
  raw.once('close', onEnd);
  raw.on('error', () => {}); // 'close' follows
}
