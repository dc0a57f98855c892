// Builds the server and CLI into one plain-JavaScript file, dist/pillarbox.mjs (esbuild: our
// TypeScript bundled, npm packages left as imports). `npm start` runs it with plain node: no
// TypeScript transform at run time, which saves the loader thread and esbuild's service process
// (about 60 MB of resident memory) and the start-up compile. bin/pillarbox keeps running the
// sources through tsx, so a checkout never runs a stale build.
//
// Usage: node scripts/build.mjs [--outfile FILE]
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--outfile');
const outfile = i > 0 ? process.argv[i + 1] : join(root, 'dist', 'pillarbox.mjs');

await build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: { js: '#!/usr/bin/env node' },
});
