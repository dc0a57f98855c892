// Summarises V8 CPU profiles (node --cpu-prof, or BENCH_PROFILE=DIR for the Pillarbox server in any
// benchmark): top functions by self time and by total (inclusive) time.
// Usage: npx node bench/profile-summary.ts FILE.cpuprofile [more…] [--top N] [--filter TEXT]
//        [--callers NAME]: the commonest call stacks (8 frames up) of the frames labelled NAME…

import { readFileSync } from 'node:fs';

// Piped into head: stop quietly when the reader goes away.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
let top = 30;
let filter = '';
let callers = '';
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--filter') filter = args[++i]!;
  else if (args[i] === '--callers') callers = args[++i]!;
  else files.push(args[i]!);
}

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const label = (n: Node) => {
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/work\/main\//, '');
    return `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
  };
  const stacks = new Map<string, number>();
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const [id, us] of selfUs) {
    all += us;
    const n = byId.get(id)!;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    // inclusive: every distinct frame on the stack
    if (callers && label(n).startsWith(callers)) {
      const frames: string[] = [];
      for (let cur: number | undefined = id, k = 0; cur !== undefined && k < 8; cur = parent.get(cur), k++) frames.push(label(byId.get(cur)!));
      const key = frames.join('\n      ← ');
      stacks.set(key, (stacks.get(key) ?? 0) + us);
    }
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + us);
    }
  }
  const show = (m: Map<string, number>, title: string) => {
    console.log(`\n${title}`);
    const rows = [...m.entries()].filter(([k]) => !filter || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [k, us] of rows) console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / all).toFixed(1).padStart(5)}%  ${k}`);
  };
  console.log(`${file}: ${(all / 1000).toFixed(0)} ms sampled over ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s`);
  show(self, 'self time');
  show(total, 'total time (inclusive)');
  if (callers) {
    console.log(`\ncall stacks of ${callers}`);
    for (const [k, us] of [...stacks.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`${(us / 1000).toFixed(0).padStart(8)} ms  ${k}`);
  }
}
