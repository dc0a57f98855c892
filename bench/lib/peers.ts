// The peers Pillarbox is measured against: Dovecot (IMAP, POP3, LMTP; Maildir) and Postfix
// delivering to Dovecot over LMTP. Both run from a temporary folder on 127.0.0.1 with high ports,
// as root with mail owned by `nobody`, Dovecot's default fsync settings, and are always stopped
// (process tree killed) at the end, on Ctrl-C and on errors. Nothing listens on a standard port.

import { execFileSync } from 'node:child_process';
import { chownSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, descendants, killTree, log, onCleanup, run, sleep, spawnTracked, treeMemory, type Mem } from './util.ts';

export const NOBODY_UID = 65534;
export const NOGROUP_GID = 65534;

export interface Account {
  address: string;
  password: string;
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function has(cmd: string): boolean {
  try {
    run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

let peersChecked = false;
/** Installs the Debian peers when missing (dovecot-imapd, -pop3d, -lmtpd, postfix; eatmydata for fast fills); `only`: just these packages. */
export function ensurePeers(only?: string[]): void {
  if (peersChecked) return;
  const missing: string[] = [];
  for (const [pkg, file] of [
    ['dovecot-imapd', '/usr/lib/dovecot/imap'],
    ['dovecot-pop3d', '/usr/lib/dovecot/pop3'],
    ['dovecot-lmtpd', '/usr/lib/dovecot/lmtp'],
    ['postfix', '/usr/sbin/smtp-source'],
    ['eatmydata', '/usr/bin/eatmydata'],
  ] as const) {
    if (only && !only.includes(pkg)) continue;
    if (!existsSync(file)) missing.push(pkg);
  }
  if (missing.length) {
    log(`installing ${missing.join(', ')} from Debian`);
    if (missing.includes('postfix')) run('sh', ['-c', 'echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections']);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', ...missing], { env, timeoutMs: 900_000 });
    try {
      install();
    } catch {
      run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update'], { env, timeoutMs: 900_000 });
      install();
    }
  }
  if (!only) peersChecked = true;
}

/** Prefix for a command that turns fsync into a no-op (only for filling mailboxes before a measure). */
export function eatmydata(): string[] {
  return has('eatmydata') ? ['eatmydata'] : [];
}

function makeTempRoot(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755); // the mail users (nobody, postfix, dovecot) must traverse it
  return dir;
}

// ---------------------------------------------------------------- Dovecot

export interface DovecotOptions {
  accounts: Account[];
  /** Password scheme in the passwd-file (default SHA512-CRYPT; BENCH_DOVECOT_SCHEME). */
  scheme?: string;
  /** Max simultaneous imap (and pop3) processes (default 1,000). */
  maxConnections?: number;
  lmtp?: boolean;
  /** Extra lines appended to dovecot.conf. */
  extraConfig?: string;
  /** The Debian packages to check (install when missing); default all peers. Tests pass what they checked is there. */
  packages?: string[];
}

export interface Dovecot {
  dir: string;
  ports: { imap: number; pop3: number; lmtp: number };
  /** Maildir of an account: DIR/mail/<domain>/<local>/Maildir. */
  maildir(address: string): string;
  masterPid(): number;
  /** Memory of the master and every child (auth, login, imap, …). */
  memory(): Mem;
  /** Memory of the imap processes only. */
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

export function homeOf(root: string, address: string): string {
  const [local, domain] = address.toLowerCase().split('@') as [string, string];
  return join(root, 'mail', domain, local);
}

export async function startDovecot(opts: DovecotOptions): Promise<Dovecot> {
  ensurePeers(opts.packages);
  const dir = makeTempRoot('bench-dovecot-');
  const ports = { imap: await freePort(), pop3: await freePort(), lmtp: await freePort() };
  const scheme = opts.scheme ?? process.env.BENCH_DOVECOT_SCHEME ?? 'SHA512-CRYPT';
  const maxConn = opts.maxConnections ?? 1000;
  for (const d of ['run', 'state', 'mail']) mkdirSync(join(dir, d), { recursive: true });
  chownSync(join(dir, 'mail'), NOBODY_UID, NOGROUP_GID);

  // One hash per distinct password (doveadm pw salts it; the same hash for every account is fine).
  const hashes = new Map<string, string>();
  const lines: string[] = [];
  for (const a of opts.accounts) {
    let h = hashes.get(a.password);
    if (!h) {
      h = run('doveadm', ['pw', '-s', scheme, '-p', a.password]).trim();
      hashes.set(a.password, h);
    }
    const home = homeOf(dir, a.address);
    mkdirSync(join(home, 'Maildir', 'cur'), { recursive: true });
    mkdirSync(join(home, 'Maildir', 'new'), { recursive: true });
    mkdirSync(join(home, 'Maildir', 'tmp'), { recursive: true });
    lines.push(`${a.address.toLowerCase()}:${h}:${NOBODY_UID}:${NOGROUP_GID}::${home}::`);
  }
  writeFileSync(join(dir, 'passwd'), lines.join('\n') + '\n', { mode: 0o640 });
  run('chown', ['root:dovecot', join(dir, 'passwd')]);
  // nobody must own every Maildir it writes into.
  run('chown', ['-R', `${NOBODY_UID}:${NOGROUP_GID}`, join(dir, 'mail')]);

  const conf = `# Benchmark peer: generated by bench/lib/peers.ts
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = bench-dovecot-${ports.imap}
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
protocols = imap pop3${opts.lmtp === false ? '' : ' lmtp'}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
# Dovecot's defaults for durability (written out for the record)
mail_fsync = optimized
default_process_limit = ${maxConn + 200}
default_client_limit = ${maxConn * 6 + 1000}
passdb {
  driver = passwd-file
  args = ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
}
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${ports.imap}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  chroot =
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${ports.pop3}
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${ports.lmtp}
  }
}
service imap {
  process_limit = ${maxConn + 100}
}
service pop3 {
  process_limit = ${maxConn + 100}
}
service anvil {
  client_limit = ${maxConn * 6 + 1000}
}
service auth {
  client_limit = ${maxConn * 6 + 1000}
}
protocol imap {
  mail_max_userip_connections = ${maxConn + 100}
}
protocol pop3 {
  mail_max_userip_connections = ${maxConn + 100}
}
${opts.extraConfig ?? ''}
`;
  const confFile = join(dir, 'dovecot.conf');
  writeFileSync(confFile, conf);
  writeFileSync(join(dir, 'dovecot.log'), '');

  const proc = spawnTracked('dovecot', 'dovecot', ['-F', '-c', confFile]);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const pid = proc.pid!;
  let exited = false;
  proc.once('exit', () => (exited = true));

  // Ready when the IMAP and POP3 listeners answer.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`dovecot exited: ${out}\n${tail(join(dir, 'dovecot.log'))}`);
    if ((await canConnect(ports.imap)) && (await canConnect(ports.pop3))) break;
    if (Date.now() > deadline) {
      killTree(pid);
      throw new Error(`dovecot not ready after 30 s: ${out}\n${tail(join(dir, 'dovecot.log'))}`);
    }
    await sleep(50);
  }

  const stop = async () => {
    if (!exited && alive(pid)) {
      const kids = descendants(pid);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const until = Date.now() + 10_000;
      while (alive(pid) && Date.now() < until) await sleep(50);
      killTree(pid);
      for (const k of kids) {
        try {
          process.kill(k, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  onCleanup('dovecot', () => killTree(pid), stop);

  return {
    dir,
    ports,
    maildir: (address) => join(homeOf(dir, address), 'Maildir'),
    masterPid: () => pid,
    memory: () => treeMemory(pid),
    stop,
    logTail: (n = 30) => tail(join(dir, 'dovecot.log'), n),
  };
}

function tail(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    import('node:net').then(({ connect }) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  });
}


// ---------------------------------------------------------------- Postfix

export interface Postfix {
  dir: string;
  /** config_directory (main.cf, master.cf, the lookup tables). */
  etc: string;
  /** smtpd's port on 127.0.0.1. */
  port: number;
  /** Environment for Postfix commands (MAIL_CONFIG=etc). */
  env: NodeJS.ProcessEnv;
  /** Messages still in Postfix's queue (active + incoming + deferred + maildrop). */
  queued(): number;
  masterPid(): number;
  memory(): Mem;
  stop(): Promise<void>;
  logTail(lines?: number): string;
  /** The whole maillog so far. */
  log(): string;
  /** Postfix's sendmail(1) for this instance: `sendmail -f FROM -- RCPT…` with the message on stdin. */
  sendmail(from: string, recipients: string[], message: string | Buffer): void;
}

export interface PostfixInstanceOptions {
  /** smtpd port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** main.cf settings over the base ones (same key: this value). */
  main?: Record<string, string>;
  /** Extra master.cf lines. */
  master?: string;
  /** Files written into the config folder before the start (lookup tables; `texthash:` needs no postmap). */
  files?: Record<string, string>;
  /** Folders created under the instance folder and owned by nobody (e.g. a virtual mailbox base). */
  nobodyDirs?: string[];
  /** Prefix of the temp folder and of myhostname (default "bench-postfix"). */
  name?: string;
}

/**
 * A private Postfix: its own config_directory, queue_directory and data_directory in a temp folder,
 * smtpd on 127.0.0.1:<high port> only (every other service is a UNIX socket in the spool), logging
 * to DIR/maillog. What it delivers where is the caller's main.cf/master.cf/files.
 */
export async function startPostfixInstance(opts: PostfixInstanceOptions = {}): Promise<Postfix> {
  ensurePeers(['postfix']);
  const name = opts.name ?? 'bench-postfix';
  const dir = makeTempRoot(`${name}-`);
  const port = opts.port ?? (await freePort());
  const etc = join(dir, 'etc');
  const spool = join(dir, 'spool');
  const data = join(dir, 'data');
  for (const d of [etc, spool, data]) mkdirSync(d, { recursive: true });
  run('chown', ['postfix:postfix', data]);
  for (const d of opts.nobodyDirs ?? []) {
    mkdirSync(join(dir, d), { recursive: true });
    chownSync(join(dir, d), NOBODY_UID, NOGROUP_GID);
  }
  for (const [f, text] of Object.entries(opts.files ?? {})) writeFileSync(join(etc, f), text);
  const settings: Record<string, string> = {
    compatibility_level: '3.6',
    config_directory: etc,
    queue_directory: spool,
    data_directory: data,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: `${name}.localhost`,
    mydomain: 'localhost',
    myorigin: '$myhostname',
    mydestination: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination',
    local_transport: 'error:no local delivery here',
    relayhost: '',
    relay_domains: '',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    append_dot_mydomain: 'no',
    smtputf8_enable: 'no',
    message_size_limit: '52428800',
    maillog_file_prefixes: `${dir}, /dev/stdout`,
    maillog_file: `${dir}/maillog`,
    ...opts.main,
  };
  const main = `# Generated by bench/lib/peers.ts\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  writeFileSync(join(etc, 'main.cf'), main);
  // Only loopback high port for smtpd; everything else is a UNIX socket in the spool.
  const master = `# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
${opts.master ?? ''}`;
  writeFileSync(join(etc, 'master.cf'), master);
  writeFileSync(join(dir, 'maillog'), '');
  run('chown', ['postfix', join(dir, 'maillog')]);

  const env = { ...process.env, MAIL_CONFIG: etc };
  try {
    run('postfix', ['-c', etc, 'set-permissions'], { env });
  } catch {
    /* creates what it can; check below reports the rest */
  }
  try {
    run('postfix', ['-c', etc, 'check'], { env });
  } catch (err) {
    log(`postfix check: ${(err as { stderr?: string }).stderr ?? err}`);
  }
  const proc = spawnTracked('postfix', 'postfix', ['-c', etc, 'start-fg'], { env });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  let exited = false;
  proc.once('exit', () => (exited = true));

  const pidFile = join(spool, 'pid', 'master.pid');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`postfix exited: ${out}\n${tail(join(dir, 'maillog'))}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      killTree(proc.pid!);
      throw new Error(`postfix not ready after 60 s: ${out}\n${tail(join(dir, 'maillog'))}`);
    }
    await sleep(50);
  }
  const masterPid = (): number => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim()) || proc.pid!;
    } catch {
      return proc.pid!;
    }
  };
  const rootPid = proc.pid!;

  const stop = async () => {
    const mp = masterPid();
    const kids = [...descendants(rootPid), ...descendants(mp)];
    try {
      run('postfix', ['-c', etc, 'stop'], { env, timeoutMs: 20_000 });
    } catch {
      /* not running */
    }
    const until = Date.now() + 10_000;
    while ((alive(mp) || alive(rootPid)) && Date.now() < until) await sleep(50);
    killTree(rootPid);
    killTree(mp);
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(
    'postfix',
    () => {
      killTree(rootPid);
      killTree(masterPid());
    },
    stop,
  );

  const countDir = (d: string): number => {
    try {
      return Number(run('sh', ['-c', `find ${d} -type f 2>/dev/null | wc -l`]).trim());
    } catch {
      return 0;
    }
  };

  return {
    dir,
    etc,
    port,
    env,
    queued: () => ['maildrop', 'incoming', 'active', 'deferred', 'hold'].reduce((s, q) => s + countDir(join(spool, q)), 0),
    masterPid,
    memory: () => treeMemory(masterPid()),
    stop,
    logTail: (n = 30) => tail(join(dir, 'maillog'), n),
    log: () => {
      try {
        return readFileSync(join(dir, 'maillog'), 'utf8');
      } catch {
        return '';
      }
    },
    sendmail: (from, recipients, message) => {
      execFileSync('/usr/sbin/sendmail', ['-C', etc, '-f', from, '--', ...recipients], { input: message, env, timeout: 60_000, stdio: ['pipe', 'pipe', 'pipe'] });
    },
  };
}

/**
 * Postfix accepting SMTP on 127.0.0.1:<high port> and handing every recipient of the given
 * domains to Dovecot's LMTP listener.
 */
export async function startPostfix(opts: { lmtpPort: number; accounts: Account[] }): Promise<Postfix> {
  ensurePeers();
  const domains = [...new Set(opts.accounts.map((a) => a.address.split('@')[1]!.toLowerCase()))];
  return startPostfixInstance({
    files: { vmailbox: opts.accounts.map((a) => `${a.address.toLowerCase()} ok`).join('\n') + '\n' },
    main: {
      virtual_mailbox_domains: domains.join(', '),
      virtual_mailbox_maps: 'texthash:$config_directory/vmailbox',
      virtual_transport: `lmtp:inet:127.0.0.1:${opts.lmtpPort}`,
      local_transport: 'error:no local delivery in the benchmark',
    },
  });
}


/**
 * Writes messages straight into Maildir cur/ folders (what a delivery leaves on disk), owned by
 * nobody. Dovecot indexes them on the first SELECT (the benchmarks do an untimed warm-up first).
 */
/** `mtime` (ms): the file's mtime, which Dovecot's Maildir takes as INTERNALDATE. */
export function fillMaildir(maildir: string, messages: Iterable<{ raw: Buffer; seen?: boolean; seq: number; mtime?: number }>): number {
  let n = 0;
  const cur = join(maildir, 'cur');
  for (const m of messages) {
    const name = `${1700000000 + m.seq}.M${m.seq}P1.bench,S=${m.raw.length}:2,${m.seen ? 'S' : ''}`;
    writeFileSync(join(cur, name), m.raw);
    if (m.mtime !== undefined) utimesSync(join(cur, name), m.mtime / 1000, m.mtime / 1000);
    n++;
  }
  run('chown', ['-R', `${NOBODY_UID}:${NOGROUP_GID}`, maildir]);
  return n;
}
