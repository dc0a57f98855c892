// Builds the outbound side from the Config for src/main.ts: the Outbound (what SMTP sessions hand
// outside mail to) and the QueueEngine that delivers it, sharing one resolver and one policy.
//
// "Ourselves" for MX loop detection (RFC 5321 §5.1): our hostname, and an address we listen on
// when the destination port is the port our MX listens on (tests run peers on other ports of
// 127.0.0.1, which are not us).

import { networkInterfaces } from 'node:os';
import { DEFAULT_OUTBOUND, type Config } from '../config/config.ts';
import type { Logger } from '../obs/log.ts';
import type { Store } from '../store/store.ts';
import { QueueEngine } from './engine.ts';
import { createDnsResolver, type DnsResolver } from './mx.ts';
import { Outbound, type SignHook } from './outbound.ts';
import type { RetryPolicy } from './policy.ts';
import { parseRelayUrl } from './transport.ts';
import { MtaSts, TlsReport } from './mta-sts.ts';
import { readFileSync } from 'node:fs';
import { authorDomain } from '../mailauth/dkim.ts';
import { DkimSignerPool } from '../mailauth/dkim-pool.ts';
import { DeliveryPool } from './delivery-pool.ts';
import type { DkimKey } from '../store/dkim-keys.ts';

/** How long the DKIM keys of a domain are used before they are looked up again. */
export const KEYS_TTL_MS = 10_000;

export interface OutboundSide {
  port: Outbound;
  engine: QueueEngine;
  /** Starts the engine; `mxPort` = the port our MX listener got. */
  start(mxPort: number): void;
  stop(): Promise<void>;
}

type Txt = { resolveTxt?(n: string): Promise<string[][]> };

/** TXT lookups (MTA-STS discovery, TLS-RPT): the resolver's, or "no record" when it has none. */
function txtVia(r: DnsResolver & Txt) {
  return (name: string): Promise<string[][]> => (r.resolveTxt ? r.resolveTxt(name) : Promise.reject(Object.assign(new Error('no TXT lookups'), { code: 'ENODATA' })));
}

