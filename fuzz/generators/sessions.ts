// Inputs for the network protocols (IMAP, POP3, SMTP): a corpus session, the generic mutations
// plus the protocol's own (IMAP literal sizes incl. {n+} past 2^53, deep parentheses, huge
// sequence sets; POP3 numbers; SMTP DATA shapes, many recipients, parameters).

import type { Prng } from '../prng.ts';
import { expand, type Account, type CorpusSession, type Protocol, type Segment } from '../corpus.ts';
import { chooseMode, mutateGeneric, MAX_INPUT, totalBytes, type FuzzInput } from './mutate.ts';

const TOKENS: Record<string, readonly string[]> = {
  imap: [' ', '(', ')', '{', '}', '{0}', '{1+}', '~{5}', '"', '\\', '*', '%', '1:*', '$', ' NIL', ' BODY[', ']', '<0.1>', '.PEEK', ' UID', ' (CHANGEDSINCE 1)', ' RETURN (', ' CHARSET UTF-8', '\r\n', '\n', '\r', 'DONE\r\n', '&', '&-', '&AOk', '\0'],
  pop3: [' ', '\r\n', '\n', '\r', ' 1', ' 0', ' -1', ' 99999999999999999999', 'AUTH PLAIN\r\n', '=', '*\r\n', 'recent:', '\0', '+'],
  smtp: [' ', '\r\n', '\n', '\r', '\r\n.\r\n', '\n.\n', '..', '<', '>', '@', ':', ' SIZE=', '99999999999999999999', ' BODY=BINARYMIME', ' SMTPUTF8', 'DATA\r\n', 'BDAT 10 LAST\r\n', '"', '\\', '\0', 'é'],
};

/** IMAP literal announcements a client can send (RFC 9051 §4.3, RFC 7888). */
function literalSize(r: Prng): string {
  const n = r.pick(['0', '1', '8192', '8193', '65535', '65537', '4294967296', '9007199254740993', '42944294967295967296', '-1', '', 'x', '1'.repeat(r.size(400))]);
  return r.pick(['{', '~{']) + n + r.pick(['}', '+}', '-}', '']);
}

function imapOwn(r: Prng, segs: Segment[], notes: string[]): void {
  const lines = segs.map((s, i) => ({ s, i })).filter(({ s }) => s.kind === 'line');
  if (!lines.length) return;
  const { i } = r.pick(lines);
  let text = segs[i]!.bytes.toString('latin1').replace(/\r\n$/, '');
  const op = r.int(0, 4);
  if (op === 0) {
    // A literal of a random size; its data as sent, or none, or more.
    const lit = literalSize(r);
    const data = r.chance(0.5) ? Buffer.alloc(Math.min(r.size(1 << 20), MAX_INPUT - totalBytes(segs)), 0x61) : Buffer.alloc(0);
    segs.splice(i, 1, { kind: 'line', bytes: Buffer.from(`${text} ${lit}\r\n`, 'latin1') }, { kind: 'literal', bytes: data });
    notes.push(`literal ${lit} + ${data.length} bytes after #${i}`);
    return;
  }
  if (op === 1) {
    const d = r.size(100_000);
    const at = r.int(0, text.length);
    text = text.slice(0, at) + '('.repeat(d) + (r.chance(0.7) ? ')'.repeat(d) : '') + text.slice(at);
    notes.push(`${d} nested parentheses in #${i}`);
  } else if (op === 2) {
    const n = r.size(200_000);
    text = `${text.split(' ')[0]} ${r.pick(['FETCH', 'UID FETCH', 'STORE', 'SEARCH', 'UID COPY'])} ${Array.from({ length: Math.min(n, 50_000) }, (_, k) => (k % 3 ? `${k}:${k + 2}` : `${k}`)).join(',')} ${r.pick(['(FLAGS)', '+FLAGS (\\Seen)', 'ALL', 'INBOX', '(BODY.PEEK[HEADER])'])}`;
    notes.push(`sequence set of ${Math.min(n, 50_000)} ranges in #${i}`);
  } else if (op === 3) {
    const n = r.size(5_000);
    text = `${text.split(' ')[0]} SEARCH ${'OR ALL '.repeat(n)}ALL`;
    notes.push(`SEARCH with ${n} ORs in #${i}`);
  } else {
    const pat = Array.from({ length: r.size(400) }, () => r.pick(['%', '*', 'a', '/', '.'])).join('');
    text = `${text.split(' ')[0]} ${r.pick(['LIST', 'LSUB', 'CREATE', 'LIST (SUBSCRIBED)'])} "" "${pat}"`;
    notes.push(`pattern ${pat.length} chars in #${i}`);
  }
  segs[i] = { kind: 'line', bytes: Buffer.from(text + '\r\n', 'latin1') };
}

