// Loaded into the fuzzed server only (target.ts: NODE_OPTIONS=--expose-gc --import this file), never
// in production: on SIGUSR2 it runs a full GC and writes the server's memory figures to
// $PILLARBOX_FUZZ_MEM as JSON. The RSS guard reads /proc from outside, and RSS alone can't tell a
// leak (live data that stays) from memory the process freed but kept — V8's heap after a burst of
// big inputs, malloc arenas (figures in fuzz/README.md); the heap after a GC can.
import { writeFileSync } from 'node:fs';

const out = process.env.PILLARBOX_FUZZ_MEM;
if (out && process.argv.includes('serve')) {
  process.on('SIGUSR2', () => {
    const before = process.memoryUsage();
    (globalThis as { gc?: () => void }).gc?.();
    const after = process.memoryUsage();
    writeFileSync(out, JSON.stringify({ at: Date.now(), rss: after.rss, heapTotal: after.heapTotal, heapUsed: after.heapUsed, heapUsedBeforeGc: before.heapUsed, external: after.external, arrayBuffers: after.arrayBuffers }));
  });
}
