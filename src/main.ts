// The one place that picks concrete implementations: the store backend, TLS material, the
// authenticator, and the protocol servers bound to their listeners.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { dirname } from 'node:path';
import { DEFAULT_CLUSTER, type Config, type PortName } from './config/config.ts';
import { hostname as osHostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { openStore, isPostgresUrl } from './store/open.ts';
import { startJournalPruning } from './store/journal.ts';
import { loadTls, type LoadedTls } from './net/tls.ts';
import { checksFromLimits, createAuthenticator, policyFromLimits } from './auth/authenticator.ts';
import { createConnectionRegistry } from './net/connections.ts';
import { createSharedConnectionRegistry } from './net/shared-connections.ts';
import { deferred } from './net/drain.ts';
import { bindListener, type BoundListener, type ListenerSpec, type ProxySpec } from './net/listener.ts';
import { trustMatcher } from './config/proxy.ts';
import { createLogger, type Logger } from './obs/log.ts';
import { startLoopLagMonitor } from './obs/loop-lag.ts';
import type { ConnectionRegistry, ProtocolServer, ServerDeps } from './net/types.ts';
import type { Store } from './store/store.ts';
import { createSmtpServer } from './smtp/server.ts';
import { createImapServer } from './imap/server.ts';
import { createPop3Server } from './pop3/server.ts';
import { createLmtpServer } from './lmtp/server.ts';
import { loadOrCreateSecret } from './config/secrets.ts';
import { SEMI_SPACE_MB, youngGenerationSized } from './cli/node-flags.ts';
import { checkInbound } from './mailauth/inbound.ts';
import { createOutbound, type OutboundSide } from './queue/wiring.ts';

export interface RunningServer {
  config: Config;
  store: Store;
  /** Bound ports; `lmtp` only when the LMTP listener is on (config.lmtpPort). */
  ports: Record<PortName, number> & { lmtp?: number };
  certFile: string;
  generatedCert: boolean;
  /** The certificate in use at start: self-signed or not, made/remade now, its fingerprint. */
  tls: Pick<LoadedTls, 'selfSigned' | 'generated' | 'regenerated' | 'reason' | 'hostname' | 'fingerprint256' | 'certFile' | 'summary'>;
  /**
   * Stops the server (see stopAll); resolves once the store is closed. `now` (a second signal)
   * cuts the drain short: sockets are destroyed at once, the store still closes cleanly.
   */
  stop(opts?: { now?: boolean }): Promise<void>;
}

/**
 * Writes the bound ports as JSON, atomically (temporary file, then rename), so a reader never sees
 * half a file: its presence means every listener accepts connections.
 */
export function writePortsFile(file: string, ports: Record<PortName, number> & { lmtp?: number }): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file + '.tmp', JSON.stringify(ports, null, 2) + '\n');
  renameSync(file + '.tmp', file);
}

/**
 * One of several worker processes serving the listeners over the same store (src/cluster/): the
 * primary ran the start-up recovery; `relay` tells the other workers of this one's commits;
 * `singletons`: this worker also runs what must run once per database (journal pruning, the WAL
 * checkpointer).
 */
export interface WorkerRole {
  id: number;
  count: number;
  singletons: boolean;
  relay(accountId: number, head: number): void;
  /** This worker's first local subscriber of the account came (`on`) or its last went (SqlitePeers.want). */
  want?(accountId: number, on: boolean): void;
}

