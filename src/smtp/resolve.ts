// Recipient resolution at RCPT time (issue #3): local accounts, aliases (recursive, loop-safe),
// plus-addressing and catch-all, against the Store interface only.

import type { Account, Store } from '../store/store.ts';
import { addressKey, splitAddress, splitPlus } from '../protocol/smtp/address.ts';

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

export class Resolver {
  readonly #store: Store;
  /** Domain lookups are frequent and domains rarely change; cache them briefly. */
  readonly #domainCache = new Map<string, { hosted: boolean; at: number }>();

  constructor(store: Store) {
    this.#store = store;
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
