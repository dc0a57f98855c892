// Builds the server and CLI into one plain-JavaScript file, dist/pillarbox.mjs (esbuild: our
// TypeScript bundled, npm packages left as imports). `npm start` runs it with plain node: no
// TypeScript transform at run time, which saves the loader thread and esbuild's service process
// (about 60 MB of resident memory) and the start-up compile. bin/pillarbox runs the TypeScript
// sources directly (Node 24 strips the types), so a checkout never runs a stale build.
//
// The SEARCH BODY worker (src/store/blob/body-scan-worker.ts) is a second entry, written next to
// the bundle as body-scan-worker.mjs, where src/store/blob/body-scan.ts looks for it; the DKIM
// signer's worker (src/mailauth/dkim-worker.ts) likewise as dkim-worker.mjs (src/mailauth/dkim-pool.ts),
// the SQLite WAL checkpointer's (src/store/sqlite/checkpoint-worker.ts) as checkpoint-worker.mjs, and
// the SMTP client's (src/queue/delivery-worker.ts) as delivery-worker.mjs (src/queue/delivery-pool.ts).
//
// Usage: node scripts/build.mjs [--outfile FILE]
import { build } from 'esbuild';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--outfile');
const outfile = i > 0 ? process.argv[i + 1] : join(root, 'dist', 'pillarbox.mjs');

await build({
  entryPoints: [
    { in: join(root, 'src', 'cli', 'main.ts'), out: basename(outfile).replace(/\.m?js$/, '') },
    { in: join(root, 'src', 'store', 'blob', 'body-scan-worker.ts'), out: 'body-scan-worker' },
    { in: join(root, 'src', 'mailauth', 'dkim-worker.ts'), out: 'dkim-worker' },
    { in: join(root, 'src', 'store', 'sqlite', 'checkpoint-worker.ts'), out: 'checkpoint-worker' },
    { in: join(root, 'src', 'queue', 'delivery-worker.ts'), out: 'delivery-worker' },
  ],
  outdir: dirname(outfile),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: { js: '#!/usr/bin/env node' },
});
