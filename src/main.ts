// The one place that picks concrete implementations: the store backend, TLS material, the
// authenticator, and the protocol servers bound to their listeners.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { dirname } from 'node:path';
import type { Config, PortName } from './config/config.ts';
import { openStore, isPostgresUrl } from './store/open.ts';
import { loadTls } from './net/tls.ts';
import { createAuthenticator } from './auth/authenticator.ts';
import { createConnectionRegistry } from './net/connections.ts';
import { bindListener, type BoundListener, type ListenerSpec } from './net/listener.ts';
import { createLogger, type Logger } from './obs/log.ts';
import { startLoopLagMonitor } from './obs/loop-lag.ts';
import type { ProtocolServer, ServerDeps } from './net/types.ts';
import type { Store } from './store/store.ts';
import { createSmtpServer } from './smtp/server.ts';
import { createImapServer } from './imap/server.ts';
import { createPop3Server } from './pop3/server.ts';

export interface RunningServer {
  config: Config;
  store: Store;
  ports: Record<PortName, number>;
  certFile: string;
  generatedCert: boolean;
  stop(): Promise<void>;
}

export async function startServer(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = await openStore(config.database, config.dataDir, { collectGarbage: true, log });
  const { provider: tls, generated, certFile } = loadTls({
    dataDir: config.dataDir,
    hostname: config.hostname,
    certFile: config.tlsCert,
    keyFile: config.tlsKey,
  });
  const deps: ServerDeps = {
    store,
    config,
    tls,
    auth: createAuthenticator(store),
    connections: createConnectionRegistry(),
    log,
  };

  const protocols: ProtocolServer[] = [];
  const specs: Array<Omit<ListenerSpec, 'host' | 'maxConnections' | 'maxConnectionsPerIp'>> = [];
  const add = (name: PortName, implicitTls: boolean, server: ProtocolServer, tooManyLine: string) => {
    specs.push({ name, port: config.ports[name], implicitTls, handler: server.handle, tooManyLine });
  };
  const mx = createSmtpServer(deps, 'mx');
  const submission = createSmtpServer(deps, 'submission');
  const submissions = createSmtpServer(deps, 'submissions');
  const imap = createImapServer(deps);
  const pop3 = createPop3Server(deps);
  protocols.push(mx, submission, submissions, imap, pop3);
  add('smtp', false, mx, `421 4.7.0 ${config.hostname} too many connections, try again later`);
  add('submission', false, submission, `421 4.7.0 ${config.hostname} too many connections, try again later`);
  add('submissions', true, submissions, '');
  add('imap', false, imap, '* BYE Too many connections, try again later');
  add('imaps', true, imap, '');
  add('pop3', false, pop3, '-ERR [SYS/TEMP] Too many connections, try again later');
  add('pop3s', true, pop3, '');

  const bound: BoundListener[] = [];
  const ports = {} as Record<PortName, number>;
  const http = createHttpServer((req, res) => {
    // The webmail will live here; for now a health check for monitoring.
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  try {
    for (const s of specs) {
      const b = await bindListener(
        { ...s, host: config.host, maxConnections: config.limits.maxConnections, maxConnectionsPerIp: config.limits.maxConnectionsPerIp },
        tls,
        log,
      );
      bound.push(b);
      ports[s.name as PortName] = b.port;
    }
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EACCES' ? ' (ports below 1024 need root)' : err.code === 'EADDRINUSE' ? ' (already in use)' : '';
        reject(new Error(`cannot listen on ${config.host}:${config.ports.http} for http${hint}. Pick another with --http-port PORT (0 = any free port).`));
      });
      http.listen({ host: config.host, port: config.ports.http }, () => resolve());
    });
    const addr = http.address();
    ports.http = typeof addr === 'object' && addr ? addr.port : config.ports.http;
  } catch (err) {
    for (const b of bound) await b.close();
    http.close();
    await store.close();
    throw err;
  }

  // Written last, atomically: its presence means every listener accepts connections.
  mkdirSync(dirname(config.portsFile), { recursive: true });
  writeFileSync(config.portsFile + '.tmp', JSON.stringify(ports, null, 2) + '\n');
  renameSync(config.portsFile + '.tmp', config.portsFile);
  // Logs `server.loop-stall ms=… doing=…` when something holds the event loop (everyone waits).
  const lag = startLoopLagMonitor(log, { thresholdMs: config.limits.loopStallMs });
  log.info('server.ready', { hostname: config.hostname, store: isPostgresUrl(config.database) ? 'postgres' : 'sqlite', ...ports });

  let stopping: Promise<void> | null = null;
  return {
    config,
    store,
    ports,
    certFile,
    generatedCert: generated,
    stop() {
      stopping ??= (async () => {
        for (const b of bound) b.server.close();
        http.close();
        http.closeAllConnections?.();
        await Promise.race([Promise.allSettled(protocols.map((p) => p.close())), new Promise((r) => setTimeout(r, 5000))]);
        for (const b of bound) for (const s of b.sockets) s.destroy();
        await store.close();
        lag.stop();
        log.info('server.stopped');
      })();
      return stopping;
    },
  };
}
