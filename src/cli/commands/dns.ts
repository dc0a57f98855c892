// `pillarbox dns DOMAIN [--ip ADDR]`: every DNS record the domain needs for this server, in zone-file
// form with comments (src/mailauth/dns-records.ts), ready to paste into a zone or a DNS provider.

import { isIP } from 'node:net';
import { domainRecords } from '../../mailauth/dns-records.ts';
import { CliError, loadCliConfig, output, parseDomain, validDomain, withStore, type CommandContext } from '../context.ts';

export const DNS_HELP = `Usage: pillarbox dns DOMAIN [--ip ADDR] [--hostname HOST] [--json]

Prints every DNS record DOMAIN needs, as zone-file lines with a comment each: MX (to this server's
hostname), SPF, one DKIM TXT per active key (pillarbox dkim generate DOMAIN first), DMARC
(p=quarantine), MTA-STS (with the policy file to serve) and TLS-RPT, and the SRV records mail
clients use to find the server (RFC 6186).

  --ip ADDR             the server's public address: listed in SPF, and an A/AAAA record for the
                        hostname when it is inside DOMAIN
  --hostname HOST       the server's name (default: config hostname, as \`pillarbox serve\` uses)

Options: --data DIR, --database URL, --config FILE, --json
`;

export async function dnsCommand(ctx: CommandContext): Promise<number> {
  if (ctx.args.length !== 1) throw new CliError('dns takes one DOMAIN; see pillarbox dns --help');
  const domain = parseDomain(ctx.args[0]);
  const ip = ctx.flags.ip;
  if (ip !== undefined && (typeof ip !== 'string' || !isIP(ip))) throw new CliError(`--ip: "${String(ip)}" is not an IP address`);
  const config = loadCliConfig(ctx);
  const hostname = config.hostname.toLowerCase();
  if (!validDomain(hostname) || !hostname.includes('.')) {
    throw new CliError(`hostname "${hostname}" is not a fully qualified name; pass --hostname mail.${domain} (or set hostname in config.json)`);
  }
  const keys = await withStore(ctx, async (s) => {
    if (!(await s.getDomain(domain))) throw new CliError(`domain ${domain} is not hosted here (pillarbox domain add ${domain})`);
    return s.dkimKeys.list(domain);
  });
  const r = domainRecords({
    domain, hostname, ip: (ip as string | undefined) ?? null, keys,
    ports: { submission: config.ports.submission, submissions: config.ports.submissions, imaps: config.ports.imaps, pop3s: config.ports.pop3s },
  });
  output(ctx, { domain, hostname, records: r.records, mtaStsPolicy: r.mtaStsPolicy }, r.zone);
  return 0;
}
