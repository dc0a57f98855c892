import { hashPassword } from '../../auth/password.ts';
import { formatSize, parseSize } from '../../config/load.ts';
import { accountSettings, type Account, type AccountSettings, type PopDeleteAction } from '../../store/store.ts';
import { CliError, output, parseAddress, parseDomain, promptHidden, readStdinLine, withStore, type CommandContext } from '../context.ts';

export const USER_HELP = `Usage: pillarbox user add ADDRESS (--password P | --password-stdin) [--quota SIZE]
       pillarbox user passwd ADDRESS (--password P | --password-stdin)
       pillarbox user quota ADDRESS SIZE
       pillarbox user set ADDRESS KEY VALUE
       pillarbox user remove ADDRESS
       pillarbox user list [DOMAIN]
       pillarbox user show ADDRESS

Accounts. The domain must exist (pillarbox domain add). Every account starts with INBOX, Sent,
Drafts, Trash, Junk and Archive. SIZE is like 500MB, 2GB or 0 (unlimited); quota use counts every
message in every mailbox. Passwords are stored as scrypt hashes. --password-stdin on a terminal
asks for the password twice without showing it; from a pipe or file it reads the first line.

Settings for "user set":
  imap.maxConnections N          simultaneous IMAP logins (default 5)
  pop.enabled true|false         allow POP3 for this account (default true)
  pop.deleteAction ACTION        what a POP3 delete does: expunge (default), trash, archive, keep
  pop.showSince now|all|ISO-DATE POP3 shows only mail saved since then ("now" = from now on)
  pop.markSeen true|false        mark messages retrieved by POP3 as \\Seen (default true)

Options: --data DIR, --database URL, --json
`;

/**
 * The new password: --password P; or --password-stdin, which on a terminal asks without echo (twice,
 * to catch a typo) and from a pipe or file reads the first line.
 */
async function readPassword(ctx: CommandContext, address: string): Promise<string> {
  let pw: string | undefined;
  if (typeof ctx.flags.password === 'string') pw = ctx.flags.password;
  else if (ctx.flags['password-stdin']) {
    if (process.stdin.isTTY) {
      const [first, again] = await promptHidden([`Password for ${address}: `, `Retype the password for ${address}: `]);
      if (first !== '' && first !== again) throw new CliError('the passwords do not match; nothing changed');
      pw = first;
    } else pw = await readStdinLine();
  }
  if (pw === undefined) throw new CliError('missing password: use --password P or --password-stdin');
  if (pw.length === 0) throw new CliError('the password is empty');
  if (pw.length > 1024) throw new CliError('the password is longer than 1024 characters');
  return pw;
}

function parseQuota(s: string | undefined): number {
  if (s === undefined) throw new CliError('missing SIZE');
  if (/^(unlimited|none)$/i.test(s)) return 0;
  const n = parseSize(s);
  if (n === null) throw new CliError(`"${s}" is not a size (examples: 500MB, 2GB, 1048576, 0 for unlimited)`);
  return n;
}

function describe(a: Account): Record<string, unknown> {
  const s = accountSettings(a);
  return {
    address: a.address,
    quota: a.quota,
    usedBytes: a.usedBytes,
    messages: a.messageCount,
    settings: s,
    createdAt: a.createdAt.toISOString(),
  };
}

function quotaText(a: Account): string {
  return a.quota === 0 ? `${formatSize(a.usedBytes)} used (no quota)` : `${formatSize(a.usedBytes)} of ${formatSize(a.quota)} (${((a.usedBytes / a.quota) * 100).toFixed(1)}%)`;
}

function parseBool(v: string): boolean {
  if (/^(true|yes|on|1)$/i.test(v)) return true;
  if (/^(false|no|off|0)$/i.test(v)) return false;
  throw new CliError(`"${v}" is not true or false`);
}

/** Applies `user set KEY VALUE` to the settings object (returns a new one). */
export function applySetting(settings: AccountSettings, key: string, value: string, nowMs = Date.now()): AccountSettings {
  const next: AccountSettings = { ...settings, pop: { ...(settings.pop ?? {}) } };
  switch (key) {
    case 'imap.maxConnections': {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1000) throw new CliError('imap.maxConnections must be a number from 1 to 1000');
      next.imapMaxConnections = Number(value);
      break;
    }
    case 'pop.enabled':
      next.pop!.enabled = parseBool(value);
      break;
    case 'pop.markSeen':
      next.pop!.markSeen = parseBool(value);
      break;
    case 'pop.deleteAction': {
      if (!['expunge', 'trash', 'archive', 'keep'].includes(value)) throw new CliError('pop.deleteAction must be expunge, trash, archive or keep');
      next.pop!.deleteAction = value as PopDeleteAction;
      break;
    }
    case 'pop.showSince': {
      if (value === 'all') next.pop!.showSince = null;
      else if (value === 'now') next.pop!.showSince = nowMs;
      else {
        const t = Date.parse(value);
        if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) throw new CliError('pop.showSince must be now, all or a date like 2026-01-31T12:00:00Z');
        next.pop!.showSince = t;
      }
      break;
    }
    default:
      throw new CliError(`unknown setting "${key}"; see pillarbox user --help`);
  }
  return next;
}

