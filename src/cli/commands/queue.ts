// `pillarbox queue list|show|retry|delete|flush`: the outbound queue (store.queue, src/store/queue.ts)
// seen and steered from the admin side. The running server claims due recipients at its next poll,
// so a retry or flush is picked up without talking to it; a delete removes the message and its
// recipients at once (one already handed to a remote server in that moment is still delivered).

import type { QueueMessage, QueueRecipient } from '../../store/queue.ts';
import type { Store } from '../../store/store.ts';
import { CliError, output, withStore, type CommandContext } from '../context.ts';

export const QUEUE_HELP = `Usage: pillarbox queue list [--limit N] [--json]
       pillarbox queue show ID [--json]
       pillarbox queue retry ID | --all
       pillarbox queue delete ID
       pillarbox queue flush

Mail waiting to go to other servers, one line per recipient: its state (queued until delivered,
failed or expired), attempts so far, when the next one is due and the last reply received.

  list                  queued messages, oldest first (the first 1000; --limit N for more or fewer)
  show ID               one message in full (envelope, DSN options, every recipient)
  retry ID              try that message's waiting recipients now
  retry --all           try every waiting recipient now (same as flush)
  delete ID             drop the message without sending it further (no bounce is sent)
  flush                 try every waiting recipient now; the server picks them up at its next poll

Options: --data DIR, --database URL, --json
`;

const PAGE = 500;
const MAX_LIST = 1_000_000;

/** "45s", "12m", "3h05m", "2d04h". */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** A remote reply on one terminal line: control characters (CR LF between reply lines too) become spaces. */
function oneLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

function when(now: number, at: number): string {
  return at <= now ? 'due now' : `next in ${span(at - now)}`;
}

function recipientLine(r: QueueRecipient, now: number): string {
  const tries = `${r.attempts} attempt${r.attempts === 1 ? '' : 's'}`;
  const next = r.state === 'queued' ? when(now, r.nextAttemptAt) : '-';
  const reply = r.lastReply ? `  ${oneLine(r.lastReply)}` : '';
  return `    ${r.address}  ${r.state}  ${tries}  ${next}${reply}`;
}

function messageHead(m: QueueMessage, now: number): string {
  const from = m.mailFrom === '' ? '<>' : `<${m.mailFrom}>`;
  return `${m.id}  age ${span(now - m.createdAt)}  from ${from}  (${m.origin}, ${m.size} bytes)`;
}

function asJson(m: QueueMessage, now: number) {
  // The prefix (DKIM-Signature fields, ~1 KB) only as whether there is one.
  const { prefix, ...rest } = m;
  return { ...rest, signed: prefix !== '', ageSeconds: Math.max(0, Math.round((now - m.createdAt) / 1000)) };
}

async function listAll(s: Store, limit: number): Promise<{ messages: QueueMessage[]; more: boolean }> {
  const messages: QueueMessage[] = [];
  let after: string | undefined;
  while (messages.length < limit) {
    const want = Math.min(PAGE, limit - messages.length);
    const page = await s.queue.list({ limit: want, ...(after ? { afterId: after } : {}) });
    messages.push(...page);
    if (page.length < want) return { messages, more: false };
    after = page.at(-1)!.id;
  }
  return { messages, more: (await s.queue.list({ limit: 1, ...(after ? { afterId: after } : {}) })).length > 0 };
}

function parseLimit(v: string | boolean | undefined): number {
  if (v === undefined) return 1000;
  const n = typeof v === 'string' && /^[0-9]{1,7}$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIST) throw new CliError(`--limit takes a number from 1 to ${MAX_LIST}`);
  return n;
}

