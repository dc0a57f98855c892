// What the POP3 end-to-end tests run against: the POP3 server with a real store, reachable on
// 127.0.0.1 with real TLS, that can be filled, inspected and restarted.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccountSettings, MessageSummary, Store } from '../../../src/store/store.ts';
import { openStore } from '../../../src/store/open.ts';
import { startServer, type TestServer } from '../../helpers/server.ts';
import type { PopEndpoint } from './clients.ts';
import { startHarness, addAccount, deliverMessages } from './harness.ts';

export interface Target extends PopEndpoint {
  ca: string;
  addAccount(address: string, password: string, settings?: AccountSettings): Promise<void>;
  setPop(address: string, pop: NonNullable<AccountSettings['pop']>): Promise<void>;
  deliver(address: string, bodies: Buffer[]): Promise<void>;
  /** Messages of a mailbox (by special use or name), as the store has them now. */
  messages(address: string, mailbox?: string): Promise<MessageSummary[]>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** The POP3 server in this process over a SQLite store in a temp dir (restart = reopen store and listeners). */
export async function harnessTarget(): Promise<Target> {
  const h = await startHarness({ allowPlaintextLoopback: false });
  const t: Target = {
    get pop3() {
      return h.port;
    },
    get pop3s() {
      return h.tlsPort;
    },
    caFile: h.caFile,
    ca: h.ca,
    async addAccount(address, password, settings) {
      await addAccount(h.store, address, password, settings);
    },
    async setPop(address, pop) {
      const a = (await h.store.getAccount(address))!;
      await h.store.updateAccount(a.id, { settings: { ...a.settings, pop: { ...(a.settings.pop ?? {}), ...pop } } });
    },
    async deliver(address, bodies) {
      const a = (await h.store.getAccount(address))!;
      await deliverMessages(h.store, a.id, bodies);
    },
    async messages(address, mailbox = 'INBOX') {
      const a = (await h.store.getAccount(address))!;
      const boxes = await h.store.listMailboxes(a.id);
      const mb = boxes.find((b) => b.specialUse === mailbox || b.name === mailbox)!;
      return h.store.listMessages(mb.id);
    },
    restart: () => h.restart(),
    close: () => h.close(),
  };
  return t;
}

/**
 * The real `pillarbox serve` child process (test/helpers/server.ts). Accounts are made through the
 * admin CLI (`cliAccounts`) or the store, POP settings through the CLI; mail is delivered through a store opened on the server's data dir in this
 * process (SQLite WAL allows both; the server's change bus does not see these deliveries).
 */
export async function serverTarget(opts: { cliAccounts?: boolean } = {}): Promise<Target & { server: TestServer; store: Store }> {
  let s = await startServer(process.env.POP3_DEBUG ? { args: ["--log-level", "debug"] } : {});
  const caFile = join(s.dataDir, 'test-ca.pem');
  writeFileSync(caFile, s.ca);
  const store = await openStore(join(s.dataDir, 'pillarbox.sqlite'), s.dataDir);
  const cli = async (args: string[]) => {
    const r = await s.cli(args);
    if (r.code !== 0) throw new Error(`pillarbox ${args.join(' ')} failed: ${r.stderr}`);
  };
  const setPop = async (address: string, pop: NonNullable<AccountSettings['pop']>) => {
    for (const [k, v] of Object.entries(pop)) {
      const value = k === 'showSince' ? (v === null ? 'all' : new Date(v as number).toISOString()) : String(v);
      await cli(['user', 'set', address, `pop.${k}`, value]);
    }
  };
  const t = {
    get server() {
      return s;
    },
    store,
    get pop3() {
      return s.ports.pop3;
    },
    get pop3s() {
      return s.ports.pop3s;
    },
    caFile,
    ca: s.ca,
    async addAccount(address: string, password: string, settings?: AccountSettings) {
      if (opts.cliAccounts) {
        await s.addUser(address, password);
        if (settings?.pop) await setPop(address, settings.pop);
      } else {
        // Straight into the store: each admin CLI run costs a process start.
        await addAccount(store, address, password, settings);
      }
    },
    setPop,
    async deliver(address: string, bodies: Buffer[]) {
      const a = (await store.getAccount(address))!;
      await deliverMessages(store, a.id, bodies);
    },
    async messages(address: string, mailbox = 'INBOX') {
      const a = (await store.getAccount(address))!;
      const boxes = await store.listMailboxes(a.id);
      const mb = boxes.find((b) => b.specialUse === mailbox || b.name === mailbox)!;
      return store.listMessages(mb.id);
    },
    async restart() {
      s = await s.restart();
    },
    async close() {
      await store.close();
      await s.stop();
      rmSync(s.dataDir, { recursive: true, force: true });
    },
  };
  return t;
}
