// Worker thread of the blob writer (blob-writer.ts): one body from memory to its place on disk in
// one go — temp file written, fsync'd, renamed into place, the folder fsync'd — with synchronous
// calls, which block this thread and no session. On the event loop the same steps are eight
// thread-pool round trips, and under load each waits for a turn of the loop behind every other
// session's work (APPEND waited ~5 ms under bench/imap-persistent.ts, most of it there).
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { WriteJob } from './blob-writer.ts';

function writeBlob(job: WriteJob): void {
  const data = new Uint8Array(job.data);
  const fd = openSync(job.tmp, 'wx', 0o600);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(job.tmp);
    } catch {
      /* gone already */
    }
    throw err;
  }
  closeSync(fd);
  renameSync(job.tmp, job.final);
  // The rename is durable once the folder is (the body before any metadata that points to it).
  const dirFd = openSync(job.folder, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

parentPort!.on('message', (job: WriteJob & { id: number }) => {
  try {
    writeBlob(job);
    parentPort!.postMessage({ id: job.id, result: true });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
