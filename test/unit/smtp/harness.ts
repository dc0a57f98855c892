// In-process SMTP harness for the unit tests of src/smtp: the real SMTP servers on real listeners
// (127.0.0.1, port 0, real TLS), a real SQLite store in a temp dir, the real authenticator.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { createAuthenticator } from '../../../src/auth/authenticator.ts';
import { hashPassword } from '../../../src/auth/password.ts';
import { createTlsProvider, generateSelfSigned } from '../../../src/net/tls.ts';
import { createConnectionRegistry } from '../../../src/net/connections.ts';
import { bindListener, type BoundListener } from '../../../src/net/listener.ts';
import { DEFAULT_LIMITS, type Config, type Limits } from '../../../src/config/config.ts';
import { silentLogger, createLogger } from '../../../src/obs/log.ts';
import { createSmtpServer } from '../../../src/smtp/server.ts';
import type { ProtocolServer, ServerDeps } from '../../../src/net/types.ts';
import type { InboundChecker } from '../../../src/smtp/inbound-port.ts';
import { createLmtpServer } from '../../../src/lmtp/server.ts';
import { Outbound } from '../../../src/queue/outbound.ts';
import type { Account, Store } from '../../../src/store/store.ts';

let cachedCert: { cert: string; key: string } | null = null;

export interface Harness {
  store: Store;
  config: Config;
  ca: string;
  ports: { smtp: number; submission: number; submissions: number; lmtp: number };
  dir: string;
  /** The real Outbound (queue in the store; no engine runs, so entries stay queued), when asked for. */
  outbound: Outbound | null;
  addUser(address: string, password: string, quota?: number): Promise<Account>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  limits?: Partial<Limits>;
  allowPlaintextLoopback?: boolean;
  domains?: string[];
  /** Give the servers the real Outbound (src/queue/outbound.ts) over the store's queue. */
  outbound?: boolean;
  /** The MX's inbound check (e.g. mailauth's checkInbound). */
  inbound?: InboundChecker;
  /** Also an LMTP listener (src/lmtp/server.ts). */
  lmtp?: boolean;
  config?: Partial<Config>;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'pb-smtp-'));
  const store = await openSqliteStore({ path: join(dir, 'pillarbox.db'), blobDir: join(dir, 'blobs') });
  cachedCert ??= generateSelfSigned('localhost');
  const tls = createTlsProvider(cachedCert.cert, cachedCert.key);
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const config: Config = {
    hostname: 'mx.test.example',
    host: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, http: 0 },
    dataDir: dir,
    database: join(dir, 'pillarbox.db'),
    portsFile: join(dir, 'ports.json'),
    tlsCert: null,
    tlsKey: null,
    allowPlaintextLoopback: opts.allowPlaintextLoopback ?? false,
    logLevel: 'info',
    limits,
    srsSecret: 'harness-srs-secret-0123456789',
    ...opts.config,
  };
  const log = process.env.PB_DEBUG ? createLogger('debug') : silentLogger;
  const deps: ServerDeps = {
    store,
    config,
    tls,
    auth: createAuthenticator(store, { policy: { failDelayMs: 20 } }),
    connections: createConnectionRegistry(),
    log,
  };
  const outbound = opts.outbound
    ? new Outbound({ store, log, hostname: config.hostname, policy: { retryBase: 300_000, retryMax: 7_200_000, expiry: 5 * 86_400_000, delayWarning: 4 * 3_600_000 }, maxMessageSize: limits.maxMessageSize })
    : null;
  if (outbound) deps.outbound = outbound;
  if (opts.inbound) deps.inbound = opts.inbound;
  for (const d of opts.domains ?? ['example.com']) await store.addDomain(d);
  const servers: ProtocolServer[] = [];
  const bound: BoundListener[] = [];
  const ports = { smtp: 0, submission: 0, submissions: 0, lmtp: 0 };
  const kinds = ['mx', 'submission', 'submissions', ...(opts.lmtp ? ['lmtp' as const] : [])] as const;
  for (const kind of kinds) {
    const server = kind === 'lmtp' ? createLmtpServer(deps) : createSmtpServer(deps, kind);
    servers.push(server);
    const name = kind === 'mx' ? 'smtp' : kind;
    const b = await bindListener(
      {
        name,
        host: '127.0.0.1',
        port: 0,
        implicitTls: kind === 'submissions',
        handler: server.handle,
        maxConnections: limits.maxConnections,
        maxConnectionsPerIp: limits.maxConnectionsPerIp,
        tooManyLine: '421 4.7.0 too many connections',
      },
      tls,
      log,
    );
    bound.push(b);
    ports[name] = b.port;
  }
  return {
    store,
    config,
    ca: cachedCert.cert,
    ports,
    dir,
    outbound,
    async addUser(address, password, quota = 0) {
      return store.createAccount({ address, passwordHash: await hashPassword(password), quota });
    },
    async close() {
      for (const b of bound) b.server.close();
      await Promise.all(servers.map((s) => s.close()));
      for (const b of bound) for (const s of b.sockets) s.destroy();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { RawSmtp, splitPrepended, mailboxMessages } from '../../helpers/smtp.ts';
