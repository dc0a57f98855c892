// One SMTP client session to a destination: connect (mx-connect for the MX hosts in order, or the
// smarthost), EHLO with our hostname, STARTTLS, then any number of transactions, each one message
// for all its recipients at that destination, with one reply per recipient. The SMTP client is
// nodemailer's SMTPConnection; nothing here speaks SMTP by hand.
//
// Decisions:
// - STARTTLS whenever the server offers it (RFC 3207). Opportunistic, as RFC 7435 describes for
//   MX delivery: the certificate is not verified (MX host names come from unauthenticated DNS, so a
//   check would prove nothing and would refuse mail to the many servers with self-signed
//   certificates), and a server that offers no STARTTLS gets the message in plaintext.
// - MTA-STS (RFC 8461, src/queue/mta-sts.ts: our own discovery, fetch and in-memory cache; mx-connect's
//   is not used): with an `enforce` policy only the MX hosts matching its `mx:` patterns are used,
//   STARTTLS is required and the certificate must verify for the MX host name (system roots, plus
//   `outbound.tlsCa` in tests); a failure is 451 4.7.5 (temporary: the next MX, then retry).
//   `testing`: delivered as without a policy, failures counted and logged. TLS-RPT (RFC 8460)
//   counts one result per session (TlsReport).
// - DANE (RFC 7672): not done. It needs DNSSEC-validated TLSA answers, and no validating resolver
//   is configured (node's resolver does not give the AD bit); TLSA records are ignored.
// - The smarthost (`outbound.relayHost`, smtp://user:pass@host:port or smtps://…) gets everything,
//   with TLS required and its certificate verified (against `outbound.relayCa` if given), and AUTH.
// - RFC 5321 §5.1: a host that refuses the connection or greets with 4xx/5xx → the next MX host.
// - PIPELINING, SIZE and 8BITMIME (BODY=8BITMIME declared when offered) are used by
//   SMTPConnection as the server advertises them; a message larger than the advertised SIZE is
//   refused permanently (552 5.3.4). Without 8BITMIME the bytes go as they are (like Postfix).
// - RFC 6531 §3.2: an envelope address with non-ASCII characters needs SMTPUTF8. To a server without
//   it: a non-ASCII sender fails every recipient, a non-ASCII recipient fails only itself, with
//   553 5.6.7 (RFC 6531 §3.5) naming the reason; the other recipients are still sent.
// - Every step has a timeout: connect, greeting, each reply (socket inactivity), and the whole
//   transaction (`deadlineMs`), after which the connection is closed and every recipient of it
//   gets a temporary failure.

import type { Readable } from 'node:stream';
import { readFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import mxConnect from 'mx-connect';
import { rootCertificates } from 'node:tls';
import type { MxHost } from './mx.ts';
import { certFailureType, splitByPolicy, type MtaSts, type StsPolicy, type TlsReport, type TlsResultType } from './mta-sts.ts';

export interface RelayConfig {
  secure: boolean;
  host: string;
  port: number;
  user: string | null;
  pass: string | null;
  /** PEM of a CA (or the server's own self-signed certificate) to verify the relay with. */
  ca: string | null;
}

/** `smtp://user:pass@host:port` or `smtps://…` → RelayConfig; throws with a readable reason. */
export function parseRelayUrl(url: string, caFile?: string | null): RelayConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`relay host "${url}" is not a URL like smtp://user:pass@host:587`);
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') throw new Error(`relay host "${url}": use smtp:// (STARTTLS) or smtps:// (TLS)`);
  const secure = u.protocol === 'smtps:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (!host) throw new Error(`relay host "${url}" has no host name`);
  return {
    secure,
    host,
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    user: u.username ? decodeURIComponent(u.username) : null,
    pass: u.password ? decodeURIComponent(u.password) : null,
    ca: caFile ? readFileSync(caFile, 'utf8') : null,
  };
}

export interface TransportOptions {
  /** Our hostname, for EHLO. */
  hostname: string;
  /** Destination port for MX hosts (25; tests point it at loopback peers). */
  port: number;
  /** Connect and greeting timeout, ms. */
  connectTimeoutMs: number;
  /** Inactivity timeout for every reply, ms (RFC 5321 §4.5.3.2: minutes). */
  replyTimeoutMs: number;
  /** The whole of one transaction (MAIL … final reply), ms. */
  deadlineMs: number;
  /** MTA-STS policies (shared by every session of the process); none = MTA-STS off. */
  mtaSts?: MtaSts;
  /** TLS-RPT counts (RFC 8460). */
  tlsReport?: TlsReport;
  /** Extra trusted CA (PEM) for verified TLS to MX hosts; tests only. */
  tlsCa?: string | null;
}

