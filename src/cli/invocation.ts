// How the user can run the admin CLI against the server that is starting, as a shell command that
// works as printed from the folder the user started it in (the serve banner's "add your first
// domain" lines).
//
// - The folder the user stands in: npm runs scripts in the package root and passes the folder it
//   was started in as INIT_CWD (used when this package's script runs us in its root); otherwise
//   the process's cwd.
// - The program: `pillarbox` when that name on the user's PATH is this very installation
//   (npm install -g / npm link, or a symlink); else this checkout's bin/pillarbox, as a path from
//   that folder (./bin/pillarbox at the checkout's root) or absolute; else `node FILE` as started.
// - The flags: --data (and --config / --database) whenever the admin command's own default, run
//   from that folder, would not reach the same data folder and database.

import { accessSync, constants, existsSync, readFileSync, realpathSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Config } from '../config/config.ts';
import { isPostgresUrl, defaultDatabase } from '../store/open.ts';

export interface Invocation {
  /** The folder the user stands in. */
  cwd: string;
  /** The program, shell-quoted: `pillarbox`, `./bin/pillarbox`, `/opt/pillarbox/bin/pillarbox`, `'/usr/bin/node' /x/pillarbox.mjs`. */
  program: string;
  /** Flags that reach the same store, shell-quoted, each with a leading space (or ''). */
  storeFlags: string;
}

/** POSIX shell quoting: bare when safe, else single quotes. */
export function shQuote(s: string): string {
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function real(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/** The package root (package.json named pillarbox) above the running script, or null. */
export function packageRoot(script: string): string | null {
  let dir = dirname(real(script) ?? script);
  for (let i = 0; i < 4; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'pillarbox') return dir;
      } catch {
        // not ours
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/** `name` on PATH, as the user's shell would find it (npm's added node_modules/.bin folders left out). */
function onPath(name: string, env: NodeJS.ProcessEnv, underNpm: boolean): string | null {
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (!d || !isAbsolute(d)) continue;
    if (underNpm && (/[\\/]node_modules[\\/]\.bin$/.test(d) || /node-gyp-bin/.test(d))) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** A path as the user can type it from `cwd`: ./x below it, else absolute. */
export function pathFrom(cwd: string, p: string): string {
  const abs = resolve(p);
  const rel = relative(cwd, abs);
  if (rel === '') return '.';
  if (!rel.startsWith('..') && !isAbsolute(rel)) return `./${rel}`;
  return abs;
}

export function invocation(
  config: Config,
  flags: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv = process.env,
  script: string = process.argv[1] ?? '',
): Invocation {
  const root = packageRoot(script);
  // Started by an npm script of this package (npm start): npm runs it in the package root. An
  // INIT_CWD inherited from some other npm run (a test runner's) doesn't count.
  const underNpm = !!env.INIT_CWD && !!env.npm_lifecycle_event && env.npm_package_name === 'pillarbox' && root !== null && resolve(process.cwd()) === root;
  const cwd = underNpm ? resolve(env.INIT_CWD!) : process.cwd();
  const bin = root ? join(root, 'bin', 'pillarbox') : null;
  let program: string;
  const found = onPath('pillarbox', env, underNpm);
  const mine = new Set([real(script), bin && existsSync(bin) ? real(bin) : null].filter((x): x is string => x !== null));
  if (found && mine.has(real(found) ?? '')) program = 'pillarbox';
  else if (bin && existsSync(bin)) program = shQuote(pathFrom(cwd, bin));
  else program = `${shQuote(process.execPath)} ${shQuote(real(script) ?? script)}`;

  // What the admin command would pick by itself from `cwd` with no flags; inline environment
  // (PILLARBOX_DATA=x npm start) is not in the user's shell, so any PILLARBOX_* setting is spelled out.
  const out: string[] = [];
  if (env.PILLARBOX_DATA || config.dataDir !== resolve(cwd, 'data')) out.push('--data', pathFrom(cwd, config.dataDir));
  const configFile = typeof flags.config === 'string' ? flags.config : env.PILLARBOX_CONFIG;
  if (configFile) out.push('--config', pathFrom(cwd, resolve(configFile)));
  const explicitDb = typeof flags.database === 'string' || !!env.PILLARBOX_DATABASE;
  if (explicitDb && config.database !== defaultDatabase(config.dataDir)) {
    out.push('--database', isPostgresUrl(config.database) ? config.database : pathFrom(cwd, resolve(config.database)));
  }
  return { cwd, program, storeFlags: out.length ? ' ' + out.map(shQuote).join(' ') : '' };
}
