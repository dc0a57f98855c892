// The WAL checkpointer's thread (checkpointer.ts): its own connection to the database, a PASSIVE
// checkpoint every `intervalMs` (copies the committed WAL frames no reader still needs into the
// database file, with an fsync of the WAL before and of the database after: here, not on the
// server's event loop). PASSIVE never waits for a lock and never blocks a writer; with nothing new
// in the WAL it does no I/O. 'now' runs one at once and answers with its result (tests).

import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const port = parentPort!;
const db = new Database(path, { fileMustExist: true });
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

function run(): { busy: number; log: number; checkpointed: number } | null {
  try {
    return checkpoint.get() as { busy: number; log: number; checkpointed: number };
  } catch (err) {
    port.postMessage({ kind: 'error', error: err instanceof Error ? err.message : String(err) });
    return null;
  }
}

const timer = setInterval(run, intervalMs);
port.on('message', (m: string) => {
  if (m === 'now') port.postMessage({ kind: 'result', result: run() });
  else if (m === 'stop') {
    clearInterval(timer);
    db.close();
    port.close();
  }
});
