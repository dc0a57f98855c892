// DKIM signing of outgoing mail (RFC 6376) with the domain's active keys from store.dkimKeys,
// through mailauth's signer: every active key signs (RFC 8463 §5 recommends an ed25519 signature
// next to an RSA one while verifiers that only know RSA remain, so `pillarbox dkim generate` makes
// both), relaxed/relaxed canonicalization (RFC 6376 §3.4: survives the whitespace and folding
// changes relays make), mailauth's default list of signed header fields.
//
// Also here: key generation for `pillarbox dkim generate`, the public-key TXT value of a key
// (`pillarbox dns`), and the author (From:) domain of a message, found with a linear header scan.

import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { dkimSign } from 'mailauth';
import type { DkimAlgorithm, DkimKey, DkimKeyStore } from '../store/dkim-keys.ts';
import { headerFields } from './headers.ts';

/** RSA keys we generate: 2048 bits (RFC 8301 §3.2: at least 1024, SHOULD be 2048; 2048 still fits a TXT record). */
export const RSA_BITS = 2048;

export interface SignResult {
  /** DKIM-Signature fields, each ending in CRLF, to put in front of the message ('' when none). */
  headers: string;
  /** Selectors that signed. */
  selectors: string[];
  /** Why a key did not sign (one line each). */
  errors: string[];
}

/** Signs `message` with the given keys (one pass over the body for all of them). */
export async function signWithKeys(message: Buffer, domain: string, keys: DkimKey[], now = Date.now()): Promise<SignResult> {
  if (keys.length === 0) return { headers: '', selectors: [], errors: [] };
  const signatureData = keys.map((k) => ({
    signingDomain: domain.toLowerCase(),
    selector: k.selector,
    privateKey: k.privateKeyPem,
    algorithm: k.algorithm,
    canonicalization: 'relaxed/relaxed',
  }));
  const r = await dkimSign(message, {
    signingDomain: domain.toLowerCase(),
    selector: keys[0]!.selector,
    privateKey: keys[0]!.privateKeyPem,
    signTime: new Date(now),
    signatureData,
    strict: true,
  });
  const failed = new Set(r.errors.map((e) => e.selector));
  return {
    headers: r.signatures,
    selectors: keys.map((k) => k.selector).filter((s) => !failed.has(s)),
    errors: r.errors.map((e) => `${e.selector ?? '?'}: ${e.err?.message ?? String(e.err)}`),
  };
}

/** Signs for `domain` with every active key it has in the store; no keys → no headers. */
export async function signMessage(keys: DkimKeyStore, message: Buffer, domain: string, now = Date.now()): Promise<SignResult> {
  return signWithKeys(message, domain, await keys.active(domain), now);
}

/**
 * The domain of the (first) address in the message's From: field (RFC 5322 §3.6.2), lower-cased,
 * or null when there is none. Display names, comments and groups are skipped; the address is
 * the last `@` inside `<...>` if there are angle brackets, else in the first address token.
 */
export function authorDomain(message: Buffer): string | null {
  const from = headerFields(message).find((f) => f.name === 'from');
  if (!from) return null;
  return domainOfAddressList(message.subarray(from.valueStart, from.end).toString('latin1'));
}

function domainOfAddressList(v: string): string | null {
  // one pass: drop comments and quoted strings (their '@' and '<' don't count)
  let plain = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '(') depth = 1;
    else plain += c;
  }
  const lt = plain.indexOf('<');
  const gt = lt >= 0 ? plain.indexOf('>', lt) : -1;
  let addr = lt >= 0 ? plain.slice(lt + 1, gt >= 0 ? gt : undefined) : plain;
  const comma = addr.indexOf(',');
  if (lt < 0 && comma >= 0) addr = addr.slice(0, comma);
  const colon = addr.indexOf(':'); // group "name: a@b;" (RFC 5322 §3.4)
  if (lt < 0 && colon >= 0) addr = addr.slice(colon + 1);
  const at = addr.lastIndexOf('@');
  if (at < 0) return null;
  let d = '';
  for (let i = at + 1; i < addr.length; i++) {
    const c = addr[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '>' || c === ';' || c === ',') {
      if (d) break;
      continue;
    }
    d += c;
  }
  d = d.toLowerCase();
  while (d.endsWith('.')) d = d.slice(0, -1);
  return d || null;
}

// ---- keys

export function generateDkimKey(algorithm: DkimAlgorithm): string {
  const pem = algorithm === 'rsa-sha256'
    ? generateKeyPairSync('rsa', { modulusLength: RSA_BITS }).privateKey
    : generateKeyPairSync('ed25519').privateKey;
  return pem.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * The TXT record value publishing the key (RFC 6376 §3.6.1): `v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo,
 * base64>`; for ed25519 (RFC 8463 §4.2) p= is the raw 32-byte public key in base64.
 */
export function publicKeyRecord(k: Pick<DkimKey, 'algorithm' | 'privateKeyPem'>): string {
  const pub = createPublicKey(createPrivateKey(k.privateKeyPem));
  if (k.algorithm === 'ed25519-sha256') {
    const spki = pub.export({ type: 'spki', format: 'der' });
    return `v=DKIM1; k=ed25519; p=${spki.subarray(spki.length - 32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${pub.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** Default selector for a key made on `date`: pb<yyyymmdd>r (RSA) or pb<yyyymmdd>e (ed25519). */
export function defaultSelector(algorithm: DkimAlgorithm, date: Date): string {
  const ymd = date.toISOString().slice(0, 10).replaceAll('-', '');
  return `pb${ymd}${algorithm === 'rsa-sha256' ? 'r' : 'e'}`;
}
