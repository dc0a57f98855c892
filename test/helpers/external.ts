// External programs the end-to-end tests drive (swaks, fetchmail, mbsync, python3 …): one rule for
// all of them. Present: the test runs. Absent: the test is skipped with a reason that names the
// program and the Debian package to install — except under CI=true, where CI installs them all
// (.ci/run) and a missing one fails the test with the same reason rather than hiding it.
//
//   test('…', needs('swaks'), async () => { … })
//   test('…', needs('python3', 'fetchmail'), async () => { … })
//   before(async () => { if (!installed('mbsync')) return; … })

import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** The Debian package that brings each program (for the skip reason). */
const PACKAGES: Record<string, string> = {
  swaks: 'swaks',
  fetchmail: 'fetchmail',
  getmail: 'getmail6',
  mbsync: 'isync',
  offlineimap: 'offlineimap3',
  neomutt: 'neomutt',
  tmux: 'tmux',
  curl: 'curl',
  python3: 'python3',
  openssl: 'openssl',
  tstclnt: 'libnss3-tools',
  certutil: 'libnss3-tools',
  haproxy: 'haproxy',
  '/usr/sbin/haproxy': 'haproxy',
  'stress-ng': 'stress-ng',
  runuser: 'util-linux',
  npm: 'npm',
  '/usr/sbin/postfix': 'postfix',
  '/usr/sbin/dovecot': 'dovecot-core',
  '/usr/lib/dovecot/imap': 'dovecot-imapd',
};

const cache = new Map<string, string | null>();

/** The full path of `name` on PATH (executable), or null. */
export function which(name: string): string | null {
  if (cache.has(name)) return cache.get(name)!;
  let found: string | null = null;
  if (name.includes('/')) {
    found = executable(name) ? name : null;
  } else {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (!dir || !isAbsolute(dir)) continue;
      const p = join(dir, name);
      if (executable(p)) {
        found = p;
        break;
      }
    }
  }
  cache.set(name, found);
  return found;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why a test that runs these programs can't run here, or undefined when all are installed. */
export function missingReason(...names: string[]): string | undefined {
  const missing = names.filter((n) => which(n) === null);
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((n) => PACKAGES[n] ?? n))];
  return `${missing.join(', ')} not installed (apt-get install ${pkgs.join(' ')})`;
}

/**
 * Test options for a test that runs these programs: `{ skip: reason }` when one is missing, `{}`
 * when all are there. Under CI=true a missing program throws (the test file fails, naming it).
 */
export function needs(...names: string[]): { skip?: string } {
  const reason = missingReason(...names);
  if (!reason) return {};
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return { skip: reason };
}

/** For hooks and helpers shared by tests that need the programs: whether they are all there (CI=true: throws if not). */
export function installed(...names: string[]): boolean {
  return needs(...names).skip === undefined;
}
