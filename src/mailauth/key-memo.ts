// Parsed DKIM private keys kept for the signing workers (dkim-worker.ts), installed there only.
//
// mailauth's signer takes a private key as PEM (or DER) bytes only, and turns it into a KeyObject
// for every message (lib/tools.js getPrivateKey → crypto.createPrivateKey; a KeyObject is refused).
// A new RSA key object pays its set-up again with its first signature: measured on the benchmark
// machine, one rsa-2048 signature with a fresh key 0.94–1.1 ms, with a kept one 0.35–0.42 ms, and
// mailauth's signing of a 10 KB message with our two keys (rsa-2048 + ed25519) 2.2 ms of CPU
// against 1.25 ms with the keys kept. So in a worker that does nothing but sign, createPrivateKey
// answers a PEM it has parsed before with the same KeyObject (immutable; safe to share). Any other
// call goes through unchanged, and if mailauth ever loads keys differently the memo simply stops
// being hit: signatures stay mailauth's, only their cost changes.

import crypto, { type KeyObject } from 'node:crypto';

/** Distinct PEMs kept; past this the memo starts over (a server has a few keys per domain). */
const MAX_KEYS = 256;

let installed = false;
let hits = 0;

/** Makes this thread's crypto.createPrivateKey reuse the KeyObject of a PEM it parsed before. */
export function memoisePrivateKeys(): void {
  if (installed) return;
  installed = true;
  const create = crypto.createPrivateKey;
  const memo = new Map<string, KeyObject>();
  const pemOf = (k: unknown): string | null => {
    // mailauth: createPrivateKey({ key: <Buffer of the PEM>, format: 'pem' }); also a plain PEM string.
    if (typeof k === 'string') return k;
    if (k === null || typeof k !== 'object' || Buffer.isBuffer(k)) return null;
    const o = k as { key?: unknown; format?: unknown; passphrase?: unknown; type?: unknown; encoding?: unknown };
    if (o.format !== 'pem' || o.passphrase !== undefined || o.type !== undefined || o.encoding !== undefined) return null;
    if (typeof o.key === 'string') return o.key;
    return Buffer.isBuffer(o.key) ? o.key.toString('latin1') : null;
  };
  crypto.createPrivateKey = function createPrivateKeyMemo(key: Parameters<typeof create>[0]): KeyObject {
    const pem = pemOf(key);
    if (pem === null || !pem.startsWith('-----BEGIN')) return create(key);
    const kept = memo.get(pem);
    if (kept) {
      hits++;
      return kept;
    }
    const made = create(key);
    if (memo.size >= MAX_KEYS) memo.clear();
    memo.set(pem, made);
    return made;
  } as typeof create;
}

/** How often a kept key was handed out (tests). */
export function memoHits(): number {
  return hits;
}
