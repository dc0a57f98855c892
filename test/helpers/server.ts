// Starts the real `pillarbox serve` as a child process on 127.0.0.1 with every port 0, in a
// temporary data folder, waits until it is ready, and always stops it (also when the test process
// exits). Accounts are provisioned through the real admin CLI.
//
// Ready means: the ports file exists, which `serve` writes only after its banner was written to
// stdout; the banner's last line is "Ready.", and the helper also waits for that line to arrive
// through the pipe (the file can be seen before the pipe's bytes are read here).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PORT_NAMES, type PortName } from '../../src/config/config.ts';
import { serverNodeFlags } from '../../src/cli/node-flags.ts';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'src/cli/main.ts');

/**
 * How to run the CLI: the TypeScript sources (Node strips the types); or, with PILLARBOX_BUILT=FILE (a build made by
 * scripts/build.mjs, as `npm start` runs it), that file with plain node.
 */
export function cliArgv(): string[] {
  const built = process.env.PILLARBOX_BUILT;
  return built ? [built] : [CLI];
}

/** The ports file: every listener's bound port, keyed by the names of src/config/config.ts. */
export type Ports = Record<PortName, number>;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface StartOptions {
  /** Allow passwords without TLS from loopback (default false, as in production). */
  plaintext?: boolean;
  /** Reuse a data folder (e.g. after a kill); default: a new temporary one. */
  dataDir?: string;
  /** `--database` (e.g. a postgres:// URL). */
  database?: string;
  /** Extra `serve` flags. */
  args?: string[];
  /** `--workers` (default 1: one process, as the suite's cost assumes; the server's own default is a worker per core). */
  workers?: number | 'auto';
  env?: Record<string, string>;
  /** Keep the data folder after stop (default: removed unless dataDir was given). */
  keepData?: boolean;
  /**
   * The command up to and including `serve` (default: this Node, the CLI, `serve`), e.g.
   * ['./bin/pillarbox', 'serve'] or ['npm', 'start', '--'].
   */
  command?: string[];
  /** The child's working folder (default: the checkout). */
  cwd?: string;
  /** What to pass as --data (default: the data folder's absolute path); null passes none (serve uses ./data of cwd). */
  dataArg?: string | null;
}

export interface TestServer {
  ports: Ports;
  dataDir: string;
  /** PEM of the server's certificate at start: the self-signed one (SAN localhost, 127.0.0.1), or --tls-cert's. */
  ca: string;
  proc: ChildProcess;
  /** Server's stdout+stderr so far. */
  output(): string;
  /** Server's stdout so far (the banner). */
  stdout(): string;
  cli(args: string[], input?: string): Promise<CliResult>;
  /** Adds the domain if needed, then the account. */
  addUser(address: string, password: string, opts?: { quota?: string }): Promise<void>;
  /** SIGTERM and wait; removes the data folder unless kept. */
  stop(): Promise<void>;
  /** SIGKILL and wait; keeps the data folder (for restart tests). */
  kill(): Promise<void>;
  /** Same data folder, new process (new ports). */
  restart(): Promise<TestServer>;
}

const live = new Set<ChildProcess>();
/** Signals the child's process group (it runs detached): `npm start` and the server under it alike. */
function signal(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-p.pid!, sig);
  } catch {
    p.kill(sig);
  }
}
process.on('exit', () => {
  for (const p of live) signal(p, 'SIGKILL');
});

