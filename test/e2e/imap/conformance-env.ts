// The frame of the conformance tests (issue 14): each test runs against the real server on both
// store backends (SQLite and PostgreSQL; PostgreSQL skipped when unreachable, failed under CI=true),
// one account per backend, one fresh mailbox per test.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { pgAvailability, probePostgres } from '../../store/pg-env.ts';
import type { Limits } from '../../../src/config/config.ts';

/** An account to log in as (`addUser` it first). */
export interface Login {
  user: string;
  password: string;
}

/** `fn` with a new logged-in connection; `another()` logs in one more. All are closed when `fn` ends. */
export type Session = (fn: (c: RawImap, another: () => Promise<RawImap>) => Promise<void>, as?: Login) => Promise<void>;

export interface ConformanceEnv {
  /** A new logged-in connection. */
  login(): Promise<RawImap>;
  /** The test's connections (as the backend's account, or `as`), closed afterwards. */
  session: Session;
  readonly srv: ImapTestServer;
}

/** A new connection to `srv`'s IMAPS port, logged in as `as`. */
async function connectAs(srv: ImapTestServer, as: Login): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    await c.login(as.user, as.password);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

/** A Session on `srv`'s IMAPS port, as `dflt` unless told otherwise. */
function sessionOn(srv: () => ImapTestServer, dflt: Login): Session {
  return async (fn, as = dflt) => {
    const open: RawImap[] = [];
    const another = async () => {
      const c = await connectAs(srv(), as);
      open.push(c);
      return c;
    };
    try {
      await fn(await another(), another);
    } finally {
      for (const c of open) c.close();
    }
  };
}

const avail = pgAvailability(await probePostgres());

/** Defines `body`'s tests once per backend. */
export function eachBackend(title: string, body: (env: ConformanceEnv) => void): void {
  for (const backend of ['sqlite', 'postgres'] as const) {
    const skip = backend === 'postgres' ? avail.skip : undefined;
    describe(`${title} (${backend})`, { skip }, () => {
      let srv: ImapTestServer | undefined;
      const account = { user: 'conf@example.com', password: 'pw-conf-1' };
      before(async () => {
        if (backend === 'postgres' && avail.fail) throw new Error(avail.fail);
        srv = await startImapServer({ postgres: backend === 'postgres' });
        await srv.addUser(account.user, account.password);
      });
      after(async () => {
        await srv?.done();
      });
      body({
        get srv() {
          return srv!;
        },
        login: () => connectAs(srv!, account),
        session: sessionOn(() => srv!, account),
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

/** A server of its own (SQLite) with `limits` and one account, for `fn`'s session; stopped afterwards. */
export async function ownServer(limits: Partial<Limits>, fn: Parameters<Session>[0]): Promise<void> {
  const srv = await startImapServer({ limits });
  try {
    const account = { user: 'own@example.com', password: 'pw-own-1' };
    await srv.addUser(account.user, account.password);
    await sessionOn(() => srv, account)(fn);
  } finally {
    await srv.done();
  }
}

/** The mailbox's UIDVALIDITY, by STATUS. */
export async function uidValidity(c: RawImap, box: string): Promise<string> {
  return /UIDVALIDITY (\d+)/.exec((await ok(c, `STATUS ${box} (UIDVALIDITY)`))[0]!)![1]!;
}

/** Writes `line` + CRLF, a line announcing a synchronizing literal, and expects the "+" continuation. */
export async function continued(c: RawImap, line: string): Promise<void> {
  c.write(line + '\r\n');
  assert.equal(await c.readLine(), '+ Ready for literal data');
}
