// Builds the Config: defaults < config file (DATA/config.json, or --config FILE) < environment
// (PILLARBOX_*) < command-line flags. Port 0 means "any free port".

import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Resolver } from 'node:dns';
import { DEFAULT_CLUSTER, DEFAULT_LIMITS, DEFAULT_OUTBOUND, PORT_NAMES, type ClusterConfig, type Config, type OutboundConfig, type PortName } from './config.ts';
import { defaultDatabase } from '../store/open.ts';
import { loadProxyProtocol, ProxyConfigError } from './proxy.ts';

export const DEFAULT_PORTS: Record<PortName, number> = {
  smtp: 25,
  submission: 587,
  submissions: 465,
  imap: 143,
  imaps: 993,
  pop3: 110,
  pop3s: 995,
  http: 8080,
};

export class ConfigError extends Error {}

/** Flags as parsed from the command line (strings), keyed by flag name without dashes. */
export type Flags = Record<string, string | boolean | undefined>;

function parsePort(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new ConfigError(`${what}: "${v}" is not a port number (0-65535)`);
  return Number(v);
}

function parseBool(v: string | boolean, what: string): boolean {
  if (typeof v === 'boolean') return v;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${what}: "${v}" is not true/false`);
}

export function loadConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env): Config {
  const str = (flag: string, envName: string): string | undefined => {
    const f = flags[flag];
    if (typeof f === 'string') return f;
    const e = env[envName];
    return e === undefined || e === '' ? undefined : e;
  };
  const dataDir = resolve(str('data', 'PILLARBOX_DATA') ?? './data');
  const configFile = str('config', 'PILLARBOX_CONFIG') ?? join(dataDir, 'config.json');
  let file: Record<string, any> = {};
  if (existsSync(configFile)) {
    try {
      file = JSON.parse(readFileSync(configFile, 'utf8'));
    } catch (err) {
      throw new ConfigError(`config file ${configFile}: ${(err as Error).message}`);
    }
  } else if (typeof flags.config === 'string') {
    throw new ConfigError(`config file ${configFile} does not exist`);
  }

  const ports = { ...DEFAULT_PORTS };
  for (const name of PORT_NAMES) {
    if (file.ports?.[name] !== undefined) ports[name] = parsePort(String(file.ports[name]), `config ports.${name}`);
    const v = str(`${name}-port`, `PILLARBOX_${name.toUpperCase()}_PORT`);
    if (v !== undefined) ports[name] = parsePort(v, `--${name}-port`);
  }
  const limits = { ...DEFAULT_LIMITS, ...(file.limits ?? {}) };
  for (const [k, v] of Object.entries(limits)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`config limits.${k} must be a non-negative number`);
  }
  const maxSize = str('max-message-size', 'PILLARBOX_MAX_MESSAGE_SIZE');
  if (maxSize !== undefined) {
    const n = parseSize(maxSize);
    if (n === null) throw new ConfigError(`--max-message-size: "${maxSize}" is not a size like 25MB`);
    limits.maxMessageSize = n;
    limits.appendLimit = n;
  }
  const logLevel = (str('log-level', 'PILLARBOX_LOG_LEVEL') ?? file.logLevel ?? 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new ConfigError(`--log-level must be debug, info, warn or error`);
  const logFormat = (str('log-format', 'PILLARBOX_LOG_FORMAT') ?? file.logFormat ?? 'text') as NonNullable<Config['logFormat']>;
  if (!['text', 'json'].includes(logFormat)) throw new ConfigError(`--log-format must be text or json`);
  const logFile = str('log-file', 'PILLARBOX_LOG_FILE') ?? file.logFile ?? null;
  if (logFile !== null && (typeof logFile !== 'string' || logFile === '')) throw new ConfigError('config logFile must be a file path');
  const lmtp = str('lmtp-port', 'PILLARBOX_LMTP_PORT') ?? file.lmtpPort ?? null;
  const lmtpAllow = file.lmtpAllow ?? [];
  if (!Array.isArray(lmtpAllow) || lmtpAllow.some((a) => typeof a !== 'string')) throw new ConfigError('config lmtpAllow must be a list of IP addresses');
  const srsSecretFile = file.srsSecret;
  if (srsSecretFile !== undefined && srsSecretFile !== null && (typeof srsSecretFile !== 'string' || srsSecretFile.length < 16)) {
    throw new ConfigError('config srsSecret must be a string of at least 16 characters');
  }
  const plain = flags['allow-plaintext-loopback'] ?? env.PILLARBOX_ALLOW_PLAINTEXT_LOOPBACK ?? file.allowPlaintextLoopback ?? false;

  return {
    hostname: str('hostname', 'PILLARBOX_HOSTNAME') ?? file.hostname ?? osHostname(),
    host: str('host', 'PILLARBOX_HOST') ?? file.host ?? '0.0.0.0',
    ports,
    dataDir,
    database: str('database', 'PILLARBOX_DATABASE') ?? file.database ?? defaultDatabase(dataDir),
    portsFile: resolve(str('ports-file', 'PILLARBOX_PORTS_FILE') ?? file.portsFile ?? join(dataDir, 'ports.json')),
    tlsCert: str('tls-cert', 'PILLARBOX_TLS_CERT') ?? file.tlsCert ?? null,
    tlsKey: str('tls-key', 'PILLARBOX_TLS_KEY') ?? file.tlsKey ?? null,
    allowPlaintextLoopback: parseBool(plain as string | boolean, 'allow-plaintext-loopback'),
    logLevel,
    logFile: logFile === null ? null : resolve(logFile),
    logFormat,
    limits,
    postmaster: str('postmaster', 'PILLARBOX_POSTMASTER') ?? file.postmaster ?? null,
    srsSecret: str('srs-secret', 'PILLARBOX_SRS_SECRET') ?? file.srsSecret ?? null,
    mailAuth: parseBool((flags['mail-auth'] ?? env.PILLARBOX_MAIL_AUTH ?? file.mailAuth ?? true) as string | boolean, 'mail-auth'),
    lmtpPort: lmtp === undefined || lmtp === null ? null : parsePort(String(lmtp), '--lmtp-port'),
    lmtpAllow,
    outbound: loadOutbound(file, str),
    cluster: loadCluster(file),
    workers: parseWorkers(str('workers', 'PILLARBOX_WORKERS') ?? file.workers ?? 1),
    // --dns-servers (mailauth's name) or --dns-server.
    dnsServers: dnsServers(str('dns-servers', 'PILLARBOX_DNS_SERVERS') ?? str('dns-server', 'PILLARBOX_DNS_SERVERS'), file.dnsServers),
    proxyProtocol: proxyProtocol(file.proxyProtocol, str),
  };
}

function proxyProtocol(file: unknown, str: Str): Config['proxyProtocol'] {
  try {
    return loadProxyProtocol(file, str);
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

type Str = (flag: string, envName: string) => string | undefined;

/** Most worker processes `--workers` takes (each holds a SQLite connection, caches and thread pools). */
export const MAX_WORKERS = 64;

/** `--workers N|auto` / config workers (src/cluster/primary.ts). */
function parseWorkers(v: unknown): number | 'auto' {
  if (v === 'auto') return 'auto';
  const n = typeof v === 'number' ? v : /^\d{1,3}$/.test(String(v)) ? Number(v) : NaN; // linear: anchored digits
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new ConfigError(`--workers: "${String(v)}" must be auto or a number of processes from 1 to ${MAX_WORKERS}`);
  return n;
}

/** config `cluster` (src/net/shared-connections.ts). */
function loadCluster(file: Partial<Config>): ClusterConfig {
  const c: ClusterConfig = { ...DEFAULT_CLUSTER, ...(file.cluster ?? {}) };
  if (c.sharedSessions !== 'auto' && typeof c.sharedSessions !== 'boolean') throw new ConfigError('config cluster.sharedSessions must be true, false or "auto"');
  if (c.node !== null && (typeof c.node !== 'string' || !/^[\w.-]{1,100}$/.test(c.node))) throw new ConfigError('config cluster.node must be 1-100 letters, digits, ".", "-" or "_"');
  for (const k of ['heartbeatMs', 'sessionTtlMs'] as const) {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k]) || c[k] < 100) throw new ConfigError(`config cluster.${k} must be a number of ms, at least 100`);
  }
  if (c.sessionTtlMs < 2 * c.heartbeatMs) throw new ConfigError('config cluster.sessionTtlMs must be at least twice cluster.heartbeatMs');
  return c;
}

/** config `outbound` < PILLARBOX_OUTBOUND_PORT / PILLARBOX_RELAY_HOST < --outbound-port / --relay-host. */
function loadOutbound(file: Record<string, any>, str: Str): OutboundConfig {
  const o: OutboundConfig = { ...DEFAULT_OUTBOUND, ...(file.outbound ?? {}) };
  for (const k of ['port', 'concurrency', 'perDomainConcurrency', 'retryBase', 'retryMax', 'expiry', 'delayWarning', 'timeout', 'statsInterval', 'mtaStsPort', 'tlsReportInterval'] as const) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`config outbound.${k} must be a non-negative number`);
  }
  if (o.concurrency < 1 || o.perDomainConcurrency < 1) throw new ConfigError('config outbound.concurrency and perDomainConcurrency must be at least 1');
  if (o.timeout < 1000) throw new ConfigError('config outbound.timeout must be at least 1000 (ms)');
  if (o.deliveryThreads !== null && !(Number.isInteger(o.deliveryThreads) && o.deliveryThreads >= 0 && o.deliveryThreads <= 64)) {
    throw new ConfigError('config outbound.deliveryThreads must be null (automatic) or a whole number from 0 to 64');
  }
  const port = str('outbound-port', 'PILLARBOX_OUTBOUND_PORT');
  if (port !== undefined) o.port = parsePort(port, '--outbound-port');
  else o.port = parsePort(String(o.port), 'config outbound.port');
  const relay = str('relay-host', 'PILLARBOX_RELAY_HOST');
  if (relay !== undefined) o.relayHost = relay;
  if (o.relayHost !== null && (typeof o.relayHost !== 'string' || !/^smtps?:\/\//i.test(o.relayHost))) {
    throw new ConfigError('--relay-host must look like smtp://user:pass@host:587 or smtps://user:pass@host:465');
  }
  const ca = str('relay-ca', 'PILLARBOX_RELAY_CA');
  if (ca !== undefined) o.relayCa = ca;
  if (o.relayCa !== null) o.relayCa = resolve(String(o.relayCa));
  if (typeof o.mtaSts !== 'boolean') throw new ConfigError('config outbound.mtaSts must be true or false');
  o.mtaStsPort = parsePort(String(o.mtaStsPort), 'config outbound.mtaStsPort');
  if (o.tlsCa !== null) o.tlsCa = resolve(String(o.tlsCa));
  return o;
}

/** --dns-servers / PILLARBOX_DNS_SERVERS "a,b" or config dnsServers ["a", "b"]; checked by node:dns. */
function dnsServers(flag: string | undefined, file: unknown): string[] {
  let list: string[];
  if (flag !== undefined) list = flag.split(',').map((x) => x.trim()).filter(Boolean);
  else if (file === undefined || file === null) return [];
  else if (Array.isArray(file) && file.every((x) => typeof x === 'string')) list = file;
  else throw new ConfigError('config dnsServers must be a list of "IP" or "IP:PORT" strings');
  try {
    new Resolver().setServers(list);
  } catch (err) {
    throw new ConfigError(`dns servers ${JSON.stringify(list)}: ${(err as Error).message}`);
  }
  return list;
}

/** "500MB", "1.5G", "2048", "10 KiB" → bytes; null when malformed. Units are powers of 1024. */
export function parseSize(s: string): number | null {
  // Trimmed first: `^\s*…(unit)?\s*$` had two `\s*` around an optional part (O(n²) backtracking).
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?$/i.exec(s.trim());
  if (!m) return null;
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const mult = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit as 'b'];
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : null;
}

export function formatSize(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(n % 1024 ** 3 ? 1 : 0)}GB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(n % 1024 ** 2 ? 1 : 0)}MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)}KB`;
  return `${n}B`;
}
