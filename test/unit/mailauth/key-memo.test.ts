// Kept DKIM keys (src/mailauth/key-memo.ts, installed in the signing workers): mailauth's signer,
// given the same PEM for every message, gets one KeyObject per key; its signatures still verify;
// other kinds of createPrivateKey calls are untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { dkimVerify } from 'mailauth';
import { generateDkimKey, publicKeyRecord, signWithKeys } from '../../../src/mailauth/dkim.ts';
import { memoHits, memoisePrivateKeys } from '../../../src/mailauth/key-memo.ts';
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
const message = (i: number) => Buffer.from(`From: Ann <ann@example.org>\r\nTo: x@remote.example\r\nSubject: m ${i}\r\n\r\nbody ${i}\r\n`);

test('with kept keys, mailauth signs every message with the same key objects, and the signatures verify', async () => {
  memoisePrivateKeys();
  const before = memoHits();
  for (let i = 0; i < 5; i++) {
    const m = message(i);
    const r = await signWithKeys(m, 'example.org', keys);
    assert.deepEqual(r.errors, []);
    const v: any = await dkimVerify(Buffer.concat([Buffer.from(r.headers), m]), { resolver });
    assert.deepEqual(v.results.map((x: any) => `${x.selector}:${x.status.result}`).sort(), ['e1:pass', 'r1:pass']);
  }
  // The first message parsed both keys; the four after it got them back.
  assert.equal(memoHits() - before, 8);
});

test('the same PEM gives the same KeyObject, another PEM another one; DER and passphrase calls are not kept', () => {
  memoisePrivateKeys();
  const pem = keys[0]!.privateKeyPem;
  const a = crypto.createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  assert.equal(crypto.createPrivateKey(pem), a);
  assert.notEqual(crypto.createPrivateKey(keys[1]!.privateKeyPem), a);
  const der = a.export({ type: 'pkcs8', format: 'der' });
  const d1 = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  assert.notEqual(crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }), d1);
  assert.ok(d1.equals(a));
  // A bad PEM still throws, and is not kept.
  assert.throws(() => crypto.createPrivateKey('-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n'));
});
