// Shared pieces of the admin commands: errors, store opening, validation and output.

import { existsSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { loadConfig, ConfigError } from '../config/load.ts';
import type { Config } from '../config/config.ts';
import { openStore, isPostgresUrl } from '../store/open.ts';
import { StoreError, type Store } from '../store/store.ts';

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface CommandContext {
  name: string;
  flags: Record<string, string | boolean | undefined>;
  args: string[];
}

/** The server's config as `pillarbox serve` would load it; a config error becomes one CliError line. */
export function loadCliConfig(ctx: CommandContext, exitCode = 1): Config {
  try {
    return loadConfig(ctx.flags);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, exitCode);
    throw err;
  }
}

/** Opens the store the server uses (same --data / --database / config resolution). */
export async function openAdminStore(ctx: CommandContext): Promise<Store> {
  const config = loadCliConfig(ctx);
  if (!isPostgresUrl(config.database) && !existsSync(config.dataDir)) {
    throw new CliError(`data folder ${config.dataDir} does not exist; start the server once (pillarbox serve) or pass --data DIR`);
  }
  return openStore(config.database, config.dataDir, { mailboxLimits: config.limits });
}

/** Runs fn with an open store and maps store errors to one clear line. */
export async function withStore<T>(ctx: CommandContext, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openAdminStore(ctx);
  try {
    return await fn(store);
  } catch (err) {
    if (err instanceof StoreError) throw new CliError(err.message);
    throw err;
  } finally {
    await store.close();
  }
}

// RFC 5321 §4.1.2 Dot-string local parts (atext per RFC 5322 §3.2.3); no quoted local parts here.
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function validDomain(d: string): boolean {
  return DOMAIN.test(d);
}

export function parseDomain(d: string | undefined): string {
  if (!d) throw new CliError('missing DOMAIN');
  if (!validDomain(d)) throw new CliError(`"${d}" is not a valid domain name`);
  return d.toLowerCase();
}

/** A mailbox address `local@domain` (lower-cased), or null when malformed. */
export function normalizeAddress(a: string): string | null {
  const at = a.lastIndexOf('@');
  if (at <= 0 || at === a.length - 1) return null;
  const local = a.slice(0, at);
  const domain = a.slice(at + 1);
  if (local.length > 64 || !LOCAL.test(local) || !validDomain(domain)) return null;
  return `${local}@${domain}`.toLowerCase();
}

export function parseAddress(a: string | undefined, what = 'ADDRESS'): string {
  if (!a) throw new CliError(`missing ${what}`);
  const n = normalizeAddress(a);
  if (!n) throw new CliError(`"${a}" is not a valid email address (expected user@domain)`);
  return n;
}

export function output(ctx: CommandContext, json: unknown, text: string): void {
  if (ctx.flags.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else if (text) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** Longest password line accepted on stdin or at a prompt, in bytes. */
const MAX_SECRET_BYTES = 64 * 1024;

/** The first line of stdin (a pipe or file), without its line end; stops reading there. */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    const b = c as Buffer;
    const nl = b.indexOf(0x0a);
    chunks.push(nl >= 0 ? b.subarray(0, nl) : b);
    size += b.length;
    if (nl >= 0) break;
    if (size > MAX_SECRET_BYTES) throw new CliError('password on stdin is too long');
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
}

/**
 * Asks on the terminal, without echo, one line per prompt (prompts on stderr): stdin in raw mode,
 * Enter ends a line, Backspace deletes, Ctrl-U clears, Ctrl-C cancels (exit 130), Ctrl-D cancels an
 * empty line. The terminal mode is restored whatever happens.
 */
export function promptHidden(prompts: string[]): Promise<string[]> {
  const stdin = process.stdin;
  const answers: string[] = [];
  const decoder = new StringDecoder('utf8');
  let line = '';
  const restore = () => {
    if (stdin.isTTY) stdin.setRawMode(false);
  };
  return new Promise<string[]>((resolve, reject) => {
    const finish = (err?: CliError) => {
      stdin.off('data', onData);
      restore();
      process.off('exit', restore);
      stdin.pause();
      if (err) {
        process.stderr.write('\n');
        reject(err);
      } else resolve(answers);
    };
    const next = (): boolean => {
      answers.push(line);
      line = '';
      process.stderr.write('\n');
      if (answers.length === prompts.length) return true;
      process.stderr.write(prompts[answers.length]!);
      return false;
    };
    const onData = (chunk: Buffer) => {
      const text = decoder.write(chunk);
      for (let i = 0; i < text.length; i++) {
        const ch = text[i]!;
        if (ch === '\r' || ch === '\n') {
          if (next()) return finish();
        } else if (ch === '\u0003') return finish(new CliError('cancelled', 130));
        else if (ch === '\u0004') {
          if (line === '') return finish(new CliError('cancelled: no password given'));
          if (next()) return finish();
        } else if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch === '\u0015') line = '';
        else if (ch === '\u001b') break; // an escape sequence (arrow keys…): the rest of this chunk
        else if (ch >= ' ') {
          line += ch;
          if (line.length > MAX_SECRET_BYTES) return finish(new CliError('the password is too long'));
        }
      }
    };
    stdin.setRawMode(true);
    process.on('exit', restore);
    // The prompt comes after raw mode is on: nothing typed after it is echoed.
    process.stderr.write(prompts[0]!);
    stdin.on('data', onData);
    stdin.resume();
  });
}
