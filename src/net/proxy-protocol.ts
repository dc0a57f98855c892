// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): what a proxy such as
// HAProxy (`send-proxy`, `send-proxy-v2`) puts in front of a connection so the server learns the
// client's address. Pure: bytes in, a verdict out; the listener (src/net/listener.ts) does the I/O.
//
// Linear time and bounded memory: ProxyHeaderReader copies each byte once into a buffer of at most
// `maxBytes` and looks at each byte a bounded number of times (v1: the line is at most 107 bytes;
// v2: the 16-byte fixed part gives the length, the rest is waited for, TLVs are skipped unread).
// No RegExp. A mismatch is reported at the first wrong byte ("abort the connection as soon as
// possible", §2.1), so a client speaking SMTP or TLS to a PROXY listener is told off at once.

/** Where the header says the connection came from. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  /** The connection was relayed for a client (v1 TCP4/TCP6, v2 PROXY over TCP/IPv4 or IPv6). */
  | { version: 1 | 2; command: 'proxy'; family: 'tcp4' | 'tcp6'; source: ProxyEndpoint; destination: ProxyEndpoint }
  /**
   * Use the socket's own addresses: v2 LOCAL (the proxy's health checks, §2.2), v1 UNKNOWN
   * (§2.1: "use the real connection's parameters"), and v2 PROXY with a family or transport we
   * don't take addresses from (UNSPEC, UNIX, UDP: §2.2 "falls back to the UNSPEC mode").
   */
  | { version: 1 | 2; command: 'local'; reason: 'local' | 'unknown' | 'unspec' | 'unix' | 'dgram' };

export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'header'; header: ProxyHeader; /** Bytes of the header; what follows is the client's. */ length: number }
  | { kind: 'invalid'; reason: string };

/** §2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN <v6> <v6> 65535 65535\r\n"). */
export const V1_MAX_LINE = 107;
/** §2.2: the fixed part of a v2 header (signature, version/command, family, length). */
export const V2_FIXED = 16;
/** §2.2: a v2 header with UNIX addresses (2 × 108 bytes) and no TLV; the smallest cap we accept. */
export const V2_MIN_CAP = V2_FIXED + 216;

/** §2.2: the v2 signature, "\r\n\r\n\0\r\nQUIT\n". */
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** §2.1: "PROXY " (the protocol name and exactly one space). */
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];

/**
 * Parses the header at the start of `buf` (the bytes received so far). `maxBytes` caps the whole
 * header: a v2 header announcing more is invalid as soon as its length field arrives.
 * `scanFrom` (ProxyHeaderReader) is where the v1 CRLF search may resume.
 */
export function parseProxyHeader(buf: Uint8Array, maxBytes: number, scanFrom = 0): ProxyParse {
  if (buf.length === 0) return { kind: 'incomplete' };
  if (buf[0] === 0x0d) return parseV2(buf, maxBytes);
  if (buf[0] === 0x50) return parseV1(buf, scanFrom);
  return { kind: 'invalid', reason: 'not-proxy' };
}

// ------------------------------------------------------------------------------------- version 1

