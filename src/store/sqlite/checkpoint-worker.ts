// The WAL checkpointer's thread (checkpointer.ts): its own connection to the database, a PASSIVE
// checkpoint every `intervalMs` (copies the committed WAL frames no reader still needs into the
// database file, with an fsync of the WAL before and of the database after: here, not on the
// server's event loop). PASSIVE never waits for a lock and never blocks a writer; with nothing new
// in the WAL it does no I/O. Once a checkpoint copied every frame, the next writer starts the WAL
// over and fsyncs its new header inside that COMMIT: this thread asks for a pause of the server's
// commits ('restart'), makes that write itself ('go': one row of `settings`), and says when it is
// done ('restarted'). 'now' runs one checkpoint at once and answers with its result (tests).

import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const port = parentPort!;
const db = new Database(path, { fileMustExist: true });
// The server's commits pause for the restart, so a lock is rare: the admin CLI's, or a FULL write().
db.pragma('busy_timeout = 2000');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const mark = db.prepare("INSERT INTO settings (key, value) VALUES ('wal_restarted_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
const restart = db.transaction(() => mark.run(String(Date.now())));
/** A restart asked for and not done yet: no checkpoint meanwhile. */
let asked = false;

function run(): { busy: number; log: number; checkpointed: number } | null {
  try {
    return checkpoint.get() as { busy: number; log: number; checkpointed: number };
  } catch (err) {
    port.postMessage({ kind: 'error', error: err instanceof Error ? err.message : String(err) });
    return null;
  }
}

function tick(): void {
  if (asked) return;
  const r = run();
  if (r && !r.busy && r.log > 0 && r.checkpointed === r.log) {
    asked = true;
    port.postMessage({ kind: 'restart' });
  }
}

const timer = setInterval(tick, intervalMs);
port.on('message', (m: string) => {
  if (m === 'now') port.postMessage({ kind: 'result', result: run() });
  else if (m === 'go') {
    try {
      restart.immediate();
    } catch (err) {
      port.postMessage({ kind: 'error', error: err instanceof Error ? err.message : String(err) });
    }
    asked = false;
    port.postMessage({ kind: 'restarted' });
  } else if (m === 'stop') {
    clearInterval(timer);
    db.close();
    port.close();
  }
});