export interface OutgoingRecipient { id: number; address: string; notify: { never?: boolean; success?: boolean; failure?: boolean; delay?: boolean } | null; orcpt: string | null }
export interface OutgoingMessage {
  mailFrom: string;
  recipients: OutgoingRecipient[];
  size: number;
  envid: string | null;
  ret: 'FULL' | 'HDRS' | null;
  /** The message: a stream, or the bytes themselves (small messages: no stream pipeline to pass). */
  body(): Readable | Buffer;
}
/** The reply one recipient got: code 0 = no reply (connection failure). */
export interface RecipientReply { id: number; code: number; reply: string }

/** A session-level failure (no transaction possible): every recipient gets `reply`. */
export class TransportError extends Error {
  readonly code: number;
  readonly reply: string;
  constructor(code: number, reply: string) {
    super(reply);
    this.code = code;
    this.reply = reply;
  }
}

const NON_ASCII = /[^\x00-\x7f]/; // linear: one class, no repetition

type Conn = InstanceType<typeof SMTPConnection>;

/** What the engine uses of a session: SmtpSession here, or RemoteSession on a delivery worker (delivery-pool.ts). */
export interface DeliverySession {
  /** On a delivery worker. */
  readonly remote: boolean;
  readonly mxHostname: string;
  readonly usable: boolean;
  /** Transactions sent on it. */
  readonly sent: number;
  send(m: OutgoingMessage, deadlineMs: number): Promise<RecipientReply[]>;
  reset(): Promise<boolean>;
  close(): void;
  destroy(): void;
}

/** One open SMTP client session. `busy` while a transaction runs; reuse with more `send`s. */
export class SmtpSession implements DeliverySession {
  readonly remote = false;
  readonly host: string;
  readonly mxHostname: string;
  #conn: Conn;
  #closed = false;
  #error: Error | null = null;
  /** The last transaction failed part-way: RSET before the next one. */
  #dirty = false;
  sent = 0;
  readonly openedAt = Date.now();

