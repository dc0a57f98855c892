// Loaded into the fuzzed server only (target.ts: NODE_OPTIONS=--expose-gc --import this file), never
// in production: on SIGUSR2 it runs a full GC and writes the server's memory figures to
// $PILLARBOX_FUZZ_MEM as JSON. The RSS guard reads /proc from outside, and RSS alone can't tell a
// leak (live data that stays) from memory the process freed but kept — V8's heap after a burst of
// big inputs, malloc arenas (figures in fuzz/README.md); the heap after a GC can.
//
// With $PILLARBOX_FUZZ_SAMPLES (a file name) it also appends one JSON line every 250 ms: where the
// memory is (process.memoryUsage(), /proc's RssAnon) and which connections hold bytes (each
// socket's unread input and unsent output, by the client's port), to see what an RSS peak was made of.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { getHeapSpaceStatistics } from 'node:v8';

/** V8's spaces (bytes committed) — young generation vs old — by name. */
function spaces(): Record<string, number> {
  const o: Record<string, number> = {};
  for (const sp of getHeapSpaceStatistics()) o[sp.space_name] = sp.physical_space_size;
  return o;
}

/**
 * Where the resident anonymous memory is, from /proc/self/smaps: the brk heap (the main malloc
 * arena), other anonymous mappings by size class (64 MB-aligned thread arenas, V8's pages, big
 * mmap'd allocations), in bytes resident.
 */
function smapsSummary(): Record<string, number> {
  const o: Record<string, number> = {};
  let kind = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line); // linear: anchored fields, one trailing group
    if (head) {
      const size = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      const name = head[3]!;
      kind = name === '[heap]' ? 'brk' : name === '' ? (size >= 65536 ? 'anon>=64M' : size >= 1024 ? 'anon1M-64M' : 'anon<1M') : name.startsWith('/') ? 'file' : name;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line); // linear: anchored, one \s+ then digits
    if (rss && kind) o[kind] = (o[kind] ?? 0) + Number(rss[1]) * 1024;
  }
  return o;
}

const out = process.env.PILLARBOX_FUZZ_MEM;
if (out && process.argv.includes('serve')) {
  process.on('SIGUSR2', () => {
    const before = process.memoryUsage();
    (globalThis as { gc?: () => void }).gc?.();
    const after = process.memoryUsage();
    writeFileSync(out, JSON.stringify({ at: Date.now(), rss: after.rss, heapTotal: after.heapTotal, heapUsed: after.heapUsed, heapUsedBeforeGc: before.heapUsed, external: after.external, arrayBuffers: after.arrayBuffers, spaces: spaces(), smaps: smapsSummary() }));
  });
}

const samples = process.env.PILLARBOX_FUZZ_SAMPLES;
if (samples && process.argv.includes('serve')) {
  const MB = 1024 * 1024;
  const mb = (n: number) => Math.round((n / MB) * 10) / 10;
  const anon = (): number => {
    const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8')); // linear: one \s+ then digits
    return m ? Number(m[1]) * 1024 : 0;
  };
  let n = 0;
  setInterval(() => {
    const u = process.memoryUsage();
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const conns: Array<[number, number, number]> = [];
    for (const h of handles) {
      const s = h as Socket;
      if (typeof s.writableLength !== 'number' || typeof s.remotePort !== 'number') continue;
      if (s.writableLength + s.readableLength > 16 * 1024) conns.push([s.remotePort, s.readableLength, s.writableLength]);
    }
    const sp = spaces();
    const v8: Record<string, number> = { young: mb((sp.new_space ?? 0) + (sp.new_large_object_space ?? 0)), old: mb((sp.old_space ?? 0) + (sp.code_space ?? 0) + (sp.trusted_space ?? 0)), large: mb(sp.large_object_space ?? 0) };
    // The mappings every 5 s (reading smaps takes a few ms).
    const maps = ++n % 20 === 0 ? Object.fromEntries(Object.entries(smapsSummary()).filter(([k]) => k === 'brk' || k.startsWith('anon')).map(([k, v]) => [k, mb(v)])) : undefined;
    appendFileSync(samples, JSON.stringify({ at: Date.now(), rss: mb(u.rss), anon: mb(anon()), heapTotal: mb(u.heapTotal), heapUsed: mb(u.heapUsed), external: mb(u.external), arrayBuffers: mb(u.arrayBuffers), v8, maps, conns }) + '\n');
  }, 250).unref();
}
