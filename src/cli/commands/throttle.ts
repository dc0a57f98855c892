// `pillarbox throttle list|clear`: the failed-login state the server throttles by (store table
// login_failures, policy in src/auth/throttle-policy.ts), read and cleared from the admin side.
// The running server re-reads a source's rows at its next login attempt, so a clear is seen at once.

import { loadConfig } from '../../config/load.ts';
import { policyFromLimits, loginName } from '../../auth/authenticator.ts';
import { isSourceAddress, sourceKey } from '../../auth/source-key.ts';
import { DEFAULT_POLICY, decayed, isAbusive, pairGap, sourceGap, sourceSummary, type ThrottlePolicy } from '../../auth/throttle-policy.ts';
import type { LoginFailureFilter, LoginFailureRow } from '../../store/login-failures.ts';
import { CliError, output, withStore, type CommandContext } from '../context.ts';

export const THROTTLE_HELP = `Usage: pillarbox throttle list [--json]
       pillarbox throttle clear [ADDRESS] [IP]

Failed logins as the server counts them: per login name and source address (an IPv4 address, or
an IPv6 /64). Each failure adds 1 to the pair's score, which halves every 5 minutes. Past 3, the
pair's password checks are spaced: 1 s, doubling up to 15 s (limits.loginThrottle* in
config.json). A source failing for 5 or more names is slowed as a whole. Nobody else is affected:
other accounts from that address, and that account from other addresses, log in at once.

  list                  pairs with their failures, current score and delay; sources slowed as a whole
  clear                 forget every failure
  clear ADDRESS         forget that login name's failures, from every source
  clear IP              forget every failure from that address (its /64 for IPv6)
  clear ADDRESS IP      forget that one pair

Options: --data DIR, --database URL, --json
`;

function policyOf(ctx: CommandContext): ThrottlePolicy {
  try {
    return { ...DEFAULT_POLICY, ...policyFromLimits(loadConfig(ctx.flags).limits) };
  } catch {
    return DEFAULT_POLICY; // openAdminStore reports a bad config file with its own message
  }
}

const seconds = (ms: number) => (ms === 0 ? '-' : `${Math.round(ms / 100) / 10} s`);

function listing(p: ThrottlePolicy, rows: LoginFailureRow[], now: number) {
  const bySource = new Map<string, LoginFailureRow[]>();
  for (const r of rows) (bySource.get(r.ip) ?? bySource.set(r.ip, []).get(r.ip)!).push(r);
  const sources = [...bySource].map(([ip, rs]) => {
    const s = sourceSummary(p, rs, now);
    const abusive = isAbusive(p, s);
    return { ip, names: s.names, score: s.score, abusive, delayMs: abusive ? sourceGap(p, s.score) : 0 };
  });
  const srcDelay = new Map(sources.map((s) => [s.ip, s.delayMs]));
  const pairs = rows
    .map((r) => {
      const score = decayed(r, now, p.halfLifeMs);
      return {
        ip: r.ip,
        user: r.username,
        failures: r.failures,
        score,
        delayMs: Math.max(pairGap(p, score), srcDelay.get(r.ip) ?? 0),
        firstFailure: new Date(r.firstFailureAt).toISOString(),
        lastFailure: new Date(r.lastFailureAt).toISOString(),
      };
    })
    .filter((r) => r.score >= 0.1);
  return { pairs, sources: sources.filter((s) => s.abusive) };
}

function table(l: ReturnType<typeof listing>): string {
  if (l.pairs.length === 0) return 'no failed logins recorded';
  const head = ['SOURCE', 'NAME', 'FAILURES', 'SCORE', 'DELAY', 'LAST FAILURE'];
  const body = l.pairs.map((r) => [r.ip, r.user, String(r.failures), r.score.toFixed(1), seconds(r.delayMs), r.lastFailure]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cols: string[]) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(width[i]!))).join('  ');
  let out = [line(head), ...body.map(line)].join('\n');
  if (l.sources.length) {
    out += '\n\nSources slowed as a whole (every name):\n';
    out += l.sources.map((s) => `${s.ip}  ${s.names} names, score ${s.score.toFixed(1)}, delay ${seconds(s.delayMs)}`).join('\n');
  }
  return out;
}

/** ADDRESS and/or IP, in either order. */
function clearFilter(args: string[]): LoginFailureFilter {
  if (args.length > 2) throw new CliError('throttle clear takes at most an ADDRESS and an IP');
  const f: LoginFailureFilter = {};
  for (const a of args) {
    if (isSourceAddress(a)) {
      if (f.ip !== undefined) throw new CliError('throttle clear takes one IP');
      f.ip = sourceKey(a);
    } else {
      if (f.username !== undefined) throw new CliError(`"${a}" is not an IP address, and an ADDRESS was already given`);
      f.username = loginName(a);
    }
  }
  return f;
}

export async function throttleCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...args] = ctx.args;
  switch (sub) {
    case 'list': {
      if (args.length) throw new CliError('throttle list takes no arguments');
      const p = policyOf(ctx);
      const rows = await withStore(ctx, (s) => s.loginFailures.list());
      const l = listing(p, rows, Date.now());
      output(ctx, l, table(l));
      return 0;
    }
    case 'clear': {
      const f = clearFilter(args);
      const n = await withStore(ctx, (s) => s.loginFailures.clear(f));
      const what = [f.username, f.ip].filter(Boolean).join(' from ') || 'all';
      output(ctx, { cleared: n, ...f }, `cleared ${n} ${n === 1 ? 'entry' : 'entries'} (${what})`);
      return 0;
    }
    default:
      throw new CliError(sub ? `unknown throttle subcommand "${sub}"; see pillarbox throttle --help` : 'missing subcommand; see pillarbox throttle --help');
  }
}