async function list(ctx: CommandContext): Promise<number> {
  if (ctx.args.length > 1) throw new CliError('queue list takes no arguments');
  const limit = parseLimit(ctx.flags.limit);
  const now = Date.now();
  const { stats, messages, more } = await withStore(ctx, async (s) => ({ stats: await s.queue.stats(now), ...(await listAll(s, limit)) }));
  const lines: string[] = [];
  if (stats.messages === 0) lines.push('the queue is empty');
  else {
    const due = stats.nextDueAt === null ? '' : `; ${when(now, stats.nextDueAt)}`;
    lines.push(`${stats.messages} message${stats.messages === 1 ? '' : 's'}, ${stats.recipients} recipient${stats.recipients === 1 ? '' : 's'} waiting${due}`);
    for (const m of messages) lines.push(messageHead(m, now), ...m.recipients.map((r) => recipientLine(r, now)));
    if (more) lines.push(`… more messages not shown (--limit ${limit})`);
  }
  output(ctx, { ...stats, more, messages: messages.map((m) => asJson(m, now)) }, lines.join('\n'));
  return 0;
}

function needId(ctx: CommandContext, sub: string): string {
  const id = ctx.args[1];
  if (!id || ctx.args.length > 2) throw new CliError(`queue ${sub} takes one message ID (see pillarbox queue list)`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new CliError(`"${id}" is not a queue message ID`);
  return id;
}

async function show(ctx: CommandContext): Promise<number> {
  const id = needId(ctx, 'show');
  const now = Date.now();
  const m = await withStore(ctx, (s) => s.queue.get(id));
  if (!m) throw new CliError(`no queued message ${id}`);
  const text = [
    messageHead(m, now),
    `  created   ${new Date(m.createdAt).toISOString()}`,
    `  expires   ${new Date(m.expiresAt).toISOString()}${m.expiresAt <= now ? ' (expired)' : ` (in ${span(m.expiresAt - now)})`}`,
    `  account   ${m.accountId ?? '-'}`,
    `  envid     ${m.envid ?? '-'}   ret ${m.ret ?? '-'}`,
    `  body      ${m.blob.id}${m.prefix ? ' (sent with its DKIM-Signature fields in front)' : ''}`,
    '  recipients:',
    ...m.recipients.map((r) => {
      const last = r.lastAttemptAt === null ? 'never tried' : `last tried ${span(now - r.lastAttemptAt)} ago`;
      return `${recipientLine(r, now)}\n      ${last}${r.delayWarned ? ', delay warning sent' : ''}${r.orcpt ? `, ORCPT ${r.orcpt}` : ''}`;
    }),
  ];
  output(ctx, asJson(m, now), text.join('\n'));
  return 0;
}

async function retryAll(ctx: CommandContext): Promise<number> {
  const n = await withStore(ctx, (s) => s.queue.retry(null, Date.now()));
  output(ctx, { retried: n }, `${n} recipient${n === 1 ? '' : 's'} due now; the server picks them up at its next poll`);
  return 0;
}

export async function queueCommand(ctx: CommandContext): Promise<number> {
  const sub = ctx.args[0];
  switch (sub) {
    case 'list':
      return list(ctx);
    case 'show':
      return show(ctx);
    case 'retry': {
      if (ctx.flags.all) {
        if (ctx.args.length > 1) throw new CliError('queue retry takes an ID or --all, not both');
        return retryAll(ctx);
      }
      const id = needId(ctx, 'retry');
      const r = await withStore(ctx, async (s) => ((await s.queue.get(id)) ? await s.queue.retry(id, Date.now()) : null));
      if (r === null) throw new CliError(`no queued message ${id}`);
      output(ctx, { id, retried: r }, `${id}: ${r} recipient${r === 1 ? '' : 's'} due now`);
      return 0;
    }
    case 'delete': {
      const id = needId(ctx, 'delete');
      if (!(await withStore(ctx, (s) => s.queue.remove(id)))) throw new CliError(`no queued message ${id}`);
      output(ctx, { id, deleted: true }, `${id} deleted`);
      return 0;
    }
    case 'flush':
      if (ctx.args.length > 1) throw new CliError('queue flush takes no arguments');
      return retryAll(ctx);
    default:
      throw new CliError(sub ? `unknown queue subcommand "${sub}"; see pillarbox queue --help` : 'missing subcommand; see pillarbox queue --help');
  }
}
