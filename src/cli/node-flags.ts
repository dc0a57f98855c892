// The Node/V8 flags the server process starts with. V8 sizes the young generation by the machine:
// without pointer compression (Node's build) it grows to 2 × 32 MB semi-spaces under any sustained
// load and keeps them while the load lasts — 64 MB of the server's RSS that a burst of pipelined
// commands (the seed-12 IMAP fuzz run: 3,980 APPENDs never read) reaches in a second, and most
// of its growth over a run (fuzz/README.md, "The stop-20 RSS trip"). 8 MB semi-spaces cap it at 16 MB.
// The flag must be on the command line (V8 sizes the heap when the isolate is made; setting it
// later has no effect), so every launcher passes it: bin/pillarbox (the same rule in sh),
// `npm start` (package.json), the tests' and benchmarks' server (test/helpers/server.ts).
// A --max-semi-space-size in NODE_OPTIONS is the operator's choice and wins: no flag then.

/** Semi-space size (MB): the young generation is twice this. */
export const SEMI_SPACE_MB = 8;

export function serverNodeFlags(nodeOptions: string = process.env.NODE_OPTIONS ?? ''): string[] {
  return nodeOptions.includes('--max-semi-space-size') ? [] : [`--max-semi-space-size=${SEMI_SPACE_MB}`];
}

/** Whether this process was started with its young generation sized (a flag or NODE_OPTIONS). */
export function youngGenerationSized(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): boolean {
  return execArgv.some((a) => a.startsWith('--max-semi-space-size')) || nodeOptions.includes('--max-semi-space-size');
}
