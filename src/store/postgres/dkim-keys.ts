// DkimKeyStore on PostgreSQL (table dkim_keys, migration 6).

import type pg from 'pg';
import { StoreError } from '../store.ts';
import { dkimKeyFromRow, type DkimKey, type DkimKeyStore, type DkimAlgorithm } from '../dkim-keys.ts';

type Row = Record<string, any>;

export class PgDkimKeys implements DkimKeyStore {
  readonly #pool: pg.Pool;
  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async add(k: { domain: string; selector: string; algorithm: DkimAlgorithm; privateKeyPem: string; now: number }): Promise<DkimKey> {
    const domain = k.domain.toLowerCase();
    const selector = k.selector.toLowerCase();
    try {
      const r = await this.#pool.query(
        'INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created_at, active) VALUES ($1, $2, $3, $4, $5, true) RETURNING *',
        [domain, selector, k.algorithm, k.privateKeyPem, k.now],
      );
      return dkimKeyFromRow(r.rows[0]!);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new StoreError('exists', `DKIM selector ${selector} already exists for ${domain}`);
      throw err;
    }
  }

  async list(domain?: string): Promise<DkimKey[]> {
    const r = domain === undefined
      ? await this.#pool.query('SELECT * FROM dkim_keys ORDER BY domain COLLATE "C", created_at, selector COLLATE "C"')
      : await this.#pool.query('SELECT * FROM dkim_keys WHERE domain = $1 ORDER BY created_at, selector COLLATE "C"', [domain.toLowerCase()]);
    return r.rows.map(dkimKeyFromRow);
  }

  async get(domain: string, selector: string): Promise<DkimKey | null> {
    const r = await this.#pool.query('SELECT * FROM dkim_keys WHERE domain = $1 AND selector = $2', [domain.toLowerCase(), selector.toLowerCase()]);
    return r.rows[0] ? dkimKeyFromRow(r.rows[0]) : null;
  }

  async active(domain: string): Promise<DkimKey[]> {
    const r = await this.#pool.query('SELECT * FROM dkim_keys WHERE domain = $1 AND active ORDER BY created_at, selector COLLATE "C"', [domain.toLowerCase()]);
    return r.rows.map(dkimKeyFromRow);
  }

  async retire(domain: string, selector: string, now: number): Promise<DkimKey | null> {
    const r = await this.#pool.query(
      'UPDATE dkim_keys SET active = false, retired_at = coalesce(retired_at, $1) WHERE domain = $2 AND selector = $3 RETURNING *',
      [now, domain.toLowerCase(), selector.toLowerCase()],
    );
    return r.rows[0] ? dkimKeyFromRow(r.rows[0]) : null;
  }

  async remove(domain: string, selector: string): Promise<boolean> {
    return ((await this.#pool.query('DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2', [domain.toLowerCase(), selector.toLowerCase()])).rowCount ?? 0) > 0;
  }
}
