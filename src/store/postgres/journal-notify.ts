// The change journal's notifications between processes on one PostgreSQL database: each write
// transaction's journal statement also calls pg_notify (postgres/journal.ts), which PostgreSQL
// delivers at COMMIT only (a rolled-back write pings nobody), with "<node>:<account>:<head>".
// Every store listens on one dedicated connection and hands other nodes' pings to its bus
// (`bus.notify`): its followers (JournalFollower) pull the entries from the journal. A ping
// lost (the connection dropped, a listener busy) costs nothing but delay: the next ping, for any
// later change of the account, brings everything since; after a reconnect every listener of the
// bus is poked once with head 0 ("read the journal").

import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { ChangeBus } from '../bus.ts';

/** The channel of one schema's journal (an identifier of at most 63 bytes whatever the schema name). */
export function journalChannel(schema: string | undefined): string {
  return `pillarbox_journal_${createHash('sha256').update(schema ?? 'public').digest('hex').slice(0, 16)}`;
}

export class PgJournalListener {
  /** This store's node id: its own pings are not handed to its bus (its Changes were published there). */
  readonly node = randomUUID().slice(0, 8);
  readonly channel: string;
  readonly #config: pg.ClientConfig;
  /** The bus the pings go to (the store's). */
  readonly bus: ChangeBus;
  #client: pg.Client | null = null;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  /** Accounts pinged so far (a reconnect pokes them: pings may have been lost meanwhile). */
  readonly #seen = new Set<number>();

  constructor(config: pg.ClientConfig, schema: string | undefined, bus: ChangeBus) {
    this.#config = config;
    this.channel = journalChannel(schema);
    this.bus = bus;
  }

  /** Connects and listens; resolves once LISTEN is in place. */
  async start(): Promise<void> {
    const c = new pg.Client(this.#config);
    c.on('error', () => this.#lost(c));
    c.on('end', () => this.#lost(c));
    c.on('notification', (m) => {
      if (m.channel === this.channel && m.payload) this.#ping(m.payload);
    });
    await c.connect();
    await c.query(`LISTEN ${this.channel}`);
    this.#client = c;
  }

  #ping(payload: string): void {
    const [node, account, head] = payload.split(':');
    if (node === this.node) return;
    const a = Number(account);
    const h = Number(head);
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(h)) return;
    this.#seen.add(a);
    this.bus.notify(a, h);
  }

  #lost(c: pg.Client): void {
    if (this.#client !== c) return;
    this.#client = null;
    c.removeAllListeners('notification');
    void c.end().catch(() => {});
    this.#schedule();
  }

  /** Reconnects in a second (again and again while it fails), then pokes every account pinged before. */
  #schedule(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.start().then(
        () => {
          for (const a of this.#seen) this.bus.notify(a, 0);
        },
        () => this.#schedule(),
      );
    }, 1000);
    this.#retry.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    const c = this.#client;
    this.#client = null;
    if (c) await c.end().catch(() => {});
  }
}