  private constructor(conn: Conn, host: string, mxHostname: string) {
    this.#conn = conn;
    this.host = host;
    this.mxHostname = mxHostname;
    conn.on('error', (err: Error) => (this.#error ??= err));
    conn.on('end', () => (this.#closed = true));
  }

  get usable(): boolean {
    return !this.#closed && !this.#error && !this.#conn.destroyed;
  }
  /** The last transaction failed part-way: reset() sends RSET. */
  get needsReset(): boolean {
    return this.#dirty;
  }
  /** Calls `cb` once when the connection ends or fails. */
  onGone(cb: () => void): void {
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      cb();
    };
    this.#conn.once('end', once);
    this.#conn.once('error', once);
  }
  get secure(): boolean {
    return this.#conn.secure;
  }
  /** Whether the TLS certificate verified (chain and host name, as asked for in the TLS options). */
  get tlsAuthorized(): { ok: boolean; error: string } {
    const sock = (this.#conn as unknown as { _socket?: { authorized?: boolean; authorizationError?: Error | string } })._socket;
    const e = sock?.authorizationError;
    return { ok: !!sock?.authorized, error: e == null ? '' : typeof e === 'string' ? e : String((e as NodeJS.ErrnoException).code ?? e.message) };
  }
  get extensions(): string[] {
    return (this.#conn as unknown as { _supportedExtensions: string[] })._supportedExtensions ?? [];
  }

  /** Connects to the first MX host that greets us (RFC 5321 §5.1), or throws TransportError. */
  static async toMx(domain: string, all: MxHost[], o: TransportOptions): Promise<SmtpSession> {
    const sts = o.mtaSts ? await o.mtaSts.policyFor(domain) : { policy: null, error: null };
    const policy = sts.policy && sts.policy.mode !== 'none' ? sts.policy : null;
    if (sts.error && !policy) o.tlsReport?.record(domain, true, 'sts-policy-fetch-error');
    const hosts = policy ? SmtpSession.#policyHosts(domain, all, policy, o) : all;
    const enforce = policy?.mode === 'enforce';
    const ignore: string[] = [];
    const total = hosts.reduce((n, h) => n + h.A.length + h.AAAA.length, 0);
    let last: TransportError | null = null;
    for (let tries = 0; tries < Math.min(total, 5); tries++) {
      let mx: { socket: import('node:net').Socket; hostname: string; host: string };
      try {
        mx = await mxConnect({
          target: domain,
          mx: hosts.map((h) => ({ exchange: h.exchange, priority: h.priority, A: h.A, AAAA: h.AAAA })),
          port: o.port,
          maxConnectTime: o.connectTimeoutMs,
          ignoreMXHosts: ignore,
          localHostname: o.hostname,
          mtaSts: { enabled: false }, // ours, above (src/queue/mta-sts.ts)
        });
      } catch (err) {
        // mx-connect tried every address left.
        throw last ?? new TransportError(0, `451 4.4.1 cannot connect to any MX host of ${domain}: ${(err as Error).message}`);
      }
      // RFC 8461 §4.2: under a policy the certificate must be valid for the MX host name.
      const ca = o.tlsCa ? [...rootCertificates, o.tlsCa] : undefined;
      try {
        const s = await SmtpSession.#open(
          {
            connection: mx.socket,
            host: mx.host,
            port: o.port,
            tls: { rejectUnauthorized: enforce, servername: mx.hostname, minVersion: 'TLSv1', ...(ca ? { ca } : {}) },
            requireTLS: enforce,
            opportunisticTLS: !enforce,
          },
          o,
          mx.hostname,
        );
        SmtpSession.#report(domain, s, policy, o);
        return s;
      } catch (err) {
        last = err instanceof TransportError ? err : new TransportError(0, `451 4.4.2 ${mx.hostname}: ${(err as Error).message}`);
        const cause = (err as { cause?: ReplyishError }).cause;
        if (enforce && cause && (cause.code === 'ETLS' || cause.command === 'STARTTLS' || !cause.responseCode)) {
          // RFC 8461 §5: no verified TLS session → not delivered to this host; temporary (§5.1).
          const type: TlsResultType = cause.code === 'ETLS' || cause.command === 'STARTTLS' ? 'starttls-not-supported' : certFailureType(String((cause as { cause?: { code?: string } }).cause?.code ?? cause.code ?? ''));
          o.tlsReport?.record(domain, true, type, policy);
          last = new TransportError(0, `451 4.7.5 MTA-STS policy of ${domain} (enforce) requires verified TLS, ${mx.hostname}: ${type}: ${clean(cause.message)}`);
        }
        mx.socket.destroy();
        ignore.push(mx.host);
      }
    }
    throw last ?? new TransportError(0, `451 4.4.1 no MX host of ${domain} could be reached`);
  }

  /** RFC 8461 §4.1: enforce → only matching MX hosts (none → 4.7.5); testing → all, mismatches logged. */
  static #policyHosts(domain: string, all: MxHost[], policy: StsPolicy, o: TransportOptions): MxHost[] {
    const { allowed, refused } = splitByPolicy(all, policy);
    for (const h of refused) {
      o.tlsReport?.record(domain, true, 'validation-failure', policy);
      o.mtaSts?.log('queue.mta-sts-failure', { domain, mode: policy.mode, mx: h.exchange, reason: 'mx-not-in-policy', used: policy.mode === 'testing' });
    }
    if (policy.mode === 'testing') return all;
    if (allowed.length === 0) {
      throw new TransportError(0, `451 4.7.5 MTA-STS policy of ${domain} (enforce) allows none of its MX hosts (${all.map((h) => h.exchange).join(', ')}); will retry`);
    }
    return allowed;
  }

  /** TLS-RPT result of a session that is up; under `testing`, a failure is logged and the mail still goes. */
  static #report(domain: string, s: SmtpSession, policy: StsPolicy | null, o: TransportOptions): void {
    let failure: TlsResultType | null = null;
    if (!s.secure) failure = 'starttls-not-supported';
    else if (policy && !s.tlsAuthorized.ok) failure = certFailureType(s.tlsAuthorized.error);
    o.tlsReport?.record(domain, policy !== null, failure, policy);
    if (failure && policy) o.mtaSts?.log('queue.mta-sts-failure', { domain, mode: policy.mode, mx: s.mxHostname, reason: failure, used: true });
  }

  /** Connects to the smarthost, STARTTLS/TLS with verification, AUTH when credentials are given. */
  static async toRelay(r: RelayConfig, o: TransportOptions): Promise<SmtpSession> {
    const s = await SmtpSession.#open(
      {
        host: r.host,
        port: r.port,
        secure: r.secure,
        requireTLS: !r.secure,
        tls: { rejectUnauthorized: true, ...(r.ca ? { ca: [r.ca] } : {}), servername: r.host },
      },
      o,
      r.host,
    );
    if (r.user !== null) {
      await new Promise<void>((resolve, reject) => {
        s.#conn.login({ user: r.user!, pass: r.pass ?? '' }, (err) => {
          // Like Postfix's smtp_sasl_auth_soft_bounce: a refused login is our configuration's
          // fault, never the recipient's, so it defers (451) instead of bouncing everything.
          if (err) reject(new TransportError(0, `451 4.7.0 relay ${r.host} refused our login: ${clean((err as ReplyishError).response ?? err.message)}`));
          else resolve();
        });
      }).catch((err) => {
        s.close();
        throw err;
      });
    }
    return s;
  }

  static #open(extra: ConstructorParameters<typeof SMTPConnection>[0], o: TransportOptions, mxHostname: string): Promise<SmtpSession> {
    const conn = new SMTPConnection({
      name: o.hostname,
      connectionTimeout: o.connectTimeoutMs,
      greetingTimeout: o.connectTimeoutMs,
      socketTimeout: o.replyTimeoutMs,
      socketCloseTimeout: 1000,
      logger: false,
      ...extra,
    });
    return new Promise((resolve, reject) => {
      let done = false;
      const fail = (err: Error) => {
        if (done) return;
        done = true;
        conn.close();
        reject(Object.assign(replyError(err, `${mxHostname}: connection failed`), { cause: err }));
      };
      conn.once('error', fail);
      conn.once('end', () => fail(new Error('connection closed before the session was ready')));
      conn.connect((err) => {
        if (err) return fail(err);
        if (done) return;
        done = true;
        conn.removeListener('error', fail);
        resolve(new SmtpSession(conn, String(extra?.host ?? ''), mxHostname));
      });
    });
  }

  /** One transaction: MAIL, RCPT per recipient, DATA; resolves with one reply per recipient. */
  async send(m: OutgoingMessage, deadlineMs: number): Promise<RecipientReply[]> {
    const ext = this.extensions;
    const replies: RecipientReply[] = [];
    let rcpts = m.recipients;
    // RFC 6531 §3.2 / §3.5 (see the header).
    if (!ext.includes('SMTPUTF8')) {
      const why = (what: string) => `553 5.6.7 ${what} needs SMTPUTF8 (RFC 6531), which ${this.mxHostname} does not offer`;
      if (NON_ASCII.test(m.mailFrom)) return rcpts.map((r) => ({ id: r.id, code: 553, reply: why(`the non-ASCII sender address <${m.mailFrom}>`) }));
      for (const r of rcpts) if (NON_ASCII.test(r.address)) replies.push({ id: r.id, code: 553, reply: why(`the non-ASCII recipient address <${r.address}>`) });
      rcpts = rcpts.filter((r) => !NON_ASCII.test(r.address));
      if (rcpts.length === 0) return replies;
    }
    // RFC 1870 §6.1: don't send what the server already said it won't take.
    const max = this.#maxSize();
    if (max > 0 && m.size > max) {
      return [...replies, ...rcpts.map((r) => ({ id: r.id, code: 552, reply: `552 5.3.4 message size ${m.size} exceeds the limit of ${max} bytes of ${this.mxHostname}` }))];
    }
    const body = m.body();
    const info = await new Promise<{ accepted: string[]; rejectedErrors?: Array<{ recipient?: string; response?: string; responseCode?: number }>; response: string } | { error: ReplyishError }>((resolve) => {
      const timer = setTimeout(() => {
        this.close();
        resolve({ error: Object.assign(new Error('transaction took too long'), { code: 'ETIMEDOUT' }) });
      }, deadlineMs);
      this.#conn.send(
        { from: m.mailFrom || false, to: rcpts.map((r) => r.address), size: m.size, use8BitMime: true, dsn: dsnParams(m, rcpts) },
        body,
        (err, res) => {
          clearTimeout(timer);
          resolve(err ? { error: err as ReplyishError } : (res as never));
        },
      );
    });
    this.sent++;
    this.#dirty = 'error' in info;
    if ('error' in info) {
      if (!Buffer.isBuffer(body)) body.destroy();
      // A DATA reply failure carries no RCPT refusals; they are on the envelope still.
      info.error.rejectedErrors ??= (this.#conn as unknown as { _envelope?: { rejectedErrors?: ReplyishError['rejectedErrors'] } })._envelope?.rejectedErrors;
      return [...replies, ...repliesFromError(info.error, rcpts, this.mxHostname)];
    }
    const byAddress = new Map<string, { code: number; reply: string }>();
    for (const e of info.rejectedErrors ?? []) if (e.recipient) byAddress.set(e.recipient, { code: e.responseCode ?? 0, reply: clean(e.response ?? '') });
    const ok = { code: codeOf(info.response), reply: clean(info.response) };
    for (const r of rcpts) replies.push({ id: r.id, ...(byAddress.get(r.address.trim()) ?? ok) });
    return replies;
  }

  /**
   * Ready for another transaction on this connection: RSET after a failed one. After a completed
   * one the server is ready already (RFC 5321 §4.1.1.4: the end of DATA ends the transaction), so
   * the next MAIL goes out without a round trip.
   */
  async reset(): Promise<boolean> {
    if (!this.usable) return false;
    if (!this.#dirty) return true;
    return new Promise((resolve) => this.#conn.reset((err) => resolve(!err)));
  }

  #maxSize(): number {
    return (this.#conn as unknown as { _maxAllowedSize?: number })._maxAllowedSize ?? 0;
  }

  /** QUIT (when usable) and close. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (!this.#error && !this.#conn.destroyed) this.#conn.quit();
    } catch {
      // closing anyway
    }
    setTimeout(() => this.#conn.close(), 1000).unref();
  }

  /** Close at once (shutdown abandons the transaction; its lease runs out). */
  destroy(): void {
    this.#closed = true;
    this.#conn.close();
  }
}

interface ReplyishError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  rejectedErrors?: Array<{ recipient?: string; response?: string; responseCode?: number }>;
}