export async function startServer(
  config: Config,
  log: Logger = createLogger({ level: config.logLevel, format: config.logFormat, file: config.logFile }),
  worker?: WorkerRole,
): Promise<RunningServer> {
  log.info('server.starting', { node: process.versions.node, pid: process.pid, data: config.dataDir, worker: worker?.id });
  // Started by plain `node` without the launchers' flag: V8's young generation may take 64 MB (src/cli/node-flags.ts).
  if (!youngGenerationSized()) log.warn('server.young-generation-uncapped', { hint: `start node with --max-semi-space-size=${SEMI_SPACE_MB}, as bin/pillarbox and npm start do` });
  mkdirSync(config.dataDir, { recursive: true });
  const checkpoints = !worker || worker.singletons;
  const store = await openStore(config.database, config.dataDir, {
    collectGarbage: !worker,
    log,
    mailboxLimits: config.limits,
    ...(checkpoints ? { checkpointMs: config.limits.walCheckpointMs } : { noAutoCheckpoint: true }),
    ...(worker ? { peers: { relay: worker.relay, ...(worker.want ? { want: worker.want } : {}) } } : {}),
  });
  let loaded: LoadedTls;
  let connections: ConnectionRegistry | undefined;
  try {
    connections = await connectionRegistry(config, store, log, !!worker);
    loaded = loadTls({ dataDir: config.dataDir, hostname: config.hostname, certFile: config.tlsCert, keyFile: config.tlsKey, log });
  } catch (err) {
    await connections?.close?.();
    await store.close();
    throw err;
  }
  const { provider: tls, generated, certFile } = loaded;
  // SIGHUP re-reads the certificate files (as after a renewal); sessions already open keep theirs.
  const onSighup = () => void loaded.reload('SIGHUP');
  process.on('SIGHUP', onSighup);
  // SRS (forwards to other domains): the same secret across restarts, or old bounces can't come back.
  if (!config.srsSecret) config.srsSecret = loadOrCreateSecret(config.dataDir, 'srs-secret');
  // Outbound: the queue engine and what sessions hand outside mail to (src/queue/wiring.ts). The
  // engine starts once the listeners are bound and stops before the store closes.
  const outbound: OutboundSide = createOutbound({ store, config, log });
  const deps: ServerDeps = {
    store,
    config,
    tls,
    // Several workers: each re-reads a source's failures at every login (another worker may have
    // recorded them), and the password checks at once are shared out between the workers.
    auth: createAuthenticator(store, { log, policy: policyFromLimits(config.limits), checks: checksFromLimits(config.limits, worker?.count ?? 1), shared: !!worker }),
    connections,
    log,
    outbound: outbound.port,
    // MX checks (SPF, DKIM, DMARC) when config.mailAuth is on (default).
    inbound: config.mailAuth === false ? undefined : checkInbound,
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
  if (config.lmtpPort !== null && config.lmtpPort !== undefined) {
    const lmtp = createLmtpServer(deps);
    protocols.push(lmtp);
    specs.push({ name: 'lmtp', port: config.lmtpPort, implicitTls: false, handler: lmtp.handle, tooManyLine: `421 4.7.0 ${config.hostname} too many connections, try again later` });
  }

  // PROXY protocol (config proxyProtocol): the same trust list and limits on every listener that has it.
  const pp = config.proxyProtocol;
  const proxySpec: ProxySpec | undefined = pp ? { trusted: trustMatcher(pp.trusted), timeout: pp.timeout, maxHeaderBytes: pp.maxHeaderBytes } : undefined;
  const proxyFor = (name: string) => (pp && (pp.listeners as string[]).includes(name) ? proxySpec : undefined);
  if (pp) log.info('server.proxy-protocol', { listeners: pp.listeners.join(','), trusted: pp.trusted.join(','), timeout: pp.timeout, maxHeaderBytes: pp.maxHeaderBytes });

  const bound: BoundListener[] = [];
  const ports = {} as Record<PortName, number> & { lmtp?: number };
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
        { ...s, host: config.host, maxConnections: config.limits.maxConnections, maxConnectionsPerIp: config.limits.maxConnectionsPerIp, proxy: proxyFor(s.name) },
        tls,
        log,
      );
      bound.push(b);
      ports[s.name as PortName] = b.port;
    }
    if (proxyFor('http')) {
      // Behind a proxy: our listener reads the PROXY header, then hands the socket to the HTTP server.
      const b = await bindListener(
        { name: 'http', port: config.ports.http, implicitTls: false, handler: (sock) => http.emit('connection', sock), host: config.host, maxConnections: config.limits.maxConnections, maxConnectionsPerIp: config.limits.maxConnectionsPerIp, proxy: proxyFor('http') },
        tls,
        log,
      );
      bound.push(b);
      ports.http = b.port;
    } else {
      await new Promise<void>((resolve, reject) => {
        http.once('error', (err: NodeJS.ErrnoException) => {
          const hint = err.code === 'EACCES' ? ' (ports below 1024 need root)' : err.code === 'EADDRINUSE' ? ' (already in use)' : '';
          reject(new Error(`cannot listen on ${config.host}:${config.ports.http} for http${hint}. Pick another with --http-port PORT (0 = any free port).`));
        });
        http.listen({ host: config.host, port: config.ports.http }, () => resolve());
      });
      const addr = http.address();
      ports.http = typeof addr === 'object' && addr ? addr.port : config.ports.http;
    }
  } catch (err) {
    process.off('SIGHUP', onSighup);
    loaded.dispose();
    for (const b of bound) await b.close();
    http.close();
    await connections.close?.();
    await store.close();
    throw err;
  }

  // The ports file is the caller's to write (writePortsFile), once it has said it is ready:
  // `pillarbox serve` writes it after printing its banner.
  // Logs `server.loop-stall ms=… doing=…` when something holds the event loop (everyone waits).
  const lag = startLoopLagMonitor(log, { thresholdMs: config.limits.loopStallMs });
  outbound.start(ports.smtp);
  // The change journal's horizon (src/store/journal.ts): pruned in bounded steps, off the hot path.
  const pruning = startJournalPruning(store, {
    maxAgeMs: config.limits.journalMaxAge,
    maxEntries: config.limits.journalMaxEntries,
    intervalMs: worker && !worker.singletons ? 0 : config.limits.journalPruneInterval,
    onPruned: (entries, ms) => log.info('store.journal-pruned', { entries, ms }),
    onError: (err) => log.warn('store.journal-prune-failed', { error: err instanceof Error ? err : String(err) }),
  });
  // With workers the primary says ready once, when all of them listen (src/cluster/primary.ts: server.worker-ready per worker).
  if (!worker) log.info('server.ready', { pid: process.pid, hostname: config.hostname, store: isPostgresUrl(config.database) ? 'postgres' : 'sqlite', ...ports });

  const now = deferred();
  let stopping: Promise<void> | null = null;
  return {
    config,
    store,
    ports,
    certFile,
    generatedCert: generated,
    tls: loaded,
    stop(opts = {}) {
      if (opts.now) now.resolve();
      if (!stopping) {
        process.off('SIGHUP', onSighup);
        loaded.dispose();
      }
      stopping ??= pruning
        .stop()
        .then(() => stopAll(config, log, { protocols, bound, http, store, outbound, connections, now: now.promise }))
        .finally(() => lag.stop());
      return stopping;
    },
  };
}

