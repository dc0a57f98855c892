// DKIM signing keys per hosted domain (RFC 6376), shared by the server (which signs outgoing mail
// with every active key of the From: domain, src/mailauth/dkim.ts) and the admin CLI
// (`pillarbox dkim generate|list|retire`, `pillarbox dns`).
//
// Rotation (RFC 6376 §3.1 selectors, M3AAWG key-rotation practice): generate a key under a new
// selector and publish its TXT record; once the record is visible, retire the old selector. A
// retired key no longer signs but stays listed (its TXT record should stay published a few days so
// messages signed just before can still be verified), until it is removed.

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKey {
  /** Lower-cased domain name (the d= of the signature). */
  domain: string;
  /** Lower-cased selector (s=): the TXT record is at `<selector>._domainkey.<domain>`. */
  selector: string;
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM. Never printed by the CLI. */
  privateKeyPem: string;
  /** ms since the epoch. */
  createdAt: number;
  active: boolean;
  /** When it was retired (ms since the epoch), null while active. */
  retiredAt: number | null;
}

export interface DkimKeyStore {
  /** Adds an active key. StoreError 'exists' when the domain already has that selector. */
  add(k: { domain: string; selector: string; algorithm: DkimAlgorithm; privateKeyPem: string; now: number }): Promise<DkimKey>;
  /** Every key (of one domain), active and retired, ordered by domain, creation, selector. */
  list(domain?: string): Promise<DkimKey[]>;
  get(domain: string, selector: string): Promise<DkimKey | null>;
  /** The keys that sign for the domain, ordered by creation (oldest first). */
  active(domain: string): Promise<DkimKey[]>;
  /** Stops signing with the key (idempotent). Returns the key as stored, null if absent. */
  retire(domain: string, selector: string, now: number): Promise<DkimKey | null>;
  /** Deletes the key; false if absent. */
  remove(domain: string, selector: string): Promise<boolean>;
}

/** A dkim_keys row as either backend returns it (SQLite: 0/1 and numbers; PostgreSQL: booleans and bigint strings). */
export function dkimKeyFromRow(r: Record<string, any>): DkimKey {
  return {
    domain: r.domain,
    selector: r.selector,
    algorithm: r.algorithm as DkimAlgorithm,
    privateKeyPem: r.private_key,
    createdAt: Number(r.created_at),
    active: r.active === 1 || r.active === true,
    retiredAt: r.retired_at === null || r.retired_at === undefined ? null : Number(r.retired_at),
  };
}

/** RFC 6376 §3.1: a selector is dot-separated sub-domain labels; we accept letters, digits, '-' per label. */
export function validSelector(s: string): boolean {
  if (s.length === 0 || s.length > 63) return false;
  for (const label of s.split('.')) {
    if (label.length === 0 || label.startsWith('-') || label.endsWith('-')) return false;
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || (c >= 0x41 && c <= 0x5a);
      if (!ok) return false;
    }
  }
  return true;
}
