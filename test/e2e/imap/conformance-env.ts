// The frame of the conformance tests (issue 14): each test runs against the real server on both
// store backends (SQLite and PostgreSQL; PostgreSQL skipped when unreachable, failed under CI=true),
// one account per backend, one fresh mailbox per test.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { pgAvailability, probePostgres } from '../../store/pg-env.ts';

export interface ConformanceEnv {
  /** A new logged-in connection. */
  login(): Promise<RawImap>;
  readonly srv: ImapTestServer;
}

const avail = pgAvailability(await probePostgres());

/** Defines `body`'s tests once per backend. */
export function eachBackend(title: string, body: (env: ConformanceEnv) => void): void {
  for (const backend of ['sqlite', 'postgres'] as const) {
    const skip = backend === 'postgres' ? avail.skip : undefined;
    describe(`${title} (${backend})`, { skip }, () => {
      let srv: ImapTestServer | undefined;
      const A = 'conf@example.com';
      const PW = 'pw-conf-1';
      before(async () => {
        if (backend === 'postgres' && avail.fail) throw new Error(avail.fail);
        srv = await startImapServer({ postgres: backend === 'postgres' });
        await srv.addUser(A, PW);
      });
      after(async () => {
        await srv?.done();
      });
      body({
        get srv() {
          return srv!;
        },
        async login() {
          const c = await RawImap.connect(srv!.ports.imaps, { tls: true, ca: srv!.ca });
          await c.login(A, PW);
          return c;
        },
      });
    });
  }
}

/** A fresh mailbox holding `messages`, selected. */
export async function mailbox(c: RawImap, name: string, messages: string[], select = 'SELECT'): Promise<void> {
  assert.match((await c.cmd(`CREATE ${name}`)).tagged, / OK /);
  for (const m of messages) assert.match((await c.append(name, m)).tagged, / OK /);
  assert.match((await c.cmd(`${select} ${name}`)).tagged, / OK /);
}

/** Lines joined with CRLF, ending in CRLF. */
export const crlf = (lines: string[]): string => lines.join('\r\n') + '\r\n';

/** `cmd`'s reply: its untagged lines, and asserts the tagged OK. */
export async function ok(c: RawImap, cmd: string): Promise<string[]> {
  const r = await c.cmd(cmd);
  assert.match(r.tagged, /^t\d+ OK /, `${cmd} → ${r.tagged}`);
  return r.lines;
}
