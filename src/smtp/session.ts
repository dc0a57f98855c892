// The smtp-server handlers of one listener (rules: the header of server.ts): connect, STARTTLS,
// AUTH, MAIL FROM, RCPT TO, DATA.

import type { TLSSocket } from 'node:tls';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerSession,
} from 'smtp-server';
import type { ServerDeps } from '../net/types.ts';
import { memoryBlob, type Account, type StagedBlob } from '../store/store.ts';
import { QUEUE_INLINE_BODY } from '../store/queue.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';
import { addressKey } from '../protocol/smtp/address.ts';
import { formatReceived, formatReturnPath } from '../protocol/smtp/trace.ts';
import { ALWAYS_DISABLED, DataAborted, SmtpError, shuttingDown, type SmtpKind } from './connection.ts';
import type { Resolver } from './resolve.ts';
import { decodeXtext, parseNotify, Refusal, type RcptPlan, type RecipientPolicy } from './recipients.ts';
import { fromAddresses, type SendLimiter } from './policy.ts';
import type { Deliverer, RcptOutcome } from './deliver.ts';
import { receiveData, stageMessage, withoutRanges } from './receive.ts';
import { activity } from '../obs/loop-lag.ts';

export interface SessionContext {
  deps: ServerDeps;
  kind: SmtpKind;
  resolver: Resolver;
  recipients: RecipientPolicy;
  limiter: SendLimiter | null;
  deliverer: Deliverer;
  /** Deliveries under way (shutdown waits for them). */
  inflight: Set<Promise<unknown>>;
  closing: boolean;
  /** AUTH over plaintext only where the config allows it for loopback peers (tests, local tools). */
  plaintextAuthOk(ip: string): boolean;
  allowConnect?: (ip: string) => boolean;
}

interface SessionState {
  tls: { version: string; cipher: string } | null;
  /** SIZE= of the current MAIL FROM (RFC 1870), 0 if not given. */
  declaredSize: number;
  /** Lower-cased RCPT address → its plan (current transaction only). */
  rcpts: Map<string, RcptPlan>;
}

type Callback = (err?: Error | null) => void;

export class SessionHandlers {
  readonly #c: SessionContext;
  readonly #states = new WeakMap<SMTPServerSession, SessionState>();

  constructor(c: SessionContext) {
    this.#c = c;
  }

