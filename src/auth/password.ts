// Password hashes: scrypt (Node's crypto, no native addon), stored as a PHC-style string
// `$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>`. Verification compares in constant time.

import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';

const LN = 15; // N = 2^15: ~50–100 ms on this machine class, 32 MiB
const R = 8;
const P = 1;
const KEYLEN = 32;

function scrypt(password: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** ln;
  return new Promise((res, rej) =>
    scryptCb(password.normalize('NFC'), salt, KEYLEN, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? rej(err) : res(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, LN, R, P);
  return `$scrypt$ln=${LN},r=${R},p=${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const key = await scrypt(password, Buffer.from(m[4]!, 'base64'), Number(m[1]), Number(m[2]), Number(m[3]));
  return key.length === expected.length && timingSafeEqual(key, expected);
}
