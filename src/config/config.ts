// Server configuration: defaults < config file (DATA/config.json or --config) < environment
// (PILLARBOX_*) < command-line flags. See `pillarbox serve --help`.

import type { ProxyProtocolConfig } from './proxy.ts';
export type { ProxyProtocolConfig } from './proxy.ts';

export interface Limits {
  /** SMTP message size limit in bytes (SIZE, RFC 1870). */
  maxMessageSize: number;
  /** RCPT TO per message. */
  maxRecipients: number;
  /** Concurrent connections from one IP, per protocol. */
  maxConnectionsPerIp: number;
  /** Total concurrent connections per listener. */
  maxConnections: number;
  /** SMTP command / data inactivity timeout, ms. */
  smtpTimeout: number;
  /** Longest protocol command line in bytes (IMAP, POP3). */
  maxLineLength: number;
  /** IMAP APPENDLIMIT in bytes (RFC 7889); defaults to maxMessageSize. */
  appendLimit: number;
  /** IMAP autologout without a command, ms (RFC 9051 §5.4: at least 30 minutes). */
  imapIdleTimeout: number;
  /** Interval of `* OK Still here` during IDLE, ms. */
  imapIdleKeepalive: number;
  /**
   * IMAP NOTIFY (RFC 5465 §5.8): notifications (mailboxes owing a STATUS, LIST responses) one session
   * may have waiting while its client does not read or a command runs; past it `* OK [NOTIFICATIONOVERFLOW]`.
   */
  imapNotifyQueue: number;
  /** POP3 autologout, ms (RFC 1939 §3: at least 10 minutes). */
  pop3Timeout: number;
  /** Max Received: headers before a message is refused as looping. */
  maxHops: number;
  /**
   * Shutdown drain, ms: how long sessions get to finish the command or message in progress after
   * SIGTERM/SIGINT before they are told goodbye mid-transfer and their sockets destroyed.
   */
  shutdownGrace: number;
  /** Login throttling (src/auth/throttle-policy.ts), ms: spacing of one (account, IP)'s checks after 3 failures, doubling per failure up to the max; a check queued past 2 × max is refused. */
  loginThrottleDelay: number;
  loginThrottleMaxDelay: number;
  /** Failure scores halve every this many ms. */
  loginThrottleHalfLife: number;
  /** Every failed login is answered after this many ms. */
  loginFailDelay: number;
  /**
   * Password checks (scrypt, 32 MiB and one libuv thread each) running at once, process-wide
   * (at least 1), and how many more may wait for one; beyond, a login is refused unchecked with a
   * temporary error (src/auth/check-gate.ts).
   */
  passwordChecks: number;
  passwordCheckQueue: number;
  /**
   * Time an unauthenticated connection gets to log in, ms (IMAP, POP3, SMTP submission; 0: no
   * limit). Clients log in within a second of connecting; a connection that doesn't only holds a slot.
   */
  preauthTimeout: number;
  /** Mailboxes per account, parents that CREATE adds included (NO [LIMIT] beyond, RFC 5530). */
  maxMailboxes: number;
  /** Longest mailbox name in UTF-8 bytes, the whole hierarchical name. */
  maxMailboxNameBytes: number;
  /** Most hierarchy levels in a mailbox name (`a/b/c` has 3). */
  maxMailboxDepth: number;
  /**
   * SELECT / EXAMINE of a mailbox with at least this many messages starts reading its SORT/THREAD
   * keys in the background (src/imap/sort-index.ts prewarmKeyIndex), so the first SORT or THREAD
   * after a server start does not read them all then (0 = never; issue 14).
   */
  sortPrewarmMessages: number;
  /** Log `server.loop-stall` when the event loop is blocked this long, ms (0 = off; src/obs/loop-lag.ts). */
  loopStallMs: number;
  /** SQLite store: a worker thread checkpoints the WAL this often, ms; the event loop never does (src/store/sqlite/checkpointer.ts). */
  walCheckpointMs: number;
  /** Submission: messages one account may send per sliding hour (450 4.7.1 beyond; src/smtp/policy.ts). */
  sendMessagesPerHour: number;
  /** Submission: recipients one account may send to per sliding 24 hours (450 4.7.1 beyond). */
  sendRecipientsPerDay: number;
  /**
   * Change journal horizon (src/store/journal.ts): entries older than this many ms, or beyond the
   * newest `journalMaxEntries` of an account, are pruned; a follower asking from before the
   * horizon is told to resync. Pruning runs every `journalPruneInterval` ms (0 = never).
   */
  journalMaxAge: number;
  journalMaxEntries: number;
  journalPruneInterval: number;
}

