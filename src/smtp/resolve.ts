// Recipient resolution at RCPT time (issue #3): local accounts, aliases (recursive, loop-safe),
// plus-addressing and catch-all, against the Store interface only.
//
// Postmaster (RFC 5321 §4.5.1: "postmaster" at every domain we serve and the domainless
// `RCPT TO:<Postmaster>` MUST be accepted). When postmaster@<domain> is no alias or account (and
// no catch-all takes it), and for the domainless form, it goes to the first of:
//   1. postmaster@<d> that resolves, for d = the hostname, its parent domains, then every hosted
//      domain by name (the primary domain first when the hostname is in it);
//   2. the `postmaster` address of the configuration (an account or alias of ours);
//   3. the oldest account on the server (the administrator usually creates theirs first),
//      logged as smtp.postmaster-fallback so the administrator can set an alias instead.
// Only if the server has no account at all is postmaster refused (550). The choice is cached 5 s.

import type { Account, Store } from '../store/store.ts';
import { addressKey, isPostmaster, splitAddress, splitPlus } from '../protocol/smtp/address.ts';

/** One local mailbox a recipient resolves to. */
export interface LocalTarget {
  account: Account;
  mailboxId: number;
  /** Mailbox name, for logs. */
  mailbox: string;
}

export type Resolution =
  /** The domain is not one of ours. */
  | { kind: 'not-hosted'; domain: string }
  /** Our domain, but no account, alias or catch-all takes this address. */
  | { kind: 'unknown' }
  /** Local targets (deduplicated by mailbox) plus external addresses an alias forwards to. */
  | { kind: 'local'; targets: LocalTarget[]; external: string[] };

/** Aliases nested deeper than this are treated as a configuration loop. */
const MAX_DEPTH = 16;
/** No single recipient may fan out to more mailboxes than this. */
const MAX_TARGETS = 1000;

export interface ResolverOptions {
  /** The server's hostname (config.hostname): its domain is the primary one for postmaster. */
  hostname?: string;
  /** Where postmaster goes when no postmaster@ alias or account exists (config.postmaster). */
  postmaster?: string | null;
  /** Told when postmaster mail falls back to the oldest account. */
  onFallback?: (address: string) => void;
}

export class Resolver {
  readonly #store: Store;
  readonly #opts: ResolverOptions;
  /** Domain lookups are frequent and domains rarely change; cache them briefly. */
  readonly #domainCache = new Map<string, { hosted: boolean; at: number }>();
  #postmasterCache: { res: Resolution; address: string; at: number } | null = null;

  constructor(store: Store, opts: ResolverOptions = {}) {
    this.#store = store;
    this.#opts = opts;
  }