/**
 * What the primary of `--workers N` does once before forking (src/cluster/primary.ts), so no
 * worker does it or races another: the store opened (migrations) with the start-up recovery and
 * garbage collection, the TLS certificate made if needed, the SRS secret. Returns the number of
 * domains (for the banner).
 */
export async function prepareData(config: Config, log: Logger): Promise<{ domains: number }> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = await openStore(config.database, config.dataDir, { collectGarbage: true, log, mailboxLimits: config.limits });
  try {
    const domains = (await store.listDomains()).length;
    loadTls({ dataDir: config.dataDir, hostname: config.hostname, certFile: config.tlsCert, keyFile: config.tlsKey, log }).dispose();
    if (!config.srsSecret) loadOrCreateSecret(config.dataDir, 'srs-secret');
    return { domains };
  } finally {
    await store.close();
  }
}

/**
 * The per-account session registry: in this process, or (PostgreSQL, worker processes, or cluster.sharedSessions)
 * in the store, so limits hold across nodes (src/net/shared-connections.ts).
 */
async function connectionRegistry(config: Config, store: Store, log: Logger, worker: boolean): Promise<ConnectionRegistry> {
  const c = config.cluster ?? DEFAULT_CLUSTER;
  // Worker processes share the store, so their sessions are counted there (IMAP limit, POP3 IN-USE).
  const shared = c.sharedSessions === 'auto' ? worker || isPostgresUrl(config.database) : c.sharedSessions;
  if (!shared) return createConnectionRegistry();
  // Unique per process: a restarted node must not inherit the sessions of the one it replaces.
  const node = `${c.node ?? osHostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  log.info('sessions.shared', { node, heartbeatMs: c.heartbeatMs, ttlMs: c.sessionTtlMs });
  return createSharedConnectionRegistry(store.liveSessions, { node, heartbeatMs: c.heartbeatMs, ttlMs: c.sessionTtlMs, log });
}

/** After the drain is cut short, how long goodbyes said mid-transfer get to reach their clients. */
const LINGER_MS = 1000;
/** Upper bound on waiting for store work in flight (a commit) once every socket is gone. */
const SETTLE_MS = 5000;

/**
 * The shutdown sequence: no new connections; goodbyes between commands (drain, up to
 * limits.shutdownGrace, or until `now`); then goodbyes mid-upload and destroyed sockets; then the
 * store work in flight finishes and the store closes. Every timer is cleared, so the process
 * exits by itself once this resolves.
 */
async function stopAll(
  config: Config,
  log: Logger,
  s: { protocols: ProtocolServer[]; bound: BoundListener[]; http: HttpServer; store: Store; outbound: OutboundSide; connections: ConnectionRegistry; now: Promise<void> },
): Promise<void> {
  const started = Date.now();
  const sessions = s.bound.reduce((n, b) => n + b.sockets.size, 0);
  log.info('server.stopping', { sessions, grace: config.limits.shutdownGrace });
  for (const b of s.bound) b.server.close();
  s.http.close();
  s.http.closeAllConnections();
  const drained = Promise.allSettled(s.protocols.map((p) => p.close()));
  let complete = await within(drained, config.limits.shutdownGrace, s.now);
  if (!complete) {
    for (const p of s.protocols) p.abort();
    complete = await within(drained, LINGER_MS, s.now);
  }
  const left = s.bound.reduce((n, b) => n + b.sockets.size, 0);
  for (const b of s.bound) for (const sock of b.sockets) sock.destroy();
  if (!(await within(Promise.allSettled(s.protocols.map((p) => p.settled())), SETTLE_MS))) log.warn('server.settle-timeout', { ms: SETTLE_MS });
  // The queue engine after the sessions (their last enqueues are in) and before the store.
  await s.outbound.stop();
  await s.connections.close?.();
  await s.store.close();
  log.info('server.stopped', { ms: Date.now() - started, drained: complete, destroyed: left });
}

/** True if `p` settled within `ms` (and before `cut`, if given); the timer never outlives the wait. */
async function within(p: Promise<unknown>, ms: number, cut?: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout, ...(cut ? [cut.then(() => false)] : [])]);
  } finally {
    clearTimeout(timer);
  }
}