export interface Config {
  hostname: string;
  host: string;
  ports: {
    smtp: number;
    submission: number;
    submissions: number;
    imap: number;
    imaps: number;
    pop3: number;
    pop3s: number;
    http: number;
  };
  dataDir: string;
  /** SQLite file path or postgres:// URL. */
  database: string;
  portsFile: string;
  tlsCert: string | null;
  tlsKey: string | null;
  /** Allow AUTH/LOGIN/USER without TLS on loopback connections (tests, local tools). */
  allowPlaintextLoopback: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Append logs to this file (reopened on SIGHUP) instead of stderr; null/absent = stderr. */
  logFile?: string | null;
  /** `text` (time level event key=value …, default) or `json` (one object per line). */
  logFormat?: 'text' | 'json';
  limits: Limits;
  /**
   * Account or alias that gets postmaster mail when no postmaster@ alias or account exists
   * (RFC 5321 §4.5.1; src/smtp/resolve.ts). Unset: the oldest account.
   */
  postmaster?: string | null;
  /**
   * Secret of the Sender Rewriting Scheme (src/protocol/smtp/srs.ts) for forwards to other domains.
   * Unset: generated once and kept in DATA/srs-secret (src/config/secrets.ts, by main.ts).
   */
  srsSecret?: string | null;
  /** SPF/DKIM/DMARC checks on the MX port (src/mailauth/inbound.ts). loadConfig: on by default. */
  mailAuth?: boolean;
  /** LMTP listener (RFC 2033; src/lmtp/server.ts) port; null/absent: no LMTP listener. */
  lmtpPort?: number | null;
  /** Addresses that may use LMTP besides loopback (exact IPs). */
  lmtpAllow?: string[];
  /** Outbound delivery; defaults DEFAULT_OUTBOUND (tests that build a Config by hand may omit it). */
  outbound?: OutboundConfig;
  /**
   * DNS servers for every lookup mail authentication and outbound delivery make ("IP" or "IP:PORT",
   * e.g. ["127.0.0.1:5353"]); empty = the system's resolvers (src/mailauth/resolver.ts).
   * `--dns-servers` (or `--dns-server`), comma-separated.
   */
  dnsServers?: string[];
  /** Several processes or nodes on one store (src/net/shared-connections.ts); defaults DEFAULT_CLUSTER. */
  cluster?: ClusterConfig;
  /**
   * Worker processes serving the listeners over the one store (src/cluster/primary.ts): 1 = this
   * process alone, no cluster (the default: two workers measured slower on imaptest's persistent load,
   * README "IMAP persistent sessions"); 'auto' = the number of cores. `--workers N|auto`.
   */
  workers?: number | 'auto';
  /**
   * PROXY protocol (HAProxy) on the listed listeners, from the trusted addresses only
   * (src/config/proxy.ts, src/net/listener.ts); null/absent: off everywhere.
   */
  proxyProtocol?: ProxyProtocolConfig | null;
}

/** Per-account session limits across nodes (issue 15). Times in ms. */
export interface ClusterConfig {
  /**
   * Count IMAP/POP3 sessions in the store, so the IMAP connection limit and POP3 IN-USE hold across
   * nodes: 'auto' (default) = on for PostgreSQL, off (this process only) for the embedded store.
   */
  sharedSessions: boolean | 'auto';
  /** This node's name in the store's session table (default: the hostname); pid and a nonce are added. */
  node: string | null;
  /** How often a node marks itself alive. */
  heartbeatMs: number;
  /** A node silent this long is presumed dead and its sessions stop counting (SIGKILL, power). */
  sessionTtlMs: number;
}

export const DEFAULT_CLUSTER: ClusterConfig = { sharedSessions: 'auto', node: null, heartbeatMs: 2000, sessionTtlMs: 6000 };