function pop3Own(r: Prng, segs: Segment[], notes: string[]): void {
  const cmd = r.pick(['RETR', 'TOP', 'LIST', 'UIDL', 'DELE', 'STAT', 'NOOP', 'AUTH PLAIN', 'USER', 'PASS', 'STLS', 'CAPA', 'APOP', 'RSET']);
  const args = Array.from({ length: r.int(0, 3) }, () => r.pick(['1', '0', '2', '-1', '99999999999999999999', '1e3', 'x'.repeat(r.size(2000)), '=']));
  const line = `${cmd}${args.length ? ' ' + args.join(' ') : ''}\r\n`;
  segs.splice(r.int(0, segs.length), 0, { kind: 'line', bytes: Buffer.from(line) });
  notes.push(`insert ${JSON.stringify(line.slice(0, 60))}`);
}

function smtpOwn(r: Prng, segs: Segment[], notes: string[]): void {
  const op = r.int(0, 3);
  const at = r.int(0, segs.length);
  if (op === 0) {
    const n = r.size(2_000);
    const rcpts = Array.from({ length: n }, (_, k) => ({ kind: 'line' as const, bytes: Buffer.from(`RCPT TO:<r${k}@${k % 2 ? 'elsewhere.test' : 'example.test'}>\r\n`) }));
    const tail = segs.splice(at);
    for (const x of [...rcpts, ...tail]) segs.push(x);
    notes.push(`${n} RCPTs at #${at}`);
  } else if (op === 1) {
    // A message body with a hostile header: a run of blanks, many fields, deep comments.
    const unit = r.pick([' ', '(', 'X-A: b\r\n', '=?utf-8?q?a?= ', 'a,', '\t\r\n ']);
    const n = Math.min(r.size(400_000), Math.floor((MAX_INPUT - totalBytes(segs)) / unit.length));
    const body = `Subject: x${unit.repeat(n)}\r\nFrom: a@b\r\n\r\nbody\r\n`;
    segs.splice(at, 0, { kind: 'line', bytes: Buffer.from('DATA\r\n') }, { kind: 'data', bytes: Buffer.from(body, 'latin1') }, { kind: 'line', bytes: Buffer.from('.\r\n') });
    notes.push(`DATA with ${JSON.stringify(unit)}×${n} at #${at}`);
  } else if (op === 2) {
    const p = r.pick(['SIZE=99999999999999999999', 'SIZE=-1', 'BODY=8BITMIME', 'SMTPUTF8', 'RET=HDRS', 'ENVID=' + 'x'.repeat(r.size(3000)), 'AUTH=<>', 'X=' + '='.repeat(r.size(1000))]);
    segs.splice(at, 0, { kind: 'line', bytes: Buffer.from(`MAIL FROM:<p@elsewhere.test> ${p}\r\n`) });
    notes.push(`MAIL FROM with ${p.slice(0, 40)} at #${at}`);
  } else {
    const line = r.pick(['AUTH PLAIN', 'AUTH LOGIN', 'STARTTLS', 'BDAT 5 LAST', 'XCLIENT ADDR=1.2.3.4', 'EXPN list', 'ETRN x', 'TURN']);
    segs.splice(at, 0, { kind: 'line', bytes: Buffer.from(line + '\r\n') });
    notes.push(`insert ${line} at #${at}`);
  }
}

const OWN: Record<string, (r: Prng, segs: Segment[], notes: string[]) => void> = { imap: imapOwn, pop3: pop3Own, smtp: smtpOwn };

/** One fuzz input for a network protocol, from the input's own generator. */
export function makeSessionInput(r: Prng, protocol: Exclude<Protocol, 'mime'>, corpus: readonly CorpusSession[], acc: Account): FuzzInput {
  const base = r.pick(corpus);
  const segs = expand(base, acc, protocol);
  const other = expand(r.pick(corpus), acc, protocol);
  const notes = [base.name];
  // A few inputs go unmutated (the corpus must keep working), most get one to four mutations.
  const count = r.chance(0.05) ? 0 : r.size(4);
  for (let k = 0; k < count; k++) {
    if (r.chance(0.4)) OWN[protocol]!(r, segs, notes);
    else mutateGeneric(r, segs, other, TOKENS[protocol]!, notes, 1);
  }
  const { mode, closeAfter } = chooseMode(r, segs, notes);
  return { protocol, port: base.port, segments: segs, mode, closeAfter, notes };
}
