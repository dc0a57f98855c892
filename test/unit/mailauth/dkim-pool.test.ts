// The DKIM signer pool (src/mailauth/dkim-pool.ts): signatures made on the worker threads verify
// (mailauth's verifier, keys published through a resolver function), concurrent jobs each get their
// own message's signature, and after close() (no workers) it still signs, on the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dkimVerify } from 'mailauth';
import { DkimSignerPool } from '../../../src/mailauth/dkim-pool.ts';
import { generateDkimKey, publicKeyRecord } from '../../../src/mailauth/dkim.ts';
import type { DkimKey } from '../../../src/store/dkim-keys.ts';

const key = (selector: string, algorithm: DkimKey['algorithm']): DkimKey => ({
  domain: 'example.org',
  selector,
  algorithm,
  privateKeyPem: generateDkimKey(algorithm),
  createdAt: 0,
  active: true,
  retiredAt: null,
});
const keys = [key('r1', 'rsa-sha256'), key('e1', 'ed25519-sha256')];
const txt = new Map(keys.map((k) => [`${k.selector}._domainkey.example.org`, publicKeyRecord(k)]));
const resolver = async (name: string, type: string) => {
  const v = type === 'TXT' ? txt.get(name) : undefined;
  if (!v) throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' });
  return [[v]];
};

const message = (i: number) =>
  Buffer.from(`From: Ann <ann@example.org>\r\nTo: x@remote.example\r\nSubject: message ${i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody ${i}\r\n`);

async function verified(headers: string, m: Buffer): Promise<string[]> {
  const r: any = await dkimVerify(Buffer.concat([Buffer.from(headers), m]), { resolver });
  return r.results.map((x: any) => `${x.signingDomain}/${x.selector}:${x.status.result}`).sort();
}

test('signatures from the worker threads verify, one per active key, each for its own message', async () => {
  const pool = new DkimSignerPool({ threads: 2, onWorkerError: (e) => assert.fail(`worker failed: ${e.message}`) });
  try {
    const msgs = Array.from({ length: 12 }, (_, i) => message(i));
    const results = await Promise.all(msgs.map((m) => pool.sign(m, 'example.org', keys)));
    for (let i = 0; i < msgs.length; i++) {
      assert.deepEqual(results[i]!.errors, []);
      assert.deepEqual(results[i]!.selectors, ['r1', 'e1']);
      assert.deepEqual(await verified(results[i]!.headers, msgs[i]!), ['example.org/e1:pass', 'example.org/r1:pass']);
    }
    // Someone else's signature does not verify for this message.
    // (mailauth: body hash mismatch → neutral, RFC 6376 §6.3.)
    assert.ok((await verified(results[0]!.headers, msgs[1]!)).every((r) => !r.endsWith(':pass')));
  } finally {
    await pool.close();
  }
});

test('after close() it still signs (on the event loop); no keys → no headers', async () => {
  const pool = new DkimSignerPool({ threads: 1 });
  await pool.close();
  const m = message(99);
  const r = await pool.sign(m, 'example.org', keys);
  assert.deepEqual(await verified(r.headers, m), ['example.org/e1:pass', 'example.org/r1:pass']);
  assert.deepEqual(await pool.sign(m, 'example.org', []), { headers: '', selectors: [], errors: [] });
});