  async isHosted(domain: string): Promise<boolean> {
    const d = domain.toLowerCase();
    const c = this.#domainCache.get(d);
    const t = Date.now();
    if (c && t - c.at < 5000) return c.hosted;
    const hosted = (await this.#store.getDomain(d)) !== null;
    if (this.#domainCache.size > 10000) this.#domainCache.clear();
    this.#domainCache.set(d, { hosted, at: t });
    return hosted;
  }

  /**
   * Resolves one envelope recipient. Order: the exact address (alias first, so that an alias may
   * list its own address to mean the account of that address; then an account), then
   * `user+tag` → `user` (into mailbox `tag` when the account has one), then the `@domain`
   * catch-all alias.
   */
  async resolve(address: string): Promise<Resolution> {
    if (isPostmaster(address)) return (await this.postmaster()).res; // RFC 5321 §4.5.1
    const res = await this.#resolve(address);
    if (res.kind === 'unknown') {
      const parts = splitAddress(address);
      if (parts && isPostmaster(parts.local)) return (await this.postmaster()).res;
    }
    return res;
  }

  /**
   * Where postmaster mail goes (see the top of this file), and the address it resolved as
   * (for logs and replies). `unknown` only when the server has no account.
   */
  async postmaster(): Promise<{ res: Resolution; address: string }> {
    const c = this.#postmasterCache;
    if (c && Date.now() - c.at < 5000) return c;
    const found = await this.#findPostmaster();
    this.#postmasterCache = { ...found, at: Date.now() };
    return found;
  }

  async #findPostmaster(): Promise<{ res: Resolution; address: string }> {
    const candidates: string[] = [];
    const labels = (this.#opts.hostname ?? '').toLowerCase().split('.').filter((l) => l !== '');
    for (let i = 0; i + 1 < labels.length; i++) candidates.push(labels.slice(i).join('.'));
    for (const d of await this.#store.listDomains()) candidates.push(d.name);
    const tried = new Set<string>();
    for (const d of candidates) {
      if (tried.has(d)) continue;
      tried.add(d);
      if (!(await this.isHosted(d))) continue;
      const res = await this.#resolve(`postmaster@${d}`);
      if (res.kind === 'local') return { res, address: `postmaster@${d}` };
    }
    const configured = this.#opts.postmaster;
    if (configured) {
      const res = await this.#resolve(configured);
      if (res.kind === 'local') return { res, address: addressKey(configured) };
    }
    let oldest: Account | null = null;
    for (const a of await this.#store.listAccounts()) if (!oldest || a.id < oldest.id) oldest = a;
    if (oldest) {
      this.#opts.onFallback?.(oldest.address);
      const acc = new Accumulator();
      await this.#addAccount(oldest, null, acc);
      return { res: acc.result(), address: oldest.address };
    }
    return { res: { kind: 'unknown' }, address: 'postmaster' };
  }

  async #resolve(address: string): Promise<Resolution> {
    const parts = splitAddress(address);
    if (!parts) return { kind: 'unknown' };
    if (!(await this.isHosted(parts.domain))) return { kind: 'not-hosted', domain: parts.domain };

    const acc = new Accumulator();
    const exact = `${parts.local}@${parts.domain}`;
    if (await this.#expand(exact, null, acc, new Set(), 0)) return acc.result();

    const plus = splitPlus(parts.local);
    if (plus) {
      const base = `${plus.base}@${parts.domain}`;
      if (await this.#expand(base, plus.tag, acc, new Set(), 0)) return acc.result();
    }

    const catchAll = await this.#store.getAlias(`@${parts.domain}`);
    if (catchAll) {
      const seen = new Set<string>([addressKey(`@${parts.domain}`)]);
      for (const t of catchAll.targets) await this.#expandTarget(t, acc, seen, 1);
      if (!acc.empty()) return acc.result();
    }
    return { kind: 'unknown' };
  }

  /**
   * Expands an address that might be an alias or an account. Returns false if it is neither.
   * `tag` selects the mailbox for a direct account (plus-addressing).
   */
  async #expand(address: string, tag: string | null, acc: Accumulator, seen: Set<string>, depth: number): Promise<boolean> {
    const key = addressKey(address);
    const alias = await this.#store.getAlias(key);
    if (alias) {
      seen.add(key);
      for (const t of alias.targets) {
        if (addressKey(t) === key) {
          // The alias lists itself: the account of that address, if there is one.
          const account = await this.#store.getAccount(key);
          if (account) await this.#addAccount(account, tag, acc);
          continue;
        }
        await this.#expandTarget(t, acc, seen, depth + 1);
      }
      return true;
    }
    const account = await this.#store.getAccount(key);
    if (!account) return false;
    await this.#addAccount(account, tag, acc);
    return true;
  }

  /** An alias target: external, or local (with plus-addressing), skipping anything already seen. */
  async #expandTarget(target: string, acc: Accumulator, seen: Set<string>, depth: number): Promise<void> {
    const key = addressKey(target);
    if (seen.has(key) || depth > MAX_DEPTH || acc.size() >= MAX_TARGETS) return;
    seen.add(key);
    const parts = splitAddress(key);
    if (!parts) return;
    if (!(await this.isHosted(parts.domain))) {
      acc.external.add(key);
      return;
    }
    if (await this.#expand(key, null, acc, seen, depth)) return;
    const plus = splitPlus(parts.local);
    if (plus) {
      const base = `${plus.base}@${parts.domain}`;
      if (!seen.has(base)) {
        seen.add(base);
        await this.#expand(base, plus.tag, acc, seen, depth);
      }
    }
    // A target in one of our domains that names nobody is a dangling alias entry: nothing to deliver.
  }

  async #addAccount(account: Account, tag: string | null, acc: Accumulator): Promise<void> {
    let mailbox = tag ? await this.#findMailbox(account.id, tag) : null;
    if (!mailbox) mailbox = await this.#store.getMailbox(account.id, 'INBOX');
    if (!mailbox) return; // an account always has INBOX; a broken one gets nothing rather than a crash
    acc.add({ account, mailboxId: mailbox.id, mailbox: mailbox.name });
  }

  /** The mailbox named like the tag: exact name first, then ignoring case (local parts are typed by hand). */
  async #findMailbox(accountId: number, tag: string): Promise<{ id: number; name: string } | null> {
    const exact = await this.#store.getMailbox(accountId, tag);
    if (exact) return exact;
    const lower = tag.toLowerCase();
    const all = await this.#store.listMailboxes(accountId);
    return all.find((m) => m.name.toLowerCase() === lower) ?? null;
  }
}

class Accumulator {
  readonly #targets: LocalTarget[] = [];
  readonly #accounts = new Set<number>();
  readonly external = new Set<string>();

  add(t: LocalTarget): void {
    // One copy per account: an account reached twice (directly and through an alias) gets one message.
    if (this.#accounts.has(t.account.id)) return;
    this.#accounts.add(t.account.id);
    this.#targets.push(t);
  }

  size(): number {
    return this.#targets.length + this.external.size;
  }

  empty(): boolean {
    return this.size() === 0;
  }

  result(): Resolution {
    // An alias whose every target dangles delivers nowhere: the same as an unknown address.
    if (this.empty()) return { kind: 'unknown' };
    return { kind: 'local', targets: [...this.#targets], external: [...this.external] };
  }
}
