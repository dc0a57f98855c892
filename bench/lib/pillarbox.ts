// Pillarbox for the benchmarks: the real `pillarbox serve` (test/helpers/server.ts) on its default
// embedded store (SQLite + blob files) with its normal durability, plaintext auth allowed on
// loopback like the Dovecot peer, accounts provisioned through the admin CLI, and connection
// limits raised where a benchmark needs thousands of connections from 127.0.0.1.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { runCli, startServer, type TestServer } from '../../test/helpers/server.ts';
import { eatmydata, type Account } from './peers.ts';
import { BENCH_DIR, descendants, killTree, log, memoryOf, onCleanup, pool, ROOT, type Mem } from './util.ts';

export interface PillarboxOptions {
  accounts: Account[];
  /** Per-account simultaneous IMAP logins (`user set … imap.maxConnections`; default: leave 5). */
  imapMaxConnections?: number;
  /** config.json limits (e.g. maxConnectionsPerIp). */
  limits?: Record<string, number>;
  /** More config.json settings (e.g. outbound, dnsServers). */
  config?: Record<string, unknown>;
  /** Extra `serve` flags (e.g. --hostname, --outbound-port). */
  args?: string[];
  /** `--workers` (default 1, as the test helper; 'auto' = a worker process per core). */
  workers?: number | 'auto';
  /** Runs before the server starts, with the data folder provisioned (e.g. a store fill). */
  beforeStart?: (dataDir: string) => Promise<void>;
  /**
   * For development only: use (and keep) this data folder; provisioning and beforeStart run only
   * the first time (a `.filled` marker records that they completed).
   */
  reuseDir?: string;
}

export interface Pillarbox {
  server: TestServer;
  dataDir: string;
  ports: TestServer['ports'];
  pid: number;
  /** Memory of the server process (and any child it has). */
  memory(): Mem;
  stop(): Promise<void>;
}

/** Limits that let one loopback load generator open many connections. */
export function benchLimits(connections: number): Record<string, number> {
  return { maxConnectionsPerIp: connections + 100, maxConnections: Math.max(20000, connections + 100) };
}

/**
 * Provisions domains and accounts through the admin CLI. Many accounts: the CLI's own main() runs
 * every command in one child process (same code as `./bin/pillarbox domain add …` / `user add …` /
 * `user set …`, without a process start per command). BENCH_CLI_PROCESSES=1 spawns
 * `pillarbox` once per command instead.
 */