/** RFC 3461 parameters passed on when the next hop speaks DSN: NOTIFY only if the recipients agree, ORCPT for one recipient. */
function dsnParams(m: OutgoingMessage, rcpts: OutgoingRecipient[]) {
  const notifyOf = (r: OutgoingRecipient) => {
    const n = r.notify;
    if (!n) return '';
    if (n.never) return 'NEVER';
    return [n.success && 'SUCCESS', n.failure && 'FAILURE', n.delay && 'DELAY'].filter(Boolean).join(',');
  };
  const notify = new Set(rcpts.map(notifyOf));
  const one = notify.size === 1 ? [...notify][0]! : '';
  const dsn = {
    ...(m.ret ? { ret: m.ret } : {}),
    ...(m.envid ? { envid: m.envid } : {}),
    ...(one ? { notify: one.split(',') } : {}),
    ...(rcpts.length === 1 && rcpts[0]!.orcpt ? { orcpt: rcpts[0]!.orcpt } : {}),
  };
  return Object.keys(dsn).length ? dsn : undefined;
}

function codeOf(reply: string): number {
  const n = Number(reply.slice(0, 3));
  return Number.isInteger(n) && n >= 200 && n < 600 ? n : 0;
}

/** One line for logs and DSNs: CR/LF of multi-line replies joined. */
function clean(reply: string): string {
  return reply.replace(/\r?\n/g, ' ').slice(0, 1000); // linear: one-character alternatives
}

/** A failed send: per-recipient RCPT replies when there are some, else one reply for everyone. */
function repliesFromError(err: ReplyishError, rcpts: OutgoingRecipient[], host: string): RecipientReply[] {
  const per = new Map<string, { code: number; reply: string }>();
  for (const e of err.rejectedErrors ?? []) if (e.recipient) per.set(e.recipient, { code: e.responseCode ?? 0, reply: clean(e.response ?? '') });
  const all = replyError(err, `${host}: ${err.command ? `${err.command}: ` : ''}${err.message}`);
  return rcpts.map((r) => ({ id: r.id, ...(per.get(r.address.trim()) ?? { code: all.code, reply: all.reply }) }));
}

/** An error from SMTPConnection as a TransportError: the server's reply if there was one. */
function replyError(err: unknown, what: string): TransportError {
  const e = err as ReplyishError;
  if (e.response && e.responseCode) return new TransportError(e.responseCode, clean(e.response));
  return new TransportError(0, `451 4.4.2 ${clean(what)}`);
}
