// A DNS server for tests: one dns2 server answering UDP and TCP on the same 127.0.0.1 port, with
// records that a test can change while it runs. Point a resolver at `servers` (node:dns Resolver
// setServers, config `dnsServers`, mailauth's resolver) and nothing leaves the machine.
//
//   const dns = await startDns(zoneText);          // or startDns([{ name, type: 'MX', ... }])
//   dns.set([{ name: 'example.org', type: 'TXT', data: 'v=spf1 -all' }]);   // replaces that name+type
//   dns.load(await run('dns', 'example.org'));     // zone-file text, e.g. `pillarbox dns` output
//   ... await dns.close();
//
// Answers: the records of the asked name and type; a CNAME at the name is returned (and followed
// inside this zone) for any other type; a name with no records at all → NXDOMAIN (RFC 1035 §4.1.1
// RCODE 3); a name with other types only → NOERROR and no answer (NODATA, RFC 2308 §2.2).
// TTLs are served as 0 so that c-ares (which caches answers since 1.23) sees every change at once.
// An answer over the UDP size the query allows is sent with TC=1 (dns2), so clients retry over TCP.

import dns2 from 'dns2';
import type { RemoteInfo } from 'node:dgram';

const { Packet } = dns2;

export type DnsRecord =
  | { name: string; type: 'A' | 'AAAA'; address: string }
  | { name: string; type: 'MX'; priority: number; exchange: string }
  /** A string longer than 255 bytes is split into 255-byte character-strings (RFC 1035 §3.3.14);
   *  an array is served as the given character-strings (each still split at 255 bytes). */
  | { name: string; type: 'TXT'; data: string | string[] }
  | { name: string; type: 'CNAME'; target: string }
  | { name: string; type: 'SRV'; priority: number; weight: number; port: number; target: string };

export type DnsType = DnsRecord['type'];

export interface DnsQuery { name: string; type: string; transport: 'udp' | 'tcp' }

export interface TestDns {
  port: number;
  /** ['127.0.0.1:PORT'] — for Resolver.setServers and config dnsServers. */
  servers: string[];
  /** Replaces every (name, type) pair present in `records` (zone text or record list) with the given ones. */
  set(records: DnsRecord[] | string): void;
  /** Adds records without removing any. */
  add(records: DnsRecord[] | string): void;
  /** Zone text (e.g. `pillarbox dns DOMAIN` output) loaded like set(). */
  load(zoneText: string, origin?: string): void;
  /** Removes all records of a name (or only of one type): the name answers NXDOMAIN when none remain. */
  remove(name: string, type?: DnsType): void;
  clear(): void;
  records(): DnsRecord[];
  /** Every question answered so far, in order (with the transport it came over). */
  queries: DnsQuery[];
  close(): Promise<void>;
}

const MAX_CNAME_CHAIN = 8;

export function normName(name: string): string {
  let n = name.trim().toLowerCase();
  while (n.endsWith('.')) n = n.slice(0, -1);
  return n;
}

/** Splits a TXT value into character-strings of at most 255 bytes (RFC 1035 §3.3.14). */
export function splitTxt(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length <= 255) return [value];
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 255) out.push(bytes.subarray(i, i + 255).toString('latin1'));
  return out;
}

