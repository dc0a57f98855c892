// A short seeded run of the fuzzer (fuzz/run.ts, `npm run fuzz`) inside `npm test`: ~5 s per
// protocol (IMAP, POP3, SMTP against the real server; MIME in-process), a fixed seed, the same
// oracle as the long runs — the server lives, its RSS stays bounded, the second client is answered
// — but with a loose round-trip bound (2 s), since this machine runs other tests meanwhile; the
// 100 ms figure is for `npm run fuzz` (fuzz/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatFigures, runFuzz, type FuzzOptions } from '../fuzz/run.ts';

test('fuzz: 5 s per protocol, seed 20260, no violation (liveness, RSS, second client < 2 s)', async (t) => {
  const crashDir = mkdtempSync(join(tmpdir(), 'pillarbox-fuzz-crashes-'));
  t.after(() => rmSync(crashDir, { recursive: true, force: true }));
  const lines: string[] = [];
  const opts: FuzzOptions = {
    seed: 20260,
    // Up to 5 s or 150 inputs per protocol: under load the same first inputs run, fewer of them.
    seconds: 5,
    maxInputs: 150,
    protocols: ['imap', 'pop3', 'smtp', 'mime'],
    rttLimitMs: 2000,
    rssGrowthLimit: 200 * 1024 * 1024,
    clients: 2,
    crashDir,
    log: (l) => lines.push(l),
  };
  const figures = await runFuzz(opts);
  for (const f of figures) t.diagnostic(formatFigures(f, opts));
  for (const f of figures) {
    assert.ok(f.inputs > 5, `${f.protocol}: only ${f.inputs} inputs`);
    if (f.protocol !== 'mime') {
      assert.ok(f.roundTrips > 10, `${f.protocol}: second client made ${f.roundTrips} round trips`);
      assert.ok(f.rttWorst < 2000, `${f.protocol}: worst round trip ${f.rttWorst.toFixed(0)} ms`);
    }
    assert.deepEqual(
      f.violations.map((v) => `${v.kind}: ${v.detail}`),
      [],
      `${f.protocol}: violations (inputs saved in ${crashDir}):\n${lines.filter((l) => l.startsWith('VIOLATION') || l.includes('saved')).join('\n')}`,
    );
  }
});