export async function provision(dataDir: string, accounts: Account[], imapMaxConnections?: number): Promise<void> {
  const t = performance.now();
  const domains = [...new Set(accounts.map((a) => a.address.split('@')[1]!))];
  const data = ['--data', dataDir];
  const domainJobs = domains.map((d) => ['domain', 'add', d, ...data]);
  const userJobs = accounts.flatMap((a) => [
    ['user', 'add', a.address, '--password', a.password, ...data],
    ...(imapMaxConnections ? [['user', 'set', a.address, 'imap.maxConnections', String(Math.min(1000, imapMaxConnections)), ...data]] : []),
  ]);
  if (process.env.BENCH_CLI_PROCESSES) {
    const one = async (args: string[]) => {
      const r = await runCli(args);
      if (r.code !== 0 && !/already exists/i.test(r.stderr)) throw new Error(`pillarbox ${args.slice(0, 3).join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
    };
    for (const j of domainJobs) await one(j);
    // user add before user set for each account: keep them in order per account.
    const perAccount = accounts.map((_, i) => userJobs.filter((j) => j[2] === accounts[i]!.address));
    await pool(perAccount, 4, async (jobs) => {
      for (const j of jobs) await one(j);
    });
  } else {
    await runWorker('provision-worker.ts', [JSON.stringify(domainJobs)], false);
    // user set must follow user add of the same account: two rounds.
    await runWorker('provision-worker.ts', [JSON.stringify(userJobs.filter((j) => j[1] === 'add'))], false);
    const sets = userJobs.filter((j) => j[1] === 'set');
    if (sets.length) await runWorker('provision-worker.ts', [JSON.stringify(sets)], false);
  }
  log(`pillarbox: ${accounts.length} accounts provisioned through the CLI in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

/** Runs bench/lib/<script> (TypeScript, types stripped by Node) with a JSON job file argument (written to a temp file). */
async function runWorker(script: string, args: string[], noFsync: boolean, extraArgs: string[] = []): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-job-'));
  const offDir = onCleanup('job folder', () => rmSync(dir, { recursive: true, force: true }));
  const jobFile = join(dir, 'job.json');
  writeFileSync(jobFile, args[0]!);
  const [pre, ...preArgs] = [...(noFsync ? eatmydata() : []), process.execPath];
  const p = spawn(pre!, [...preArgs, join(BENCH_DIR, 'lib', script), ...extraArgs, jobFile], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const off = onCleanup(script, () => killTree(p.pid!));
  const code = await new Promise<number>((r) => p.on('exit', (c) => r(c ?? 1)));
  off();
  offDir();
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`${script} failed (exit ${code})`);
}

/**
 * The server runs as `npm start` runs it: the build of scripts/build.mjs (plain JavaScript, no
 * TypeScript transform at run time), made once per benchmark process into a temp folder.
 * BENCH_SOURCES=1 runs the TypeScript sources instead.
 */
let builtFile: string | null = null;
function useBuild(): void {
  // run-all's cleanup between benchmarks removes the folder: build again then.
  if (process.env.BENCH_SOURCES || (builtFile && existsSync(builtFile))) return;
  // Inside the checkout, so the build's package imports resolve from its node_modules.
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, 'dist', '.bench-build-'));
  onCleanup('build folder', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pillarbox.mjs');
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--outfile', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed: ${r.stderr}`);
  builtFile = file;
  process.env.PILLARBOX_BUILT = file;
  log(`pillarbox: built ${file} (as npm start does)`);
}

export async function startPillarbox(opts: PillarboxOptions): Promise<Pillarbox> {
  useBuild();
  const reuse = opts.reuseDir;
  if (reuse) mkdirSync(reuse, { recursive: true });
  const dataDir = reuse ?? mkdtempSync(join(tmpdir(), 'bench-pillarbox-'));
  const removeDir = () => {
    if (!process.env.BENCH_KEEP && !reuse) rmSync(dataDir, { recursive: true, force: true });
  };
  const offDir = onCleanup('pillarbox data', removeDir);
  if (!reuse || !existsSync(join(dataDir, '.filled'))) {
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ ...opts.config, limits: { ...(opts.limits ?? {}) } }, null, 2));
    // The CLI needs the database to exist: `serve` creates it, and so does the first CLI command
    // opening the store. Provision first (server not running), then fill, then start.
    await provision(dataDir, opts.accounts, opts.imapMaxConnections);
    if (opts.beforeStart) await opts.beforeStart(dataDir);
    if (reuse) writeFileSync(join(dataDir, '.filled'), '');
  } else log(`pillarbox: reusing the filled data folder ${dataDir}`);

  const env: Record<string, string> = {};
  if (process.env.BENCH_PROFILE) {
    // node refuses --cpu-prof in NODE_OPTIONS: an --import'ed module runs the profiler in-process.
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${join(BENCH_DIR, 'lib', 'cpu-profiler.mjs')}`.trim();
    env.BENCH_PROFILE_DIR = process.env.BENCH_PROFILE;
    log(`pillarbox: CPU profile will be written to ${process.env.BENCH_PROFILE}`);
  }
  if (process.env.BENCH_NODE_OPTIONS) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} ${process.env.BENCH_NODE_OPTIONS}`.trim();
  const server = await startServer({ plaintext: true, dataDir, env, ...(opts.args ? { args: opts.args } : {}), ...(opts.workers ? { workers: opts.workers } : {}) });
  const pid = server.proc.pid!;
  const offProc = onCleanup('pillarbox', () => killTree(pid), async () => {
    await server.stop();
  });
  return {
    server,
    dataDir,
    ports: server.ports,
    pid,
    memory: () => memoryOf([pid, ...descendants(pid)]),
    async stop() {
      offProc();
      await server.stop();
      offDir();
      removeDir();
    },
  };
}

export interface FillJob {
  /** Every message goes to this mailbox of each of these accounts (one delivery, many targets). */
  addresses: string[];
  mailbox: string;
  /** Corpus indexes [from, from + count). */
  from: number;
  count: number;
  seed?: number;
  maxBytes?: number;
  /** Adds `X-Bench-Seq: <i>` so every message is a distinct body. */
  unique?: boolean;
  /** Every Nth message is \Seen (0 = none). */
  seenEvery?: number;
}

/**
 * Fills mailboxes through the Store API in a separate process, before the server starts. fsync is
 * turned off for the fill only (eatmydata) and the files are synced once at the end: the server
 * then runs with its normal durability.
 */
export async function fillStore(dataDir: string, jobs: FillJob[]): Promise<void> {
  const t = performance.now();
  await runWorker('fill-worker.ts', [JSON.stringify(jobs)], true, [dataDir]);
  log(`pillarbox: store filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
