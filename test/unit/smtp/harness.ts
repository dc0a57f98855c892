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
import type { Account, Store } from '../../../src/store/store.ts';

let cachedCert: { cert: string; key: string } | null = null;

export interface Harness {
  store: Store;
  config: Config;
  ca: string;
  ports: { smtp: number; submission: number; submissions: number };
  dir: string;
  addUser(address: string, password: string, quota?: number): Promise<Account>;
  close(): Promise<void>;
}

export async function startHarness(opts: { limits?: Partial<Limits>; allowPlaintextLoopback?: boolean; domains?: string[] } = {}): Promise<Harness> {
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
  for (const d of opts.domains ?? ['example.com']) await store.addDomain(d);
  const servers: ProtocolServer[] = [];
  const bound: BoundListener[] = [];
  const ports = { smtp: 0, submission: 0, submissions: 0 };
  for (const kind of ['mx', 'submission', 'submissions'] as const) {
    const server = createSmtpServer(deps, kind);
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