export function runCli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolveP, reject) => {
    const p = spawn(process.execPath, [...cliArgv(), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolveP({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.input ?? '');
  });
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const cwd = opts.cwd ?? ROOT;
  const dataDir = opts.dataArg === null ? resolve(cwd, 'data') : (opts.dataDir ?? mkdtempSync(join(tmpdir(), 'pillarbox-test-')));
  const portsFile = join(dataDir, 'ports.json');
  rmSync(portsFile, { force: true });
  const dbArgs = opts.database ? ['--database', opts.database] : [];
  // The server's V8 flags as bin/pillarbox and `npm start` give them (src/cli/node-flags.ts).
  const [cmd, ...cmdArgs] = opts.command ?? [process.execPath, ...serverNodeFlags(opts.env?.NODE_OPTIONS ?? process.env.NODE_OPTIONS), ...cliArgv(), 'serve'];
  const args = [
    ...cmdArgs,
    ...(opts.dataArg === null ? [] : ['--data', opts.dataArg ?? dataDir]),
    ...dbArgs,
    '--hostname',
    'localhost',
    '--host',
    '127.0.0.1',
    ...PORT_NAMES.flatMap((n) => [`--${n}-port`, '0']),
    '--ports-file',
    portsFile,
    ...(opts.plaintext ? ['--allow-plaintext-loopback'] : []),
    '--workers',
    String(opts.workers ?? 1),
    ...(opts.args ?? []),
  ];
  // The MX's SPF/DKIM/DMARC checks (on by default) would query the machine's DNS for every test
  // message and add an Authentication-Results field: off here unless a test asks (`--mail-auth on`
  // or env PILLARBOX_MAIL_AUTH, with config dnsServers pointing at a test DNS server).
  const env = { PILLARBOX_MAIL_AUTH: 'off', ...process.env, ...opts.env };
  const proc = spawn(cmd!, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(proc);
  let out = '';
  let stdout = '';
  proc.stdout!.on('data', (d) => {
    out += d;
    stdout += d;
  });
  proc.stderr!.on('data', (d) => (out += d));
  let exited = false;
  let exitCode: number | string | null = null;
  const exitP = new Promise<void>((r) =>
    proc.once('exit', (code, signal) => {
      exited = true;
      exitCode = code ?? signal;
      live.delete(proc);
      r();
    }),
  );
  // 'exit' can come before the last output is read: 'close' follows once stdout/stderr end.
  const closeP = new Promise<void>((r) => proc.once('close', () => r()));

  const deadline = Date.now() + 60_000;
  while (!existsSync(portsFile) || !/^Ready\.$/m.test(stdout)) {
    if (exited) {
      await Promise.race([closeP, new Promise((r) => setTimeout(r, 2000))]);
      throw new Error(`pillarbox serve exited (${exitCode}) before it was ready:\n${out}`);
    }
    if (Date.now() > deadline) {
      signal(proc, 'SIGKILL');
      throw new Error(`pillarbox serve not ready after 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const ports = JSON.parse(readFileSync(portsFile, 'utf8')) as Ports;
  // The served certificate: --tls-cert FILE when given, else the self-signed one in DATA/tls.
  const certArg = opts.args?.lastIndexOf('--tls-cert') ?? -1;
  const ca = readFileSync(certArg >= 0 ? resolve(ROOT, opts.args![certArg + 1]!) : join(dataDir, 'tls', 'cert.pem'), 'utf8');
  const dataFlags = ['--data', dataDir, ...dbArgs];

  const server: TestServer = {
    ports,
    dataDir,
    ca,
    proc,
    output: () => out,
    stdout: () => stdout,
    cli: (a, input) => runCli([...a, ...dataFlags], input === undefined ? {} : { input }),
    async addUser(address, password, o = {}) {
      const domain = address.slice(address.lastIndexOf('@') + 1);
      const d = await runCli(['domain', 'add', domain, ...dataFlags]);
      if (d.code !== 0 && !/already exists/.test(d.stderr)) throw new Error(`domain add failed: ${d.stderr}`);
      const u = await runCli(['user', 'add', address, '--password', password, ...(o.quota ? ['--quota', o.quota] : []), ...dataFlags]);
      if (u.code !== 0) throw new Error(`user add failed: ${u.stderr}`);
    },
    async stop() {
      if (!exited) {
        signal(proc, 'SIGTERM');
        const t = setTimeout(() => signal(proc, 'SIGKILL'), 10_000);
        await exitP;
        clearTimeout(t);
      }
      if (!opts.dataDir && !opts.keepData && opts.dataArg !== null) rmSync(dataDir, { recursive: true, force: true });
    },
    async kill() {
      if (!exited) {
        signal(proc, 'SIGKILL');
        await exitP;
      }
    },
    async restart() {
      await server.kill();
      return startServer({ ...opts, dataDir });
    },
  };
  return server;
}
