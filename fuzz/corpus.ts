// The fuzzer's corpus: valid sessions and messages in fuzz/corpus/<protocol>/, read into segments
// the mutators work on.
//
// Session files (imap, pop3, smtp): one protocol line per text line, sent with CRLF. Lines starting
// with `#!` are directives: `#!port submission` (which listener; default the protocol's plain one),
// `#!end` (ends a literal). A line ending in `{#}`, `{#+}` or `~{#}` is followed by the literal's
// lines up to `#!end`; `#` becomes the literal's length in bytes (each literal line ends in CRLF).
// In SMTP sessions the lines after `DATA` up to `.` are the message (kind 'data').
// Placeholders: {{USER}} {{PASS}} {{ADDR}} (the fuzz account), {{PLAIN}} (SASL PLAIN of it, base64),
// {{MSG}} (a small message, several lines). MIME files (.eml) are used as they are.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Protocol = 'imap' | 'pop3' | 'smtp' | 'mime';

export type SegmentKind = 'line' | 'literal' | 'data';
export interface Segment {
  kind: SegmentKind;
  bytes: Buffer;
}

export interface CorpusSession {
  name: string;
  /** Which listener: 'imap', 'pop3', 'smtp' or 'submission'. */
  port: string;
  /** The template's lines (placeholders not yet filled). */
  lines: string[];
}

export interface Account {
  user: string;
  pass: string;
}

export const CORPUS_DIR = new URL('./corpus/', import.meta.url).pathname;

const SAMPLE_MSG = [
  'From: Alice <alice@example.test>',
  'To: {{ADDR}}',
  'Subject: =?UTF-8?Q?fuzz_corpus_m=C3=A9ssage?=',
  'Date: Sat, 21 Nov 2026 10:00:00 +0000',
  'Message-ID: <fuzz.1@example.test>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="zz"',
  '',
  '--zz',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'hello fuzz world',
  '--zz',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>hello <b>fuzz</b> world<!-- c --></p>',
  '--zz--',
];

export function loadSessions(protocol: Exclude<Protocol, 'mime'>, dir = CORPUS_DIR): CorpusSession[] {
  const d = join(dir, protocol);
  return readdirSync(d)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => {
      const lines = readFileSync(join(d, f), 'utf8').replace(/\r/g, '').split('\n');
      if (lines.at(-1) === '') lines.pop();
      const portLine = lines.find((l) => l.startsWith('#!port '));
      return { name: `${protocol}/${f}`, port: portLine ? portLine.slice(7).trim() : protocol, lines: lines.filter((l) => !l.startsWith('#!port ')) };
    });
}

export function loadMessages(dir = CORPUS_DIR): Array<{ name: string; bytes: Buffer }> {
  const d = join(dir, 'mime');
  return readdirSync(d)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => ({ name: `mime/${f}`, bytes: Buffer.from(readFileSync(join(d, f), 'latin1').replace(/\r?\n/g, '\r\n'), 'latin1') }));
}

function fill(line: string, acc: Account): string[] {
  if (line === '{{MSG}}') return SAMPLE_MSG.map((l) => fill(l, acc)[0]!);
  const plain = Buffer.from(`\0${acc.user}\0${acc.pass}`).toString('base64');
  return [line.replaceAll('{{USER}}', acc.user).replaceAll('{{PASS}}', acc.pass).replaceAll('{{ADDR}}', acc.user).replaceAll('{{PLAIN}}', plain)];
}

/** A session template made concrete for one account: the segments as sent. */
export function expand(s: CorpusSession, acc: Account, protocol: Protocol): Segment[] {
  const out: Segment[] = [];
  const lines = s.lines.flatMap((l) => fill(l, acc));
  let inData = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('#!')) continue;
    const lit = /(~?)\{#(\+?)\}$/.exec(line); // linear: anchored, fixed shape, corpus text only
    if (lit && protocol === 'imap') {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== '#!end'; i++) body.push(lines[i]! + '\r\n');
      const data = Buffer.from(body.join(''), 'utf8');
      out.push({ kind: 'line', bytes: Buffer.from(line.slice(0, lit.index) + `${lit[1]}{${data.length}${lit[2]}}\r\n`, 'utf8') });
      out.push({ kind: 'literal', bytes: data });
      continue;
    }
    const kind: SegmentKind = inData && line !== '.' ? 'data' : 'line';
    out.push({ kind, bytes: Buffer.from(line + '\r\n', 'utf8') });
    if (protocol === 'smtp' && /^data$/i.test(line)) inData = true;
    if (line === '.') inData = false;
  }
  return out;
}