export function createOutbound(o: { store: Store; config: Config; log: Logger; sign?: SignHook | null; resolver?: DnsResolver }): OutboundSide {
  const { store, config, log } = o;
  const c = config.outbound ?? DEFAULT_OUTBOUND;
  const policy: RetryPolicy = { retryBase: c.retryBase, retryMax: c.retryMax, expiry: c.expiry, delayWarning: c.delayWarning };
  const resolver = o.resolver ?? createDnsResolver(config.dnsServers ?? []);
  const relay = c.relayHost ? parseRelayUrl(c.relayHost, c.relayCa) : null;
  // DKIM (src/mailauth/dkim.ts): every active key of the From: domain signs; no keys, no signature.
  // The signing itself runs on worker threads (src/mailauth/dkim-pool.ts).
  const signer = new DkimSignerPool({ onWorkerError: (err) => log.warn('queue.dkim-worker-failed', { error: err }) });
  // The active keys of a domain are looked up once per KEYS_TTL_MS, not for every message: a key
  // generated or retired with the CLI signs, or stops signing, within that time.
  const keyCache = new Map<string, { keys: DkimKey[]; until: number }>();
  const activeKeys = async (domain: string): Promise<DkimKey[]> => {
    const now = Date.now();
    const hit = keyCache.get(domain);
    if (hit && hit.until > now) return hit.keys;
    const keys = await store.dkimKeys.active(domain);
    if (keyCache.size >= 1000) keyCache.clear();
    keyCache.set(domain, { keys, until: now + KEYS_TTL_MS });
    return keys;
  };
  const sign: SignHook = async (message) => {
    const domain = authorDomain(message);
    if (!domain) return null;
    const keys = await activeKeys(domain);
    if (keys.length === 0) return null;
    const r = await signer.sign(message, domain, keys);
    if (r.errors.length) log.warn('queue.dkim-error', { domain, errors: r.errors.join('; ') });
    return r.headers || null;
  };
  const outbound = new Outbound({
    store,
    log,
    hostname: config.hostname,
    postmaster: config.postmaster ?? null,
    policy,
    maxMessageSize: config.limits.maxMessageSize,
    sign: o.sign === undefined ? sign : o.sign,
  });
  const tlsCa = c.tlsCa ? readFileSync(c.tlsCa, 'utf8') : null;
  const resolveTxt = txtVia(resolver as DnsResolver & Txt);
  const mtaSts = c.mtaSts
    ? new MtaSts({ resolveTxt, resolve4: (n) => resolver.resolve4(n), port: c.mtaStsPort, ca: tlsCa, timeoutMs: Math.min(60_000, c.timeout / 2), log })
    : undefined;
  // RFC 8460 §5.3: reports go out like any message (DKIM-signed when the From: domain has keys).
  const reportFrom = config.postmaster ?? `postmaster@${config.hostname}`;
  let outboundRef: Outbound | null = null;
  const tlsReport = new TlsReport({
    resolveTxt,
    log,
    intervalMs: c.tlsReportInterval,
    submitter: config.hostname,
    from: reportFrom,
    async send(message, from, to) {
      if (!outboundRef) return;
      const blob = await store.stageBlob(message, { maxBytes: message.length });
      try {
        await outboundRef.send({ blob, mailFrom: from, recipients: to.map((address) => ({ address })), accountId: null, origin: 'report' });
      } finally {
        blob.release();
      }
    },
  });
  // The SMTP client sessions run on worker threads (src/queue/delivery-pool.ts); 0 = on the loop.
  const delivery = new DeliveryPool(c.deliveryThreads === null ? {} : { threads: c.deliveryThreads });
  let mxPort = -1;
  const ownName = config.hostname.toLowerCase();
  const own = ownAddresses(config.host);
  const engine = new QueueEngine({
    queue: store.queue,
    readBlob: (id, start, end) => store.readBlob(id, start, end),
    streamBlob: (id, start) => store.streamBlob(id, start),
    deliverDsn: (dsn, to) => outbound.deliverDsn(dsn, to),
    log,
    hostname: config.hostname,
    policy,
    concurrency: c.concurrency,
    perDomain: c.perDomainConcurrency,
    timeoutMs: c.timeout,
    transport: {
      hostname: config.hostname,
      port: c.port,
      connectTimeoutMs: Math.min(60_000, c.timeout / 2),
      replyTimeoutMs: Math.min(5 * 60_000, c.timeout),
      ...(mtaSts ? { mtaSts } : {}),
      tlsReport,
      tlsCa,
    },
    relay,
    resolver,
    isSelf: (h) => h.toLowerCase() === ownName || (c.port === mxPort && own.has(h.toLowerCase())),
    delivery,
    statsIntervalMs: c.statsInterval,
    graceMs: config.limits.shutdownGrace,
  });
  outbound.attach(engine);
  outboundRef = outbound;
  return {
    port: outbound,
    engine,
    start(p) {
      mxPort = p;
      engine.start();
      tlsReport.start();
      log.info('queue.started', { owner: engine.owner, relay: relay ? `${relay.host}:${relay.port}` : undefined, port: relay ? undefined : c.port, concurrency: c.concurrency });
    },
    async stop() {
      tlsReport.stop();
      await engine.stop();
      await delivery.close();
      await signer.close();
    },
  };
}

/** The addresses our listeners answer on: the bind address, or every interface's for 0.0.0.0 / ::. */
function ownAddresses(host: string): Set<string> {
  const out = new Set<string>();
  if (host !== '0.0.0.0' && host !== '::' && host !== '') {
    out.add(host.toLowerCase());
    return out;
  }
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address.toLowerCase());
  out.add('127.0.0.1');
  out.add('::1');
  return out;
}