function parseV1(buf: Uint8Array, scanFrom: number): ProxyParse {
  const n = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V1_PREFIX[i]) return { kind: 'invalid', reason: 'not-proxy' };
  // §2.1: the line ends at the first CRLF; a lone CR or LF is not tolerated. The CR may be at
  // index 105 at most (a 107-byte line), whether the bytes came at once or one by one.
  const limit = Math.min(buf.length, V1_MAX_LINE - 1);
  let end = -1;
  for (let i = Math.max(V1_PREFIX.length, scanFrom); i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0a) return { kind: 'invalid', reason: 'v1-bare-lf' };
    if (c === 0x0d) {
      if (i + 1 >= buf.length) break; // the LF may still come
      if (buf[i + 1] !== 0x0a) return { kind: 'invalid', reason: 'v1-bare-cr' };
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return { kind: 'invalid', reason: 'v1-not-ascii' };
  }
  if (end < 0) return buf.length >= V1_MAX_LINE ? { kind: 'invalid', reason: 'v1-too-long' } : { kind: 'incomplete' };
  const length = end + 2;
  const fields = latin1(buf, V1_PREFIX.length, end).split(' ');
  const proto = fields[0];
  // §2.1: with UNKNOWN the receiver ignores the rest of the line.
  if (proto === 'UNKNOWN') return { kind: 'header', header: { version: 1, command: 'local', reason: 'unknown' }, length };
  if (proto !== 'TCP4' && proto !== 'TCP6') return { kind: 'invalid', reason: 'v1-protocol' };
  if (fields.length !== 5) return { kind: 'invalid', reason: 'v1-fields' };
  const [, src, dst, sport, dport] = fields as [string, string, string, string, string];
  const parseAddr = proto === 'TCP4' ? parseIPv4 : parseIPv6Text;
  const s = parseAddr(src);
  const d = parseAddr(dst);
  if (!s || !d) return { kind: 'invalid', reason: 'v1-address' };
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp < 0 || dp < 0) return { kind: 'invalid', reason: 'v1-port' };
  const family = proto === 'TCP4' ? 'tcp4' : 'tcp6';
  const fmt = (b: Uint8Array) => (b.length === 4 ? formatIPv4(b, 0) : formatIPv6(b, 0));
  return { kind: 'header', header: { version: 1, command: 'proxy', family, source: { address: fmt(s), port: sp }, destination: { address: fmt(d), port: dp } }, length };
}

function latin1(buf: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(buf[i]!);
  return s;
}

/** §2.1: decimal 0-65535, no leading zeroes; -1 if not. */
function parsePort(s: string): number {
  if (s.length === 0 || s.length > 5 || (s.length > 1 && s[0] === '0')) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n <= 65535 ? n : -1;
}

/** §2.1: exactly 4 decimal numbers 0-255 separated by single dots, no leading zeroes. */
export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p[0] === '0')) return null;
    let n = 0;
    for (let j = 0; j < p.length; j++) {
      const c = p.charCodeAt(j) - 48;
      if (c < 0 || c > 9) return null;
      n = n * 10 + c;
    }
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/**
 * §2.1: groups of 1-4 hex digits separated by colons, at most one "::", 128 bits in all (no
 * embedded dotted quad, no zone).
 */
