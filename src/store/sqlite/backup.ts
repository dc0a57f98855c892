// Online backup of the embedded store while the server runs: a consistent snapshot of the SQLite
// database (SQLite's backup API, page by page, never blocking the server's writers for long) and a
// copy of every blob file that snapshot references. Blob files are immutable (content-addressed),
// so a file already in the backup with the right size is kept: a second backup into the same
// folder copies only what is new. A blob deleted between the snapshot and its copy (its last
// message was expunged meanwhile) means the snapshot is older than the files: take a new snapshot
// and copy again (the files copied stay), until one pass finds every file.

import Database from 'better-sqlite3';
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { blobPath } from '../blob/fs-blob-store.ts';

export interface BackupResult {
  /** Blob files the backup references. */
  blobs: number;
  /** Files copied this time (the others were already there). */
  copied: number;
  bytes: number;
  /** Snapshots taken (more than 1 when mail was expunged during the copy). */
  passes: number;
  database: string;
}

const MAX_PASSES = 5;

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function backupSqlite(dbPath: string, blobDir: string, dest: string): Promise<BackupResult> {
  const destBlobs = join(dest, 'blobs');
  mkdirSync(destBlobs, { recursive: true });
  const finalDb = join(dest, 'pillarbox.sqlite');
  const tmpDb = join(dest, 'pillarbox.sqlite.partial');
  let copied = 0;
  let bytes = 0;
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    rmSync(tmpDb, { force: true });
    const live = new Database(dbPath, { fileMustExist: true });
    try {
      live.pragma('busy_timeout = 10000');
      await live.backup(tmpDb);
    } finally {
      live.close();
    }
    const snap = new Database(tmpDb, { readonly: true });
    let ids: string[];
    try {
      // Bodies kept in the database (blobs.data: queued ones) come with the snapshot.
      ids = snap.prepare('SELECT id FROM blobs WHERE data IS NULL').pluck().all() as string[];
    } finally {
      snap.close();
    }
    const missing: string[] = [];
    for (const id of ids) {
      const src = blobPath(blobDir, id);
      const dst = blobPath(destBlobs, id);
      let size: number;
      try {
        size = statSync(src).size;
      } catch {
        missing.push(id);
        continue;
      }
      if (existsSync(dst) && statSync(dst).size === size) continue;
      mkdirSync(dirname(dst), { recursive: true });
      try {
        copyFileSync(src, dst + '.partial');
      } catch {
        missing.push(id);
        continue;
      }
      fsyncPath(dst + '.partial');
      renameSync(dst + '.partial', dst);
      copied++;
      bytes += size;
    }
    if (missing.length === 0) {
      // Bodies before the metadata that points to them, as in the store itself.
      for (const d of new Set(ids.map((id) => dirname(blobPath(destBlobs, id))))) fsyncPath(d);
      fsyncPath(tmpDb);
      renameSync(tmpDb, finalDb);
      fsyncPath(dest);
      return { blobs: ids.length, copied, bytes, passes: pass, database: finalDb };
    }
  }
  rmSync(tmpDb, { force: true });
  throw new Error(`messages kept being expunged while backing up (${MAX_PASSES} snapshots); try again`);
}
