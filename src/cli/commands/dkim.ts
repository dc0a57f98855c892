// `pillarbox dkim generate|list|retire|remove`: the DKIM keys outgoing mail is signed with
// (store.dkimKeys; signing in src/mailauth/dkim.ts). Private keys never leave the store through
// this command: list shows the public TXT record to publish.

import { validSelector, type DkimAlgorithm, type DkimKey } from '../../store/dkim-keys.ts';
import { defaultSelector, generateDkimKey, publicKeyRecord } from '../../mailauth/dkim.ts';
import { CliError, output, parseDomain, withStore, type CommandContext } from '../context.ts';

export const DKIM_HELP = `Usage: pillarbox dkim generate DOMAIN [--algorithm ed25519|rsa] [--selector S]
       pillarbox dkim list [DOMAIN] [--json]
       pillarbox dkim retire DOMAIN SELECTOR
       pillarbox dkim remove DOMAIN SELECTOR

DKIM signing keys (RFC 6376). Every active key of a domain signs each message sent from it.

  generate DOMAIN       new active keys: by default both an RSA-2048 (selector pb<yyyymmdd>r) and an
                        ed25519 key (pb<yyyymmdd>e, RFC 8463); --algorithm picks one, --selector
                        names it. Publish the records \`pillarbox dns DOMAIN\` prints.
  list [DOMAIN]         keys with selector, algorithm, state and the TXT record to publish
  retire DOMAIN SEL     stop signing with a key (rotation: generate, publish, wait for DNS, retire
                        the old selector; keep its record a few days, then remove it)
  remove DOMAIN SEL     delete a key for good

Options: --data DIR, --database URL, --json
`;

function algorithms(v: string | boolean | undefined): DkimAlgorithm[] {
  if (v === undefined) return ['rsa-sha256', 'ed25519-sha256'];
  if (v === 'rsa' || v === 'rsa-sha256') return ['rsa-sha256'];
  if (v === 'ed25519' || v === 'ed25519-sha256') return ['ed25519-sha256'];
  throw new CliError(`--algorithm must be ed25519 or rsa, not "${String(v)}"`);
}

const view = (k: DkimKey) => ({
  domain: k.domain,
  selector: k.selector,
  algorithm: k.algorithm,
  active: k.active,
  createdAt: new Date(k.createdAt).toISOString(),
  retiredAt: k.retiredAt === null ? null : new Date(k.retiredAt).toISOString(),
  record: { name: `${k.selector}._domainkey.${k.domain}`, type: 'TXT', value: publicKeyRecord(k) },
});

function table(keys: DkimKey[]): string {
  if (keys.length === 0) return 'no DKIM keys';
  return keys
    .map((k) => `${k.domain}  ${k.selector}  ${k.algorithm}  ${k.active ? 'active' : `retired ${new Date(k.retiredAt ?? 0).toISOString().slice(0, 10)}`}  created ${new Date(k.createdAt).toISOString().slice(0, 10)}\n  ${k.selector}._domainkey.${k.domain}. TXT "${publicKeyRecord(k)}"`)
    .join('\n');
}

function selectorArg(s: string | undefined): string {
  if (!s) throw new CliError('missing SELECTOR');
  if (!validSelector(s)) throw new CliError(`"${s}" is not a valid selector (letters, digits, '-', dot-separated labels)`);
  return s.toLowerCase();
}

export async function dkimCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...args] = ctx.args;
  switch (sub) {
    case 'generate': {
      if (args.length !== 1) throw new CliError('dkim generate takes one DOMAIN');
      const domain = parseDomain(args[0]);
      const algs = algorithms(ctx.flags.algorithm);
      const sel = ctx.flags.selector;
      if (sel !== undefined && algs.length > 1) throw new CliError('--selector names one key: add --algorithm ed25519 or --algorithm rsa');
      const now = Date.now();
      const made = await withStore(ctx, async (s) => {
        if (!(await s.getDomain(domain))) throw new CliError(`domain ${domain} is not hosted here (pillarbox domain add ${domain})`);
        const out: DkimKey[] = [];
        for (const algorithm of algs) {
          let selector: string;
          if (typeof sel === 'string') {
            selector = selectorArg(sel);
            if (await s.dkimKeys.get(domain, selector)) throw new CliError(`${domain} already has a key with selector ${selector}`);
          } else {
            // pb<yyyymmdd>r, then pb<yyyymmdd>r2, r3 … for a second rotation the same day
            const base = defaultSelector(algorithm, new Date(now));
            selector = base;
            for (let n = 2; await s.dkimKeys.get(domain, selector); n++) {
              if (n > 99) throw new CliError(`${domain} has 99 keys named ${base}…; pass --selector`);
              selector = `${base}${n}`;
            }
          }
          out.push(await s.dkimKeys.add({ domain, selector, algorithm, privateKeyPem: generateDkimKey(algorithm), now }));
        }
        return out;
      });
      output(ctx, made.map(view), `${table(made)}\nPublish these records (all of them: pillarbox dns ${domain}); mail is signed with them from now on.`);
      return 0;
    }
    case 'list': {
      if (args.length > 1) throw new CliError('dkim list takes at most a DOMAIN');
      const domain = args[0] === undefined ? undefined : parseDomain(args[0]);
      const keys = await withStore(ctx, (s) => s.dkimKeys.list(domain));
      output(ctx, keys.map(view), table(keys));
      return 0;
    }
    case 'retire':
    case 'remove': {
      if (args.length !== 2) throw new CliError(`dkim ${sub} takes DOMAIN SELECTOR`);
      const domain = parseDomain(args[0]);
      const selector = selectorArg(args[1]);
      const now = Date.now();
      if (sub === 'retire') {
        const k = await withStore(ctx, (s) => s.dkimKeys.retire(domain, selector, now));
        if (!k) throw new CliError(`${domain} has no DKIM key with selector ${selector}`);
        output(ctx, view(k), `retired ${selector} for ${domain}: it signs no more mail; keep its TXT record a few days`);
      } else {
        const ok = await withStore(ctx, (s) => s.dkimKeys.remove(domain, selector));
        if (!ok) throw new CliError(`${domain} has no DKIM key with selector ${selector}`);
        output(ctx, { removed: true, domain, selector }, `removed ${selector} for ${domain}`);
      }
      return 0;
    }
    default:
      throw new CliError(sub ? `unknown dkim subcommand "${sub}"; see pillarbox dkim --help` : 'missing subcommand; see pillarbox dkim --help');
  }
}