export async function startDns(zone: DnsRecord[] | string = []): Promise<TestDns> {
  let table = new Map<string, DnsRecord[]>(); // key: name
  const queries: DnsQuery[] = [];

  const toList = (r: DnsRecord[] | string): DnsRecord[] => (typeof r === 'string' ? parseZone(r) : r);
  const add = (records: DnsRecord[] | string): void => {
    for (const rec of toList(records)) {
      const name = normName(rec.name);
      const list = table.get(name) ?? [];
      list.push({ ...rec, name });
      table.set(name, list);
    }
  };
  const set = (records: DnsRecord[] | string): void => {
    const list = toList(records);
    for (const rec of list) {
      const name = normName(rec.name);
      const kept = (table.get(name) ?? []).filter((r) => r.type !== rec.type);
      if (kept.length) table.set(name, kept);
      else table.delete(name);
    }
    add(list);
  };
  const remove = (name: string, type?: DnsType): void => {
    const n = normName(name);
    if (!type) return void table.delete(n);
    const kept = (table.get(n) ?? []).filter((r) => r.type !== type);
    if (kept.length) table.set(n, kept);
    else table.delete(n);
  };
  add(zone);

  const handle = (transport: 'udp' | 'tcp') =>
    (request: InstanceType<typeof Packet>, send: (r: InstanceType<typeof Packet>) => Promise<Buffer>): void => {
      const response = Packet.createResponseFromRequest(request);
      response.header.aa = 1;
      const q = request.questions[0];
      if (!q) {
        response.header.rcode = Packet.RCODE.FORMERR;
        void send(response).catch(() => {});
        return;
      }
      const typeName = Packet.typeName(q.type) ?? String(q.type);
      queries.push({ name: normName(q.name), type: typeName, transport });
      const { answers, nx } = answer(table, q.name, typeName);
      response.answers = answers as never;
      if (nx) response.header.rcode = Packet.RCODE.NXDOMAIN;
      void send(response).catch(() => {});
    };

  const { udp, tcp, port } = await bindBoth(handle('udp'), handle('tcp'));
  return {
    port,
    servers: [`127.0.0.1:${port}`],
    set,
    add,
    load: (text, origin) => set(parseZone(text, origin)),
    remove,
    clear: () => void (table = new Map()),
    records: () => [...table.values()].flat(),
    queries,
    close: async () => {
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]);
    },
  };
}

type Handler = Parameters<InstanceType<typeof dns2.UDPServer>['on']>[1];

/** UDP on port 0 first, then TCP on the port the kernel chose; retried if that TCP port is taken. */
async function bindBoth(onUdp: unknown, onTcp: unknown) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dns2.createUDPServer(onUdp as Handler);
    udp.on('requestError', () => {});
    await udp.listen(0, '127.0.0.1');
    const port = (udp.address() as { port: number }).port;
    const tcp = dns2.createTCPServer(onTcp as Handler);
    tcp.on('requestError', () => {});
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) return { udp, tcp, port };
    await new Promise<void>((r) => udp.close(() => r()));
  }
  throw new Error('test dns: no port free for both UDP and TCP after 20 attempts');
}

function answer(table: Map<string, DnsRecord[]>, qname: string, type: string) {
  const answers: object[] = [];
  let name = normName(qname);
  let wireName = qname;
  for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
    const list = table.get(name);
    if (!list) return { answers, nx: answers.length === 0 };
    const cname = list.find((r) => r.type === 'CNAME');
    if (cname && type !== 'CNAME' && cname.type === 'CNAME') {
      answers.push(toWire(cname, wireName));
      name = normName(cname.target);
      wireName = cname.target;
      continue;
    }
    for (const r of list) if (r.type === type) answers.push(toWire(r, wireName));
    return { answers, nx: false };
  }
  return { answers, nx: false };
}

function toWire(r: DnsRecord, name: string): object {
  const base = { name, type: Packet.TYPE[r.type], class: Packet.CLASS.IN, ttl: 0 };
  switch (r.type) {
    case 'A':
    case 'AAAA':
      return { ...base, address: r.address };
    case 'MX':
      return { ...base, priority: r.priority, exchange: normName(r.exchange) };
    case 'TXT':
      // a character-string is at most 255 bytes on the wire: longer ones are split too
      return { ...base, data: (Array.isArray(r.data) ? r.data : [r.data]).flatMap(splitTxt) };
    case 'CNAME':
      return { ...base, domain: normName(r.target) };
    case 'SRV':
      return { ...base, priority: r.priority, weight: r.weight, port: r.port, target: normName(r.target) };
  }
}

// ---------------------------------------------------------------------------------------------
// Zone-file text (RFC 1035 §5.1) → records. Enough of the master-file format for what
// `pillarbox dns` prints and what tests write by hand: $ORIGIN, $TTL, `@`, relative names, a blank
// owner meaning "the previous owner", optional TTL and class, ( ... ) continuation, `;` comments,
// quoted character-strings with \" \\ and \DDD escapes. Types: A AAAA MX TXT CNAME SRV; any other
// type is an error (so a test notices a record the helper would silently not serve).