/** Outbound delivery (src/queue/): see src/queue/policy.ts for the retry rules. Times in ms. */
export interface OutboundConfig {
  /** Destination port of MX hosts (25; tests point it at loopback peers). `--outbound-port`. */
  port: number;
  /** Smarthost: smtp://user:pass@host:port (STARTTLS) or smtps://… (TLS); null = deliver by MX. `--relay-host`. */
  relayHost: string | null;
  /** PEM file to verify the smarthost's certificate with (its CA, or its self-signed certificate). */
  relayCa: string | null;
  /** SMTP transactions at once, in total. */
  concurrency: number;
  /** SMTP transactions at once per destination domain (the smarthost counts as one). */
  perDomainConcurrency: number;
  /** Worker threads the SMTP client sessions run on (src/queue/delivery-pool.ts); null = one per core but one (1 to 4), 0 = on the event loop. */
  deliveryThreads: number | null;
  /** First retry delay; doubles per attempt up to retryMax. */
  retryBase: number;
  retryMax: number;
  /** How long a message may stay queued before it bounces. */
  expiry: number;
  /** Warn the sender (once) when a message is still queued after this long; 0 = never. */
  delayWarning: number;
  /** Deadline of one SMTP transaction (connect to final reply); queue leases are twice this. */
  timeout: number;
  /** Interval of the `queue.stats` log line; 0 = off. */
  statsInterval: number;
  /** MTA-STS (RFC 8461) for MX delivery: policies fetched, cached and applied (src/queue/mta-sts.ts). */
  mtaSts: boolean;
  /** HTTPS port of MTA-STS policy hosts (443; tests use a loopback port). */
  mtaStsPort: number;
  /** PEM file of an extra CA trusted for policy hosts and MX certificates (tests; the system roots always are). */
  tlsCa: string | null;
  /** Interval of the `queue.tls-report` (RFC 8460) summary lines; 0 = off. A day by default. */
  tlsReportInterval: number;
}

export const DEFAULT_OUTBOUND: OutboundConfig = {
  port: 25,
  relayHost: null,
  relayCa: null,
  concurrency: 20,
  perDomainConcurrency: 5,
  deliveryThreads: null,
  retryBase: 5 * 60_000,
  retryMax: 2 * 60 * 60_000,
  expiry: 5 * 24 * 60 * 60_000,
  delayWarning: 4 * 60 * 60_000,
  timeout: 10 * 60_000,
  statsInterval: 60_000,
  mtaSts: true,
  mtaStsPort: 443,
  tlsCa: null,
  tlsReportInterval: 24 * 60 * 60_000,
};

export const PORT_NAMES = ['smtp', 'submission', 'submissions', 'imap', 'imaps', 'pop3', 'pop3s', 'http'] as const;
export type PortName = (typeof PORT_NAMES)[number];

export const DEFAULT_LIMITS: Limits = {
  maxMessageSize: 50 * 1024 * 1024,
  maxRecipients: 100,
  maxConnectionsPerIp: 50,
  maxConnections: 20000,
  smtpTimeout: 5 * 60 * 1000,
  maxLineLength: 64 * 1024,
  appendLimit: 50 * 1024 * 1024,
  imapIdleTimeout: 30 * 60 * 1000,
  imapIdleKeepalive: 2 * 60 * 1000,
  imapNotifyQueue: 1000,
  pop3Timeout: 10 * 60 * 1000,
  maxHops: 30,
  shutdownGrace: 5000,
  loginThrottleDelay: 1000,
  loginThrottleMaxDelay: 15_000,
  loginThrottleHalfLife: 5 * 60_000,
  loginFailDelay: 300,
  passwordChecks: 2,
  passwordCheckQueue: 100,
  preauthTimeout: 60 * 1000,
  maxMailboxes: 1000,
  maxMailboxNameBytes: 1000,
  maxMailboxDepth: 16,
  sortPrewarmMessages: 10_000,
  loopStallMs: 100,
  walCheckpointMs: 1000,
  sendMessagesPerHour: 500,
  sendRecipientsPerDay: 5000,
  journalMaxAge: 7 * 24 * 60 * 60_000,
  journalMaxEntries: 100_000,
  journalPruneInterval: 10 * 60_000,
};
