// Picks the store from `--database`: a postgres:// URL → PostgreSQL; anything else is a SQLite
// file path (default DATA/pillarbox.sqlite) with blobs in DATA/blobs.

import { isAbsolute, join, resolve } from 'node:path';
import type { Store } from './store.ts';
import type { ChangeBus } from './bus.ts';
import type { Logger } from '../obs/log.ts';
import type { MailboxLimits } from './mailbox-limits.ts';
import type { SqlitePeers } from './sqlite/peers.ts';

export function isPostgresUrl(database: string): boolean {
  return /^postgres(ql)?:\/\//i.test(database);
}

export function defaultDatabase(dataDir: string): string {
  return join(dataDir, 'pillarbox.sqlite');
}

export async function openStore(
  database: string,
  dataDir: string,
  opts: {
    bus?: ChangeBus;
    collectGarbage?: boolean;
    log?: Logger;
    mailboxLimits?: Partial<MailboxLimits>;
    checkpointMs?: number;
    /** SQLite only: other server processes on the file (sqlite/peers.ts); PostgreSQL follows other processes by itself. */
    peers?: SqlitePeers;
    noAutoCheckpoint?: boolean;
  } = {},
): Promise<Store> {
  const mailboxLimits = opts.mailboxLimits ? { mailboxLimits: opts.mailboxLimits } : {};
  if (isPostgresUrl(database)) {
    const { openPostgresStore } = await import('./postgres/postgres-store.ts');
    // `?schema=NAME` keeps Pillarbox's tables in their own schema (created if missing).
    const url = new URL(database);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return openPostgresStore({ url: url.toString(), ...(schema ? { schema } : {}), ...(opts.bus ? { bus: opts.bus } : {}), ...mailboxLimits });
  }
  const { openSqliteStore } = await import('./sqlite/sqlite-store.ts');
  const path = isAbsolute(database) ? database : resolve(database);
  return openSqliteStore({ path, blobDir: join(dataDir, 'blobs'), ...(opts.bus ? { bus: opts.bus } : {}), collectGarbage: opts.collectGarbage ?? false, ...(opts.log ? { log: opts.log } : {}), ...mailboxLimits, ...(opts.checkpointMs ? { checkpointMs: opts.checkpointMs } : {}), ...(opts.peers ? { peers: opts.peers } : {}), ...(opts.noAutoCheckpoint ? { noAutoCheckpoint: true } : {}) });
}
