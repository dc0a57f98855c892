// Deterministic corpus of varied messages: plain text, HTML, multipart/alternative, multipart/mixed
// with attachments of various sizes, replies, and non-ASCII headers (RFC 2047 B and Q words).
// Message i of seed s is always the same bytes, so Pillarbox and the peer get identical mail.

export const SUBJECT_NEEDLE = 'invoice'; // in about 2% of subjects
export const BODY_NEEDLE = 'zanzibar'; // in about 1% of bodies

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her ' +
  'she all their there been one so we would if has when will more no out do into can time only up new some could these two may ' +
  'first then any like other over such our what about its also them than even most made after many must well back years where ' +
  'meeting report project budget schedule review release server mailbox update team quarter draft notes customer order shipment ' +
  'contract proposal design feedback deadline agenda minutes travel expense support ticket issue patch deploy backup migration ' +
  'network storage database index cache latency throughput memory session protocol message folder attachment calendar reminder'
).split(' ');

const FIRST = ['Alice', 'Bob', 'Carol', 'Dave', 'Erin', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy', 'Mallory', 'Niaj', 'Olivia', 'Peggy', 'Rupert', 'Sybil', 'Trent', 'Victor', 'Walter'];
const LAST = ['Smith', 'Jones', 'Taylor', 'Brown', 'Wilson', 'Evans', 'Thomas', 'Roberts', 'Walker', 'Wright', 'Green', 'Hall'];
// Non-ASCII names and subjects: encoded as RFC 2047 words in headers, raw UTF-8 in bodies.
const INTL_NAMES = ['José Núñez', 'Zoë Ångström', 'Jürgen Müller', 'François Lefèvre', '山田 太郎', 'Ольга Иванова', 'Σωκράτης Παππάς', 'Ærøskøbing Kunst'];
const INTL_SUBJECTS = ['Réunion de l’équipe', 'Grüße aus München', '会議の議事録', 'Отчёт за квартал', 'Café ☕ et croissants', 'Año nuevo, ¿planes?', 'Ελληνικά θέματα', 'Smörgåsbord på fredag'];
const DOMAINS = ['example.org', 'example.net', 'mail.example.com', 'corp.example', 'lists.example.org'];

export interface CorpusOptions {
  seed?: number;
  /** Upper bound on the body size in bytes (e.g. for the 100,000-message mailbox). */
  maxBytes?: number;
  /** Extra header lines (e.g. a unique X-Bench-Seq) added at the top. */
  extraHeaders?: string[];
  /** Recipient address (default a generic one). */
  to?: string;
}

export type Kind = 'plain' | 'html' | 'alternative' | 'attachment' | 'large-attachment';

export interface CorpusMessage {
  raw: Buffer;
  kind: Kind;
  subject: string;
}

function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)]!;
}

function words(r: () => number, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(pick(r, WORDS));
  return out.join(' ');
}

function paragraph(r: () => number, minWords: number, maxWords: number, needle: boolean): string {
  const n = minWords + Math.floor(r() * (maxWords - minWords));
  let s = words(r, n);
  if (needle) s = s.replace(/ /, ` ${BODY_NEEDLE} `);
  s = s.charAt(0).toUpperCase() + s.slice(1) + '.';
  // Wrap at 72 columns.
  const lines: string[] = [];
  let line = '';
  for (const w of s.split(' ')) {
    if (line.length + w.length + 1 > 72) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join('\r\n');
}

/** RFC 2047 encoded-word, B encoding (split into ≤75-char words). */
function encB(s: string): string {
  const out: string[] = [];
  let chunk = '';
  for (const ch of s) {
    const next = chunk + ch;
    if (Buffer.byteLength(next) > 45) {
      out.push(`=?UTF-8?B?${Buffer.from(chunk).toString('base64')}?=`);
      chunk = ch;
    } else chunk = next;
  }
  if (chunk) out.push(`=?UTF-8?B?${Buffer.from(chunk).toString('base64')}?=`);
  return out.join('\r\n ');
}

/** RFC 2047 encoded-word, Q encoding. */
function encQ(s: string): string {
  let q = '';
  for (const b of Buffer.from(s)) {
    if (b === 0x20) q += '_';
    else if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) q += String.fromCharCode(b);
    else q += '=' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return `=?UTF-8?Q?${q}?=`;
}

function qp(s: string): string {
  // Quoted-printable for UTF-8 text (RFC 2045 §6.7), soft line breaks at 76.
  const out: string[] = [];
  for (const line of s.split('\r\n')) {
    let cur = '';
    const bytes = Buffer.from(line);
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      let t: string;
      if ((b >= 33 && b <= 126 && b !== 61) || (b === 32 && i < bytes.length - 1)) t = String.fromCharCode(b);
      else t = '=' + b.toString(16).toUpperCase().padStart(2, '0');
      if (cur.length + t.length > 75) {
        out.push(cur + '=');
        cur = '';
      }
      cur += t;
    }
    out.push(cur);
  }
  return out.join('\r\n');
}

