// A deterministic corpus of real-looking discussion threads for the SORT/THREAD oracle test
// (dovecot-sort.test.ts): replies with References and/or In-Reply-To (some truncated, some with
// text after the id), Re:/Fwd:/[list] subjects, parents never delivered, duplicate and missing
// Message-IDs, dates in several zones, identical dates, missing and unparseable dates, display
// names (quoted, RFC 2047-encoded, absent), groups, and identical INTERNALDATEs.
import { mulberry32 } from '../../../bench/lib/corpus.ts';

export interface CorpusItem {
  raw: string;
  /** INTERNALDATE for APPEND (IMAP date-time). */
  internal: string;
}

const WORDS = 'budget meeting release notes server outage lunch plans review draft agenda travel invoice patch backup report'.split(' ');
const PEOPLE: Array<[string | null, string]> = [
  ['Alice Smith', 'alice@example.org'],
  ['"Bob, Jr."', 'bob@example.net'],
  [null, 'carol@example.com'],
  ['=?utf-8?q?Zo=C3=AB_=C3=85ngstr=C3=B6m?=', 'zoe@example.se'],
  ['Dave', 'dave@lists.example.org'],
  ['=?utf-8?b?5bGx55SwIOWkqumDjg==?=', 'yamada@example.jp'],
  ['erin', 'Erin@Example.org'],
  [null, 'frank@example.com'],
];
// Non-ASCII subjects (RFC 2047): accents, ß, Cyrillic, CJK, a Latin digraph, fullwidth forms.
const INTL = [
  '=?utf-8?q?R=C3=A9union_budget?=',
  '=?utf-8?q?reunion_budget?=',
  '=?utf-8?q?=C3=84rger_im_B=C3=BCro?=',
  '=?utf-8?q?Stra=C3=9Fe_gesperrt?=',
  '=?utf-8?b?0J7RgtGH0ZHRgiDQt9CwINC60LLQsNGA0YLQsNC7?=',
  '=?utf-8?b?5Lya6K2w44Gu6K2w5LqL6Yyy?=',
  '=?utf-8?b?x4Zhbm8gcGxhbg==?=',
  '=?utf-8?b?77yi77yV77yk77yH77yF?=',
];
const ZONES = ['+0000', '-0700', '+0200', '+0530', '-1100', '+1300'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

const pad = (n: number) => String(n).padStart(2, '0');

/** RFC 5322 date of UTC ms `t` written in zone `z` (±hhmm). */
function rfc5322(t: number, z: string): string {
  const off = (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(3))) * 60_000;
  const d = new Date(t + off);
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${z}`;
}

/** IMAP date-time of UTC ms `t`. */
function imapDate(t: number): string {
  const d = new Date(t);
  return `${pad(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

const addr = ([name, a]: [string | null, string]) => (name ? `${name} <${a}>` : a);

interface Sent {
  id: string;
  refs: string[];
  base: string;
}

export function threadCorpus(n = 300, seed = 7): CorpusItem[] {
  const r = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const out: CorpusItem[] = [];
  const sent: Sent[] = [];
  const base = Date.UTC(2024, 2, 1);
  let lastDate = base;
  for (let i = 0; i < n; i++) {
    const lines: string[] = [];
    const from = pick(PEOPLE);
    lines.push(`From: ${addr(from)}`);
    const toRoll = r();
    if (toRoll < 0.08) lines.push('To: undisclosed-recipients:;');
    else if (toRoll < 0.9) lines.push(`To: ${addr(pick(PEOPLE))}${r() < 0.3 ? `, ${addr(pick(PEOPLE))}` : ''}`);
    if (r() < 0.3) lines.push(`Cc: ${addr(pick(PEOPLE))}`);
    // Thread position: a new thread, or a reply to one of the last 40 messages.
    const reply = sent.length > 0 && r() < 0.65;
    let subject: string;
    let refs: string[] = [];
    const id = r() < 0.03 && sent.length ? pick(sent).id : `m${i}.${seed}@example.org`;
    if (reply) {
      const parent = sent[Math.max(0, sent.length - 1 - Math.floor(r() * 40))]!;
      const chain = [...parent.refs, parent.id];
      const how = r();
      if (how < 0.5) lines.push(`References: ${chain.map((x) => `<${x}>`).join(' ')}`);
      else if (how < 0.65) lines.push(`References: <${chain[0]}> <${chain[chain.length - 1]}>`); // truncated
      else if (how < 0.85) lines.push(`In-Reply-To: <${parent.id}>`);
      else if (how < 0.93) lines.push(`In-Reply-To: <${parent.id}> (${pick(PEOPLE)[1]}'s message of today)`);
      else lines.push(`In-Reply-To: <${parent.id}>`, `References: <${chain[chain.length - 1]}>`);
      refs = chain;
      const pre = pick(['Re: ', 'RE: ', 'Re: Re: ', 'Fwd: ', 'Re[2]: ', '[list] Re: ', 'Re: [list] ', 'AW: ', '']);
      subject = pre + (r() < 0.1 ? `[Fwd: ${parent.base}]` : parent.base) + (r() < 0.05 ? ' (fwd)' : '');
      sent.push({ id, refs, base: parent.base });
    } else {
      const roll = r();
      const b = roll < 0.05 ? '' : roll < 0.16 ? pick(INTL) : `${pick(WORDS)} ${pick(WORDS)}${r() < 0.2 ? ` ${i}` : ''}`;
      subject = (r() < 0.15 ? '[list] ' : '') + b;
      sent.push({ id, refs: [], base: b });
    }
    lines.push(`Subject: ${subject}`);
    // Dates: mostly increasing with zones; some identical to the previous one; some missing or junk.
    const dr = r();
    const t = dr < 0.1 ? lastDate : base + i * 3_600_000 + Math.floor(r() * 7_200_000) - 3_600_000;
    lastDate = t;
    if (dr > 0.97) {
      // no Date: header
    } else if (dr > 0.95) lines.push('Date: yesterday afternoon');
    else lines.push(`Date: ${rfc5322(Math.floor(t / 1000) * 1000, pick(ZONES))}`);
    if (r() > 0.04) lines.push(`Message-ID: <${id}>`);
    lines.push('MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `Message ${i}.`, 'x'.repeat(Math.floor(r() * 400)), '');
    // Parents that never arrive: about one message in twelve is written but not delivered.
    if (r() < 0.08) continue;
    const internal = r() < 0.1 && out.length ? out[out.length - 1]!.internal : imapDate(base + 86_400_000 * 40 + Math.floor(r() * 86_400_000 * 10));
    out.push({ raw: lines.join('\r\n'), internal });
  }
  return out;
}
