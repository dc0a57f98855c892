// `pillarbox backup DEST`: a consistent copy of the data folder while the server runs.

import { copyFileSync, cpSync, existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { isPostgresUrl } from '../../store/open.ts';
import { CliError, loadCliConfig, output, type CommandContext } from '../context.ts';

export const BACKUP_HELP = `Usage: pillarbox backup DEST

Copies the embedded store into the folder DEST while the server keeps running: a consistent
snapshot of the SQLite database and every message body it references (DATA/blobs), plus the TLS
files and config.json. Bodies already in DEST are kept, so backing up into the same folder again
copies only new mail. Restore: stop the server and use DEST as its data folder (--data DEST), or
copy its contents back into the data folder.

With --database postgres://…, message bodies live in PostgreSQL: back it up with pg_dump.

Options: --data DIR, --database URL, --json
`;

export async function backupCommand(ctx: CommandContext): Promise<number> {
  const [dest, ...rest] = ctx.args;
  if (!dest || rest.length) throw new CliError('backup takes one DEST folder; see pillarbox backup --help');
  const config = loadCliConfig(ctx);
  if (isPostgresUrl(config.database)) throw new CliError('the store is PostgreSQL: back it up with pg_dump (message bodies are in the database)');
  const dbPath = isAbsolute(config.database) ? config.database : resolve(config.database);
  if (!existsSync(dbPath)) throw new CliError(`no database at ${dbPath}; pass --data DIR or --database FILE`);
  const target = resolve(dest);
  if (target === resolve(config.dataDir)) throw new CliError('DEST must not be the data folder itself');
  mkdirSync(target, { recursive: true });
  const { backupSqlite } = await import('../../store/sqlite/backup.ts');
  const t0 = Date.now();
  const r = await backupSqlite(dbPath, join(config.dataDir, 'blobs'), target);
  // Small files the server reads at start: its certificate and settings.
  const tls = join(config.dataDir, 'tls');
  if (existsSync(tls)) cpSync(tls, join(target, 'tls'), { recursive: true });
  const cfg = join(config.dataDir, 'config.json');
  if (existsSync(cfg)) copyFileSync(cfg, join(target, 'config.json'));
  const ms = Date.now() - t0;
  output(
    ctx,
    { dest: target, database: r.database, blobs: r.blobs, copied: r.copied, bytes: r.bytes, passes: r.passes, ms },
    `backed up to ${target}: database snapshot, ${r.blobs} message bodies (${r.copied} new, ${r.bytes} bytes) in ${ms} ms`,
  );
  return 0;
}
