import { CliError, output, parseDomain, withStore, type CommandContext } from '../context.ts';

export const DOMAIN_HELP = `Usage: pillarbox domain add DOMAIN
       pillarbox domain remove DOMAIN
       pillarbox domain list

The mail domains this server accepts mail for. Accounts and aliases belong to a domain;
a domain with accounts can't be removed until they are.

Options: --data DIR, --database URL, --json
`;

export async function domainCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...args] = ctx.args;
  switch (sub) {
    case 'add': {
      const d = parseDomain(args[0]);
      if (args.length > 1) throw new CliError('domain add takes one DOMAIN');
      const r = await withStore(ctx, (s) => s.addDomain(d));
      output(ctx, { domain: r.name }, `added domain ${r.name}`);
      return 0;
    }
    case 'remove': {
      const d = parseDomain(args[0]);
      await withStore(ctx, (s) => s.removeDomain(d));
      output(ctx, { removed: d }, `removed domain ${d}`);
      return 0;
    }
    case 'list': {
      const list = await withStore(ctx, (s) => s.listDomains());
      output(ctx, list.map((d) => ({ domain: d.name, createdAt: d.createdAt.toISOString() })), list.map((d) => d.name).join('\n'));
      return 0;
    }
    default:
      throw new CliError(sub ? `unknown domain subcommand "${sub}"; see pillarbox domain --help` : 'missing subcommand; see pillarbox domain --help');
  }
}