  #state(session: SMTPServerSession): SessionState {
    let s = this.#states.get(session);
    if (!s) this.#states.set(session, (s = { tls: null, declaredSize: 0, rcpts: new Map() }));
    return s;
  }

  #account(session: SMTPServerSession): Account | null {
    return session.user ? (session.user as Account) : null;
  }

  onConnect(session: SMTPServerSession, callback: Callback): void {
    this.#state(session);
    const { config } = this.#c.deps;
    if (this.#c.closing) return callback(new SmtpError(421, shuttingDown(config.hostname)));
    if (this.#c.allowConnect && !this.#c.allowConnect(session.remoteAddress)) {
      this.#c.deps.log.info('lmtp.refused', { ip: session.remoteAddress });
      return callback(new SmtpError(554, '5.7.1 This address may not use LMTP here'));
    }
    // Submission on a cleartext connection: AUTH is neither advertised nor accepted until STARTTLS.
    if (this.#c.kind === 'submission' && !this.#c.plaintextAuthOk(session.remoteAddress)) session.disabledCommands = ['AUTH', ...ALWAYS_DISABLED];
    callback();
  }

  onSecure(socket: TLSSocket, session: SMTPServerSession, callback: Callback): void {
    const cipher = typeof socket.getCipher === 'function' ? socket.getCipher() : null;
    this.#state(session).tls = {
      version: (typeof socket.getProtocol === 'function' ? socket.getProtocol() : null) ?? 'TLS',
      cipher: cipher?.standardName ?? cipher?.name ?? 'unknown',
    };
    if (this.#c.kind === 'submission') session.disabledCommands = ALWAYS_DISABLED;
    callback();
  }

  onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    const { log } = this.#c.deps;
    const kind = this.#c.kind;
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return callback(null, { responseCode: 504, message: '5.5.4 Unrecognized authentication type' });
    // RFC 4616 §2: we don't support acting as someone else; an authzid must name the same user.
    if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid.toLowerCase() !== auth.authcid.toLowerCase()) {
      return callback(null, { responseCode: 535, message: '5.7.8 Authorization identity must be the authentication identity' });
    }
    const username = auth.username ?? '';
    this.#c.deps.auth.login(username, auth.password ?? '', session.remoteAddress).then(
      (r) => {
        if (r.ok) {
          log.info('smtp.login', { protocol: 'smtp', session: session.id, user: r.account.address, ip: session.remoteAddress, listener: kind });
          return callback(null, { user: r.account });
        }
        log.info('smtp.login-failed', { protocol: 'smtp', session: session.id, user: username, ip: session.remoteAddress, listener: kind, reason: r.reason });
        // RFC 4954 §6: 454 4.7.0 temporary failure; 535 5.7.8 invalid credentials.
        if (r.reason === 'throttled') return callback(null, { responseCode: 454, message: '4.7.0 Too many failed login attempts; try again later' });
        if (r.reason === 'busy') return callback(null, { responseCode: 454, message: '4.7.0 Temporary authentication failure: too many logins being checked; try again later' });
        return callback(null, { responseCode: 535, message: '5.7.8 Authentication credentials invalid' });
      },
      (err: unknown) => {
        log.error('smtp.auth-error', { session: session.id, error: err instanceof Error ? err : String(err) });
        callback(null, { responseCode: 454, message: '4.7.0 Temporary authentication failure' });
      },
    );
  }

  onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    const st = this.#state(session);
    st.rcpts = new Map();
    const size = address.args && typeof address.args.SIZE === 'string' ? Number(address.args.SIZE) : 0;
    st.declaredSize = Number.isSafeInteger(size) && size > 0 ? size : 0;
    this.#run(callback, async () => {
      if (this.#c.kind === 'mx' || this.#c.kind === 'lmtp') return;
      const user = this.#account(session);
      if (!user) {
        // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
        if (!session.secure && !this.#c.plaintextAuthOk(session.remoteAddress)) throw new SmtpError(530, '5.7.0 Must issue a STARTTLS command first');
        throw new SmtpError(530, '5.7.0 Authentication required');
      }
      const limited = this.#c.limiter?.messageRefusal(user.id);
      if (limited) {
        this.#c.deps.log.info('smtp.send-limit', { session: session.id, user: user.address, ip: session.remoteAddress, limit: 'messages' });
        throw new SmtpError(450, limited);
      }
      if (address.address === '') return; // null reverse-path: not anyone's address
      if (!(await this.#owns(user, address.address))) {
        this.#c.deps.log.info('smtp.sender-refused', { session: session.id, user: user.address, from: address.address, ip: session.remoteAddress, code: 553 });
        throw new SmtpError(553, `5.7.1 <${address.address}>: sender address not owned by ${user.address}`);
      }
    });
  }

  onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    const st = this.#state(session);
    const user = this.#account(session);
    this.#run(callback, async () => {
      const key = addressKey(address.address);
      if (user && this.#c.limiter && !st.rcpts.has(key)) {
        const limited = this.#c.limiter.recipientRefusal(user.id, st.rcpts.size);
        if (limited) throw this.#refused(session, new Refusal(450, limited, 'send-limit', address.address));
      }
      let plan: RcptPlan;
      try {
        plan = await this.#c.recipients.accept(address.address, {
          kind: this.#c.kind,
          authenticated: user !== null,
          declaredSize: st.declaredSize,
          outbound: this.#c.deps.outbound !== undefined,
          notify: parseNotify(address.dsn?.notify),
          orcpt: address.dsn?.orcpt ? decodeXtext(address.dsn.orcpt) : null,
        });
      } catch (err) {
        if (err instanceof Refusal) throw this.#refused(session, err);
        throw err;
      }
      st.rcpts.set(key, plan);
    });
  }

  /** A refused recipient: one log line (smtp.rcpt-refused), then the reply. */
  #refused(session: SMTPServerSession, r: Refusal): SmtpError {
    this.#c.deps.log.info('smtp.rcpt-refused', {
      session: session.id,
      listener: this.#c.kind,
      ip: session.remoteAddress,
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address || '<>' : undefined,
      to: r.rcpt,
      user: this.#account(session)?.address,
      code: r.code,
      reason: r.reason,
    });
    return new SmtpError(r.code, r.message);
  }

  onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string | Array<string | Error>) => void): void {
    const { log } = this.#c.deps;
    // What a stall report names (src/obs/loop-lag.ts): the message from its first byte to its reply.
    const label = `smtp.data listener=${this.#c.kind} account=${this.#account(session)?.address ?? '-'} rcpts=${session.envelope.rcptTo.length}`;
    const p = activity.run(label, () => this.#receive(stream, session)).then(
      (message) => callback(null, message),
      (err: unknown) => {
        if (err instanceof SmtpError) return callback(err);
        if (err instanceof DataAborted) {
          // Nobody is left to answer; nothing was stored.
          log.info('smtp.data-aborted', { session: session.id, received: err.received, shutdown: this.#c.closing || undefined });
          return callback(new SmtpError(451, '4.3.0 Message not received in full'));
        }
        log.error('smtp.data-error', { session: session.id, error: err instanceof Error ? err : String(err) });
        callback(new SmtpError(451, '4.3.0 Local error in processing; try again later'));
      },
    );
    this.#c.inflight.add(p);
    void p.finally(() => this.#c.inflight.delete(p));
  }

  onClose(session: SMTPServerSession): void {
    this.#states.delete(session);
  }

  /** Calls back with nothing, or with the SmtpError the body threw (others become 451). */
  #run(callback: Callback, body: () => Promise<void>): void {
    body().then(
      () => callback(),
      (err: unknown) => {
        if (err instanceof SmtpError) return callback(err);
        this.#c.deps.log.error('smtp.error', { error: err instanceof Error ? err : String(err) });
        callback(new SmtpError(451, '4.3.0 Local error in processing; try again later'));
      },
    );
  }

  /** After AUTH, an address must be the user's or one that resolves to them (alias, +tag, catch-all). */
  async #owns(user: Account, address: string): Promise<boolean> {
    if (addressKey(address) === user.address) return true;
    const res = await this.#c.resolver.resolve(address);
    return res.kind === 'local' && res.targets.some((t) => t.account.id === user.id);
  }

  /** DATA: receive, check, deliver; resolves to the 250 text (LMTP: one reply per RCPT). */
  async #receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string | Array<string | Error>> {
    const { config, log, store } = this.#c.deps;
    const st = this.#state(session);
    const env = session.envelope;
    const from = env.mailFrom ? env.mailFrom.address : '';
    const rcpts = env.rcptTo.map((r) => r.address);
    const id = `${session.id}.${session.transaction}`;
    const returnPath = Buffer.from(formatReturnPath(from), 'utf8');
    const received = Buffer.from(this.#received(session, st, rcpts, id), 'utf8');
    const inbound = this.#c.kind === 'mx' ? this.#c.deps.inbound : undefined;
    const max = config.limits.maxMessageSize;
    // Only the outbound queue wants it (no local mailbox, no inbound check): small bodies go into
    // the queue's own commit instead of a blob file (QUEUE_INLINE_BODY).
    const queueOnly =
      this.#c.kind !== 'lmtp' && !inbound && this.#c.deps.outbound !== undefined && rcpts.every((r) => (st.rcpts.get(addressKey(r))?.local.length ?? 1) === 0);
    const data = await receiveData(stream, {
      store,
      log,
      session,
      max,
      timeout: config.limits.smtpTimeout,
      prefix: Buffer.concat([returnPath, received]),
      buffer: inbound !== undefined,
      ...(queueOnly ? { inlineMax: QUEUE_INLINE_BODY } : {}),
    });
    let blob: StagedBlob | null = data.kind === 'staged' ? data.blob : data.kind === 'inline' ? memoryBlob(data.raw) : null;
    try {
      // RFC 5321 §6.3: a message that went through too many hops is looping.
      if (data.hops > config.limits.maxHops) {
        log.info('smtp.loop', { session: session.id, hops: data.hops });
        throw new SmtpError(554, `5.4.6 Too many hops (${data.hops} Received headers): mail loop?`);
      }
      let meta: MessageMeta;
      let junk = false;
      if (data.kind === 'buffered') {
        const verdict = await inbound!({
          message: data.raw,
          ip: session.remoteAddress,
          helo: session.hostNameAppearsAs || '',
          mailFrom: from,
          hostname: config.hostname,
          isHosted: (d) => this.#c.resolver.isHosted(d),
          dnsServers: (config as { dnsServers?: string[] }).dnsServers,
        });
        if (verdict.action === 'reject') {
          log.info('smtp.inbound-rejected', { session: session.id, ip: session.remoteAddress, from: from || '<>', reply: verdict.reply ?? undefined });
          throw new SmtpError(550, verdict.reply ?? '5.7.1 Message refused by the authentication policy');
        }
        junk = verdict.action === 'junk';
        const header = Buffer.from(verdict.header, 'utf8');
        ({ blob, meta } = await stageMessage(store, [returnPath, header, received, ...withoutRanges(data.raw, verdict.strip)], max + 64 * 1024));
      } else meta = data.meta;
      await this.#checkFrom(session, meta);
      const plans = rcpts.map((r) => st.rcpts.get(addressKey(r))).filter((p): p is RcptPlan => p !== undefined);
      const dsn = env.dsn;
      const report = await this.#c.deliverer.deliver(blob!, meta, {
        id,
        session: session.id,
        kind: this.#c.kind,
        ip: session.remoteAddress,
        from,
        account: this.#account(session),
        plans,
        envid: dsn?.envid ? decodeXtext(dsn.envid) : null,
        ret: dsn?.ret === 'FULL' || dsn?.ret === 'HDRS' ? dsn.ret : null,
        junk,
        arrival: new Date(),
      });
      const user = this.#account(session);
      if (user && this.#c.limiter) this.#c.limiter.record(user.id, plans.length);
      if (this.#c.kind === 'lmtp') return report.perRcpt.map((r: RcptOutcome) => (r.ok ? report.text : new SmtpError(r.code, r.text)));
      return report.text;
    } finally {
      blob?.release();
    }
  }

  /** Submission: every From: address must be the user's (RFC 5322 §3.6.2; see policy.ts). */
  async #checkFrom(session: SMTPServerSession, meta: MessageMeta): Promise<void> {
    const user = this.#account(session);
    if (!user || (this.#c.kind !== 'submission' && this.#c.kind !== 'submissions')) return;
    for (const a of fromAddresses(meta.envelope.from)) {
      if (await this.#owns(user, a)) continue;
      this.#c.deps.log.info('smtp.from-refused', { session: session.id, user: user.address, from: a, ip: session.remoteAddress, code: 550 });
      throw new SmtpError(550, `5.7.1 From: <${a}> is not an address of ${user.address}; send as one of your own addresses`);
    }
  }

  #received(session: SMTPServerSession, st: SessionState, rcpts: string[], id: string): string {
    return formatReceived({
      helo: session.hostNameAppearsAs || null,
      clientHostname: session.clientHostname || null,
      remoteAddress: session.remoteAddress,
      hostname: this.#c.deps.config.hostname,
      protocol: session.transmissionType || 'ESMTP',
      id,
      tls: st.tls,
      forRecipient: rcpts.length === 1 ? rcpts[0]! : null,
      date: new Date(),
    });
  }
}