export function parseIPv6Text(s: string): Uint8Array | null {
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.length === 0 || g.length > 4) return null;
      let n = 0;
      for (let j = 0; j < g.length; j++) {
        const h = hexValue(g.charCodeAt(j));
        if (h < 0) return null;
        n = n * 16 + h;
      }
      out.push(n);
    }
    return out;
  };
  let words: number[];
  if (dbl < 0) {
    const all = groups(s);
    if (!all || all.length !== 8) return null;
    words = all;
  } else {
    const head = groups(s.slice(0, dbl));
    const tail = groups(s.slice(dbl + 2));
    if (!head || !tail || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

// ------------------------------------------------------------------------------------- version 2

function parseV2(buf: Uint8Array, maxBytes: number): ProxyParse {
  const n = Math.min(buf.length, V2_SIG.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V2_SIG[i]) return { kind: 'invalid', reason: 'not-proxy' };
  if (buf.length > 12) {
    // §2.2: the version (high nibble) must be 2; the command 0 (LOCAL) or 1 (PROXY).
    const vc = buf[12]!;
    if (vc >> 4 !== 2) return { kind: 'invalid', reason: 'v2-version' };
    if ((vc & 0x0f) > 1) return { kind: 'invalid', reason: 'v2-command' };
  }
  if (buf.length > 13) {
    // §2.2: family 0-3 (UNSPEC, INET, INET6, UNIX), transport 0-2 (UNSPEC, STREAM, DGRAM).
    const fam = buf[13]!;
    if (fam >> 4 > 3 || (fam & 0x0f) > 2) return { kind: 'invalid', reason: 'v2-family' };
  }
  if (buf.length < V2_FIXED) return { kind: 'incomplete' };
  const length = V2_FIXED + ((buf[14]! << 8) | buf[15]!);
  if (length > maxBytes) return { kind: 'invalid', reason: 'v2-too-long' };
  if (buf.length < length) return { kind: 'incomplete' };
  // §2.2 LOCAL: use the real connection endpoints, ignore the family and any address bytes.
  if ((buf[12]! & 0x0f) === 0) return { kind: 'header', header: { version: 2, command: 'local', reason: 'local' }, length };
  const fam = buf[13]! >> 4;
  const proto = buf[13]! & 0x0f;
  const addrLen = length - V2_FIXED;
  if (fam === 0 || proto === 0) return { kind: 'header', header: { version: 2, command: 'local', reason: 'unspec' }, length };
  if (fam === 3) return { kind: 'header', header: { version: 2, command: 'local', reason: 'unix' }, length };
  if (proto === 2) return { kind: 'header', header: { version: 2, command: 'local', reason: 'dgram' }, length };
  // TCP over IPv4 (12 address bytes) or IPv6 (36); anything after them is TLVs, skipped (§2.2).
  const a = V2_FIXED;
  if (fam === 1) {
    if (addrLen < 12) return { kind: 'invalid', reason: 'v2-short-address' };
    const source = { address: formatIPv4(buf, a), port: (buf[a + 8]! << 8) | buf[a + 9]! };
    const destination = { address: formatIPv4(buf, a + 4), port: (buf[a + 10]! << 8) | buf[a + 11]! };
    return { kind: 'header', header: { version: 2, command: 'proxy', family: 'tcp4', source, destination }, length };
  }
  if (addrLen < 36) return { kind: 'invalid', reason: 'v2-short-address' };
  const source = { address: formatIPv6(buf, a), port: (buf[a + 32]! << 8) | buf[a + 33]! };
  const destination = { address: formatIPv6(buf, a + 16), port: (buf[a + 34]! << 8) | buf[a + 35]! };
  return { kind: 'header', header: { version: 2, command: 'proxy', family: 'tcp6', source, destination }, length };
}

// ------------------------------------------------------------------------------------ formatting

export function formatIPv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 §4 text of 16 address bytes (lower case, longest zero run of two or more groups as "::",
 * the first of equal runs). An IPv4-mapped address (::ffff:a.b.c.d) comes out as a.b.c.d, the form
 * the rest of Pillarbox uses for IPv4 clients (it strips "::ffff:" from socket addresses).
 */
export function formatIPv6(b: Uint8Array, at: number): string {
  let mapped = b[at + 10] === 0xff && b[at + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[at + i] !== 0) mapped = false;
  if (mapped) return formatIPv4(b, at + 12);
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

// ---------------------------------------------------------------------------------- the reader

/**
 * Collects a connection's first bytes until the header is complete. push() returns the verdict so
 * far; with 'header', `rest` holds the bytes after the header (the client's first data, e.g. a TLS
 * ClientHello), which the caller hands back to the stream.
 */
export class ProxyHeaderReader {
  readonly #buf: Uint8Array;
  readonly #max: number;
  #len = 0;
  #done = false;

  /** `maxBytes`: the cap on the header (v1 lines are never longer than 107 bytes anyway). */
  constructor(maxBytes: number) {
    this.#max = Math.max(maxBytes, V1_MAX_LINE);
    this.#buf = new Uint8Array(this.#max);
  }

  get received(): number {
    return this.#len;
  }

  push(chunk: Uint8Array): (ProxyParse & { kind: 'incomplete' | 'invalid' }) | { kind: 'header'; header: ProxyHeader; length: number; rest: Uint8Array } {
    if (this.#done) throw new Error('ProxyHeaderReader: header already read');
    const take = Math.min(chunk.length, this.#max - this.#len);
    const scanFrom = Math.max(0, this.#len - 1); // v1: resume the CRLF search (a CR may end the old bytes)
    this.#buf.set(chunk.subarray(0, take), this.#len);
    this.#len += take;
    const r = parseProxyHeader(this.#buf.subarray(0, this.#len), this.#max, scanFrom);
    if (r.kind === 'header') {
      this.#done = true;
      // What came after the header: the unread part of this chunk plus what this chunk put past it.
      const before = this.#len - take;
      const rest = chunk.subarray(r.length - before);
      return { ...r, rest };
    }
    if (r.kind === 'incomplete' && this.#len >= this.#max) return { kind: 'invalid', reason: 'too-long' };
    return r;
  }
}
