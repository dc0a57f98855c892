// Server configuration: defaults < config file (DATA/config.json or --config) < environment
// (PILLARBOX_*) < command-line flags. See `pillarbox serve --help`.

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
  /** POP3 autologout, ms (RFC 1939 §3: at least 10 minutes). */
  pop3Timeout: number;
  /** Max Received: headers before a message is refused as looping. */
  maxHops: number;
  /** Log `server.loop-stall` when the event loop is blocked this long, ms (0 = off; src/obs/loop-lag.ts). */
  loopStallMs: number;
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
  limits: Limits;
}

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
  pop3Timeout: 10 * 60 * 1000,
  maxHops: 30,
  loopStallMs: 100,
};