interface Token { text: string; quoted: boolean; lineStart: boolean }

export function parseZone(text: string, origin = ''): DnsRecord[] {
  const out: DnsRecord[] = [];
  let org = normName(origin);
  let owner = '';
  for (const line of logicalLines(text)) {
    if (line.length === 0) continue;
    const first = line[0];
    if (!first.quoted && first.lineStart && first.text.toUpperCase() === '$ORIGIN') {
      org = normName(line[1]?.text ?? '');
      continue;
    }
    if (!first.quoted && first.lineStart && first.text.toUpperCase() === '$TTL') continue;
    let i = 0;
    if (first.lineStart) {
      owner = absName(first.text, org);
      i = 1;
    }
    if (!owner) throw new Error(`zone: record without an owner name: ${line.map((t) => t.text).join(' ')}`);
    // [TTL] [class] or [class] [TTL], both optional
    for (let k = 0; k < 2 && i < line.length; k++) {
      const t = line[i].text.toUpperCase();
      if (/^[0-9]+$/.test(t) || t === 'IN') i++;
    }
    const type = (line[i++]?.text ?? '').toUpperCase();
    const rdata = line.slice(i);
    out.push(toRecord(owner, type, rdata, org));
  }
  return out;
}

function toRecord(name: string, type: string, rd: Token[], origin: string): DnsRecord {
  const need = (n: number) => {
    if (rd.length < n) throw new Error(`zone: ${type} record for ${name} needs ${n} fields`);
  };
  switch (type) {
    case 'A':
    case 'AAAA':
      need(1);
      return { name, type, address: rd[0].text };
    case 'MX':
      need(2);
      return { name, type, priority: Number(rd[0].text), exchange: absName(rd[1].text, origin) };
    case 'TXT':
      need(1);
      return { name, type, data: rd.map((t) => t.text) };
    case 'CNAME':
      need(1);
      return { name, type, target: absName(rd[0].text, origin) };
    case 'SRV':
      need(4);
      return {
        name, type, priority: Number(rd[0].text), weight: Number(rd[1].text), port: Number(rd[2].text),
        target: absName(rd[3].text, origin),
      };
    default:
      throw new Error(`zone: record type ${type || '(none)'} for ${name} is not served by the test DNS`);
  }
}

function absName(n: string, origin: string): string {
  if (n === '@') return origin;
  if (n.endsWith('.')) return normName(n);
  return normName(origin ? `${n}.${origin}` : n);
}

/** Tokenises the text into logical lines (parentheses join physical lines), one pass. */
function logicalLines(text: string): Token[][] {
  const lines: Token[][] = [];
  let cur: Token[] = [];
  let depth = 0;
  let atLineStart = true;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '\n') {
      if (depth === 0) {
        lines.push(cur);
        cur = [];
        atLineStart = true;
      }
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      atLineStart = false;
      i++;
      continue;
    }
    if (c === ';') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '(' || c === ')') {
      depth += c === '(' ? 1 : -1;
      if (depth < 0) throw new Error('zone: unbalanced ")"');
      atLineStart = false;
      i++;
      continue;
    }
    const lineStart = atLineStart && cur.length === 0;
    atLineStart = false;
    if (c === '"') {
      let s = '';
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < n) {
          const d = text.slice(i + 1, i + 4);
          if (/^[0-9]{3}$/.test(d)) {
            s += String.fromCharCode(Number(d));
            i += 4;
          } else {
            s += text[i + 1];
            i += 2;
          }
        } else s += text[i++];
      }
      if (i >= n) throw new Error('zone: unterminated quoted string');
      i++;
      cur.push({ text: s, quoted: true, lineStart });
      continue;
    }
    let s = '';
    while (i < n && !' \t\r\n;()"'.includes(text[i])) s += text[i++];
    cur.push({ text: s, quoted: false, lineStart });
  }
  if (depth !== 0) throw new Error('zone: unbalanced "("');
  lines.push(cur);
  return lines;
}