function b64lines(buf: Buffer): string {
  const s = buf.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < s.length; i += 76) lines.push(s.slice(i, i + 76));
  return lines.join('\r\n');
}

function binaryBlob(r: () => number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = Math.floor(r() * 0xffffffff) >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function person(r: () => number, intl: boolean): { display: string; addr: string } {
  const f = pick(r, FIRST);
  const l = pick(r, LAST);
  const addr = `${f.toLowerCase()}.${l.toLowerCase()}@${pick(r, DOMAINS)}`;
  if (intl) {
    const n = pick(r, INTL_NAMES);
    return { display: `${r() < 0.5 ? encB(n) : encQ(n)} <${addr}>`, addr };
  }
  return { display: `"${f} ${l}" <${addr}>`, addr };
}

function htmlOf(r: () => number, paras: string[]): string {
  const rows = paras.map((p) => `<p style="margin:0 0 12px 0">${p.replace(/\r\n/g, ' ')}</p>`);
  const table = r() < 0.4 ? `<table border="1"><tr><td>${words(r, 3)}</td><td>${Math.floor(r() * 1000)}</td></tr><tr><td>${words(r, 2)}</td><td>${Math.floor(r() * 1000)}</td></tr></table>` : '';
  const html = `<!DOCTYPE html>\r\n<html><head><meta charset="utf-8"><title>${words(r, 3)}</title></head>\r\n<body style="font-family:Arial,sans-serif">\r\n${rows.join('\r\n')}\r\n${table}\r\n</body></html>`;
  // Keep lines under 998 octets (RFC 5322 §2.1.1).
  return html.replace(/(.{1,900})(?: |$)/g, '$1\r\n').replace(/\r\n\r\n/g, '\r\n');
}

const BASE_DATE = Date.UTC(2024, 0, 1);

/** Message number `i` of the corpus for `seed`: always the same bytes. */
export function corpusMessage(i: number, opts: CorpusOptions = {}): CorpusMessage {
  const seed = opts.seed ?? 1;
  const r = mulberry32((seed * 2654435761 + i * 40503 + 12345) >>> 0);
  const roll = r();
  let kind: Kind = roll < 0.45 ? 'plain' : roll < 0.6 ? 'html' : roll < 0.81 ? 'alternative' : roll < 0.99 ? 'attachment' : 'large-attachment';
  const maxBytes = opts.maxBytes ?? Infinity;
  if (maxBytes < 200_000 && kind === 'large-attachment') kind = 'attachment';
  if (maxBytes < 12_000 && kind === 'attachment') kind = 'alternative';

  const intlSubject = r() < 0.15;
  const intlFrom = r() < 0.15;
  const from = person(r, intlFrom);
  const to = opts.to ?? person(r, false).display;
  const date = new Date(BASE_DATE + Math.floor(r() * 730 * 86400_000));
  let subject = intlSubject ? pick(r, INTL_SUBJECTS) : words(r, 3 + Math.floor(r() * 6));
  if (r() < 0.02) subject = `${SUBJECT_NEEDLE} ${subject}`;
  const reply = r() < 0.3;
  if (reply) subject = `Re: ${subject}`;
  subject = subject.charAt(0).toUpperCase() + subject.slice(1);
  const subjectHeader = intlSubject ? (r() < 0.5 ? encB(subject) : encQ(subject)) : subject;
  const needle = r() < 0.01;
  const msgId = `<${seed}.${i}.${Math.floor(r() * 1e9).toString(36)}@${pick(r, DOMAINS)}>`;

  const headers = [
    ...(opts.extraHeaders ?? []),
    `Return-Path: <${from.addr}>`,
    `Message-ID: ${msgId}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `From: ${from.display}`,
    `To: ${to}`,
    ...(r() < 0.2 ? [`Cc: ${person(r, false).display}, ${person(r, r() < 0.3).display}`] : []),
    `Subject: ${subjectHeader}`,
    ...(reply ? [`In-Reply-To: <${seed}.${Math.max(0, i - 1 - Math.floor(r() * 20))}@${pick(r, DOMAINS)}>`, `References: <${seed}.${Math.floor(r() * i + 1)}@${pick(r, DOMAINS)}>`] : []),
    'MIME-Version: 1.0',
    `X-Mailer: BenchMail ${1 + Math.floor(r() * 9)}.${Math.floor(r() * 10)}`,
  ];

  const nParas = kind === 'plain' ? 2 + Math.floor(r() * 8) : 2 + Math.floor(r() * 10);
  const paras: string[] = [];
  for (let p = 0; p < nParas; p++) paras.push(paragraph(r, 20, 90, needle && p === 0));
  if (intlSubject || intlFrom) paras.push(`${pick(r, INTL_SUBJECTS)} — ${pick(r, INTL_NAMES)}`);
  const text = paras.join('\r\n\r\n') + '\r\n\r\n-- \r\n' + from.display.replace(/<.*>/, '').trim() + '\r\n';
  const nonAscii = /[^\x00-\x7f]/.test(text);
  const textPart = (ct = 'text/plain') =>
    nonAscii
      ? `Content-Type: ${ct}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qp(text)}\r\n`
      : `Content-Type: ${ct}; charset=us-ascii; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${text}`;
  const htmlPart = () => `Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qp(htmlOf(r, paras))}\r\n`;
  const boundary = (n: number) => `----=_Part_${seed}_${i}_${n}_${Math.floor(r() * 1e6)}`;

  let body: string;
  let head = headers;
  if (kind === 'plain') {
    head = [...headers, ...textPart().split('\r\n\r\n')[0]!.split('\r\n')];
    body = textPart().slice(textPart().indexOf('\r\n\r\n') + 4);
  } else if (kind === 'html') {
    const h = htmlPart();
    head = [...headers, ...h.split('\r\n\r\n')[0]!.split('\r\n')];
    body = h.slice(h.indexOf('\r\n\r\n') + 4);
  } else {
    const b1 = boundary(1);
    const alt = `--${b1}\r\n${textPart()}\r\n--${b1}\r\n${htmlPart()}\r\n--${b1}--\r\n`;
    if (kind === 'alternative') {
      head = [...headers, `Content-Type: multipart/alternative; boundary="${b1}"`];
      body = `This is a multi-part message in MIME format.\r\n\r\n${alt}`;
    } else {
      const b0 = boundary(0);
      const parts: string[] = [`Content-Type: multipart/alternative; boundary="${b1}"\r\n\r\n${alt}`];
      const nAtt = kind === 'large-attachment' ? 1 : 1 + Math.floor(r() * 3);
      const cap = Math.min(maxBytes, kind === 'large-attachment' ? 1_000_000 : 80_000);
      for (let a = 0; a < nAtt; a++) {
        const size =
          kind === 'large-attachment' ? 300_000 + Math.floor(r() * 700_000) : 1_000 + Math.floor(Math.pow(r(), 2) * 60_000);
        const raw = binaryBlob(r, Math.max(200, Math.min(size, Math.floor((cap * 0.7) / nAtt))));
        const types = [
          ['application/pdf', 'pdf'],
          ['image/png', 'png'],
          ['image/jpeg', 'jpg'],
          ['application/zip', 'zip'],
          ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'docx'],
        ] as const;
        const [ct, ext] = pick(r, types);
        const intlName = r() < 0.2;
        const fname = intlName ? `Übersicht ${a + 1}.${ext}` : `${pick(r, WORDS)}-${a + 1}.${ext}`;
        const disp = intlName ? `attachment; filename*=UTF-8''${encodeURIComponent(fname)}` : `attachment; filename="${fname}"`;
        parts.push(`Content-Type: ${ct}; name="${intlName ? encB(fname) : fname}"\r\nContent-Disposition: ${disp}\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64lines(raw)}\r\n`);
      }
      if (r() < 0.2) {
        parts.push(`Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\nFrom: ${person(r, false).display}\r\nSubject: ${words(r, 4)}\r\nDate: ${date.toUTCString()}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${paragraph(r, 10, 30, false)}\r\n`);
      }
      head = [...headers, `Content-Type: multipart/mixed; boundary="${b0}"`];
      body = `This is a multi-part message in MIME format.\r\n\r\n${parts.map((p) => `--${b0}\r\n${p}`).join('\r\n')}\r\n--${b0}--\r\n`;
    }
  }
  let raw = Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`);
  if (raw.length > maxBytes) {
    // Trim to the limit on a line boundary for single-part messages (rare: only very long plain ones).
    const cut = raw.lastIndexOf('\r\n', maxBytes - 2);
    if (cut > 0 && (kind === 'plain' || kind === 'html')) raw = Buffer.concat([raw.subarray(0, cut), Buffer.from('\r\n')]);
  }
  return { raw, kind, subject };
}

