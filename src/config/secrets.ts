// Secrets the server generates once and keeps in the data folder (mode 0600), e.g. the SRS key
// (DATA/srs-secret): a restart must keep the same one, or bounces to addresses rewritten before it
// could no longer be routed back.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The secret in DATA/<name>, created (32 random bytes, base64url) when the file does not exist. */
export function loadOrCreateSecret(dataDir: string, name: string): string {
  const file = join(dataDir, name);
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length < 16) throw new Error(`${file}: secret shorter than 16 characters; delete the file to generate a new one`);
    return s;
  }
  const s = randomBytes(32).toString('base64url');
  writeFileSync(file + '.tmp', s + '\n', { mode: 0o600 });
  renameSync(file + '.tmp', file);
  return s;
}