export async function userCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...args] = ctx.args;
  switch (sub) {
    case 'add': {
      const address = parseAddress(args[0]);
      if (args.length > 1) throw new CliError(`unexpected argument "${args[1]}"`);
      const quota = ctx.flags.quota === undefined ? 0 : parseQuota(ctx.flags.quota as string);
      const pw = await readPassword(ctx, address);
      const passwordHash = await hashPassword(pw);
      const a = await withStore(ctx, (s) => s.createAccount({ address, passwordHash, quota }));
      output(ctx, describe(a), `added ${a.address}${a.quota ? ` with a quota of ${formatSize(a.quota)}` : ''}`);
      return 0;
    }
    case 'passwd': {
      const address = parseAddress(args[0]);
      const pw = await readPassword(ctx, address);
      const passwordHash = await hashPassword(pw);
      await withStore(ctx, async (s) => {
        const a = await s.getAccount(address);
        if (!a) throw new CliError(`no account ${address}`);
        await s.updateAccount(a.id, { passwordHash });
      });
      output(ctx, { address, passwordChanged: true }, `password changed for ${address}`);
      return 0;
    }
    case 'quota': {
      const address = parseAddress(args[0]);
      const quota = parseQuota(args[1]);
      const a = await withStore(ctx, async (s) => {
        const a = await s.getAccount(address);
        if (!a) throw new CliError(`no account ${address}`);
        return s.updateAccount(a.id, { quota });
      });
      output(ctx, describe(a), `${a.address}: ${quotaText(a)}`);
      return 0;
    }
    case 'set': {
      const address = parseAddress(args[0]);
      const [key, value] = [args[1], args[2]];
      if (!key || value === undefined) throw new CliError('usage: pillarbox user set ADDRESS KEY VALUE');
      const a = await withStore(ctx, async (s) => {
        const a = await s.getAccount(address);
        if (!a) throw new CliError(`no account ${address}`);
        return s.updateAccount(a.id, { settings: applySetting(a.settings, key, value) });
      });
      output(ctx, describe(a), `${a.address}: ${key} = ${value}`);
      return 0;
    }
    case 'remove': {
      const address = parseAddress(args[0]);
      await withStore(ctx, async (s) => {
        const a = await s.getAccount(address);
        if (!a) throw new CliError(`no account ${address}`);
        await s.removeAccount(a.id);
      });
      output(ctx, { removed: address }, `removed ${address} and all its mail`);
      return 0;
    }
    case 'list': {
      const domain = args[0] ? parseDomain(args[0]) : undefined;
      const list = await withStore(ctx, (s) => s.listAccounts(domain));
      output(ctx, list.map(describe), list.map((a) => `${a.address}  ${a.messageCount} messages, ${quotaText(a)}`).join('\n'));
      return 0;
    }
    case 'show': {
      const address = parseAddress(args[0]);
      const { a, boxes } = await withStore(ctx, async (s) => {
        const a = await s.getAccount(address);
        if (!a) throw new CliError(`no account ${address}`);
        const boxes = [];
        for (const m of await s.listMailboxes(a.id)) boxes.push({ name: m.name, specialUse: m.specialUse, ...(await s.mailboxStatus(m.id)) });
        return { a, boxes };
      });
      const s = accountSettings(a);
      const text = [
        `address:            ${a.address}`,
        `quota:              ${quotaText(a)}`,
        `messages:           ${a.messageCount}`,
        `imap.maxConnections ${s.imapMaxConnections}`,
        `pop.enabled         ${s.pop.enabled}`,
        `pop.deleteAction    ${s.pop.deleteAction}`,
        `pop.showSince       ${s.pop.showSince === null ? 'all' : new Date(s.pop.showSince).toISOString()}`,
        `pop.markSeen        ${s.pop.markSeen}`,
        `mailboxes:`,
        ...boxes.map((b) => `  ${b.name.padEnd(20)} ${String(b.messages).padStart(6)} messages ${formatSize(b.size).padStart(8)}${b.specialUse ? '  ' + b.specialUse : ''}`),
      ].join('\n');
      output(ctx, { ...describe(a), mailboxes: boxes }, text);
      return 0;
    }
    default:
      throw new CliError(sub ? `unknown user subcommand "${sub}"; see pillarbox user --help` : 'missing subcommand; see pillarbox user --help');
  }
}