/** The ~2,000-message corpus (cached per seed and count). */
const cache = new Map<string, CorpusMessage[]>();
export function corpus(count = 2000, seed = 1): CorpusMessage[] {
  const key = `${count}:${seed}`;
  let c = cache.get(key);
  if (!c) {
    c = [];
    for (let i = 0; i < count; i++) c.push(corpusMessage(i, { seed }));
    cache.set(key, c);
  }
  return c;
}

/** A message of roughly `size` bytes of plain text (SMTP ingest, push latency). */
export function sizedMessage(size: number, opts: { seed?: number; i?: number; to?: string; from?: string; subject?: string } = {}): Buffer {
  const r = mulberry32(((opts.seed ?? 7) * 7919 + (opts.i ?? 0)) >>> 0);
  const head = [
    `From: ${opts.from ?? '"Bench Sender" <sender@example.org>'}`,
    `To: ${opts.to ?? '<user@example.com>'}`,
    `Subject: ${opts.subject ?? words(r, 5)}`,
    `Date: ${new Date(BASE_DATE).toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  let body = '';
  while (head.length + body.length < size) body += paragraph(r, 40, 80, false) + '\r\n\r\n';
  return Buffer.from(head + body.slice(0, Math.max(0, size - head.length)).replace(/\r$/, '') + '\r\n');
}

export function corpusStats(c: CorpusMessage[]): Record<string, unknown> {
  const byKind: Record<string, number> = {};
  let bytes = 0;
  let max = 0;
  for (const m of c) {
    byKind[m.kind] = (byKind[m.kind] ?? 0) + 1;
    bytes += m.raw.length;
    max = Math.max(max, m.raw.length);
  }
  return { messages: c.length, bytes, meanBytes: Math.round(bytes / Math.max(1, c.length)), maxBytes: max, byKind, nonAsciiHeaders: c.filter((m) => /=\?UTF-8\?/.test(m.raw.subarray(0, 4000).toString('latin1'))).length };
}
