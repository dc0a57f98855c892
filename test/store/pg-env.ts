// PostgreSQL for the store tests: the machine's server (trust auth), one fresh schema per store,
// dropped afterwards. Unreachable: tests skip with the reason printed, except with CI=true, where
// that is a failure.

import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.PILLARBOX_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Undefined when PostgreSQL answers, else why not. */
export async function probePostgres(url = PG_URL): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return undefined;
  } catch (err) {
    return `PostgreSQL at ${url} unreachable: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => {});
  }
}

/** What to do when PostgreSQL is missing: { fail } under CI=true, { skip } elsewhere, {} when present. */
export function pgAvailability(problem: string | undefined): { skip?: string; fail?: string } {
  if (!problem) return {};
  return process.env.CI === 'true' ? { fail: problem } : { skip: problem };
}

let counter = 0;
export function freshSchemaName(): string {
  return `pbtest_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
}

export async function dropSchema(schema: string, url = PG_URL): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

/** Runs one query in the schema on its own connection. */
export async function sql(schema: string, text: string, values: unknown[] = [], url = PG_URL): Promise<Record<string, any>[]> {
  const c = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}
