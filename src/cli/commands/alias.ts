import { CliError, normalizeAddress, output, parseDomain, withStore, type CommandContext } from '../context.ts';

export const ALIAS_HELP = `Usage: pillarbox alias add ADDRESS TARGET...
       pillarbox alias remove ADDRESS [TARGET...]
       pillarbox alias list [DOMAIN]

An alias delivers mail for ADDRESS to every TARGET: local accounts, other aliases, or external
addresses. A target may be the alias's own address when an account should also keep a copy.
ADDRESS "@example.com" is a catch-all: mail to any unknown address of the domain goes to its targets.
"add" adds targets to an existing alias; "remove" with targets removes only those.

Options: --data DIR, --database URL, --json
`;

function parseAliasAddress(a: string | undefined): string {
  if (!a) throw new CliError('missing ADDRESS');
  if (a.startsWith('@')) return '@' + parseDomain(a.slice(1));
  const n = normalizeAddress(a);
  if (!n) throw new CliError(`"${a}" is not a valid email address (expected user@domain or @domain)`);
  return n;
}

function parseTargets(ts: string[]): string[] {
  return ts.map((t) => {
    const n = normalizeAddress(t);
    if (!n) throw new CliError(`target "${t}" is not a valid email address`);
    return n;
  });
}

export async function aliasCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...args] = ctx.args;
  switch (sub) {
    case 'add': {
      const address = parseAliasAddress(args[0]);
      if (args.length < 2) throw new CliError('alias add needs at least one TARGET');
      const targets = parseTargets(args.slice(1));
      const a = await withStore(ctx, async (s) => {
        const cur = await s.getAlias(address);
        return s.setAlias(address, [...(cur?.targets ?? []), ...targets]);
      });
      output(ctx, { address: a.address, targets: a.targets }, `${a.address} → ${a.targets.join(', ')}`);
      return 0;
    }
    case 'remove': {
      const address = parseAliasAddress(args[0]);
      const drop = parseTargets(args.slice(1));
      const left = await withStore(ctx, async (s) => {
        const cur = await s.getAlias(address);
        if (!cur) throw new CliError(`no alias ${address}`);
        const rest = cur.targets.filter((t) => !drop.includes(t));
        const missing = drop.filter((t) => !cur.targets.includes(t));
        if (missing.length) throw new CliError(`${address} has no target ${missing.join(', ')}`);
        if (drop.length === 0 || rest.length === 0) {
          await s.removeAlias(address);
          return [];
        }
        return (await s.setAlias(address, rest)).targets;
      });
      output(ctx, { address, targets: left }, left.length ? `${address} → ${left.join(', ')}` : `removed alias ${address}`);
      return 0;
    }
    case 'list': {
      const domain = args[0] ? parseDomain(args[0]) : undefined;
      const list = await withStore(ctx, (s) => s.listAliases(domain));
      output(
        ctx,
        list.map((a) => ({ address: a.address, targets: a.targets })),
        list.map((a) => `${a.address} → ${a.targets.join(', ')}`).join('\n'),
      );
      return 0;
    }
    default:
      throw new CliError(sub ? `unknown alias subcommand "${sub}"; see pillarbox alias --help` : 'missing subcommand; see pillarbox alias --help');
  }
}
