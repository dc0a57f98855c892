// Worker thread of the body-scan pool (body-scan.ts): reads blob files synchronously — from the
// page cache that costs microseconds, and blocking here blocks no session — and matches their text
// with the shared scanner (../body-search.ts). One job at a time; results go back in item order.
import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { foldNeedles, matchInto, readsFor, scanTarget, textFrom } from '../body-search.ts';
import type { ScanJob, ScanReply } from './body-scan.ts';
import { blobPath, readRangeSync } from './fs-blob-store.ts';

const dir = (workerData as { dir: string }).dir;

/** The ranges of one blob, or null when the file is gone (expunged and removed meanwhile). */
function readRanges(blobId: string, ranges: Array<[number, number]>): Buffer[] | null {
  let fd: number;
  try {
    fd = openSync(blobPath(dir, blobId), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return ranges.map(([start, end]) => readRangeSync(fd, start, end));
  } finally {
    closeSync(fd);
  }
}

function run(job: ScanJob): number[][] {
  const folded = foldNeedles(job.needles);
  const hits = folded.map((): number[] => []);
  for (const item of job.items) {
    const target = scanTarget(item);
    const ranges = readsFor(target);
    const bufs = ranges.length ? readRanges(item.blobId, ranges) : [];
    if (bufs) matchInto(textFrom(target, bufs), folded, item.uid, hits);
  }
  return hits;
}

parentPort!.on('message', (job: ScanJob) => {
  let reply: ScanReply;
  try {
    reply = { id: job.id, result: run(job) };
  } catch (err) {
    reply = { id: job.id, error: (err as Error).message };
  }
  parentPort!.postMessage(reply);
});
