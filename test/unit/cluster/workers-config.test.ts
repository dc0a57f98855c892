// `--workers N|auto` (PILLARBOX_WORKERS, config workers): parsed, defaulted and refused with a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../src/config/load.ts';
import { workerCount } from '../../../src/cli/commands/serve.ts';

test('workers from flag, environment and file; default 1, auto is the cores; bad values refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-workers-'));
  try {
    assert.equal(loadConfig({ data: dir }, {}).workers, 1);
    assert.equal(workerCount(loadConfig({ data: dir }, {})), 1, 'one process unless asked');
    assert.equal(workerCount({ workers: 'auto' }), availableParallelism());
    assert.equal(loadConfig({ data: dir, workers: '2' }, {}).workers, 2);
    assert.equal(loadConfig({ data: dir }, { PILLARBOX_WORKERS: '1' }).workers, 1);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ workers: 3 }));
    assert.equal(loadConfig({ data: dir }, {}).workers, 3);
    assert.equal(loadConfig({ data: dir, workers: 'auto' }, {}).workers, 'auto', 'the flag wins over the file');
    for (const bad of ['0', '65', '-1', '1.5', 'two']) {
      assert.throws(() => loadConfig({ data: dir, workers: bad }, {}), (e: unknown) => e instanceof ConfigError && /--workers: .* must be auto or a number of processes from 1 to 64/.test(e.message), bad);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
