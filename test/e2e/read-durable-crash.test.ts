// Issue 12: the SQLite store answers a write only after an fdatasync on the thread pool, and no
// session reads a commit before that fdatasync returned (src/store/sqlite/changes.ts). Here a real
// server takes deliveries (SMTP) and APPENDs (IMAP) while another IMAP client SELECTs, STATUSes and
// FETCHes the Message-IDs of everything it is shown; the server is SIGKILLed in the middle and
// restarted. Every UID the reader was shown must still hold the message it was shown with (a UID
// seen, then lost and given to another message, would show here), UIDNEXT never goes back, and
// the server never reported a read past the gate (`store.read-not-gated`).
// (A SIGKILL keeps what the kernel has: this checks the server's side of the rule, not the disk's;
// test/store/read-gate.test.ts holds the fdatasync back to show that nothing is read before it.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawImap } from './imap/raw-client.ts';

const USER = 'reader@example.com';
const servers: TestServer[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'pb-read-crash-'));
after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

/** UID → Message-ID of every message a FETCH 1:* answered with. */
function fetched(lines: string[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const l of lines) {
    const uid = /^\* \d+ FETCH \(.*?\bUID (\d+)/s.exec(l);
    const id = /Message-ID: (<[^>\r\n]+>)/i.exec(l);
    if (uid && id) out.set(Number(uid[1]), id[1]!);
  }
  return out;
}

test('SIGKILL while one client reads and others write: no UID shown is lost or reused, UIDNEXT never goes back', { timeout: 240_000 }, async () => {
  const dataDir = mkdtempSync(join(tmp, 'data-'));
  const srv = await startServer({ plaintext: true, dataDir });
  servers.push(srv);
  await srv.addUser(USER, 'pw');

  let stop = false;
  const seen = new Map<number, string>();
  let uidNextSeen = 0;
  let rounds = 0;
  const writers = [
    (async () => {
      const t = nodemailer.createTransport({ pool: true, maxConnections: 1, host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
      try {
        for (let i = 0; !stop; i++) {
          const raw = `Message-ID: <smtp-${i}@crash.example>\r\nSubject: d ${i}\r\n\r\n${'d'.repeat(500)}\r\n`;
          await t.sendMail({ envelope: { from: 'x@elsewhere.example', to: [USER] }, raw }).catch(() => {});
        }
      } finally {
        t.close();
      }
    })(),
    (async () => {
      const c = await RawImap.connect(srv.ports.imap);
      await c.login(USER, 'pw');
      for (let i = 0; !stop; i++) {
        const r = await c.append('INBOX', `Message-ID: <imap-${i}@crash.example>\r\nSubject: a ${i}\r\n\r\n${'a'.repeat(500)}\r\n`).catch(() => null);
        if (!r) break;
      }
      c.close();
    })(),
  ];
  const reader = (async () => {
    const c = await RawImap.connect(srv.ports.imap);
    await c.login(USER, 'pw');
    try {
      while (!stop) {
        const st = await c.cmd('STATUS INBOX (UIDNEXT MESSAGES)');
        const n = /UIDNEXT (\d+)/.exec(st.lines.join(' '));
        if (n) uidNextSeen = Math.max(uidNextSeen, Number(n[1]));
        await c.cmd('SELECT INBOX');
        const f = await c.cmd('UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])', 20_000);
        for (const [uid, id] of fetched(f.lines)) {
          const before = seen.get(uid);
          assert.ok(before === undefined || before === id, `UID ${uid} showed ${before}, then ${id}`);
          seen.set(uid, id);
        }
        await c.cmd('CLOSE');
        rounds++;
      }
    } catch (err) {
      if (!stop) throw err;
    }
  })();

  while (rounds < 15 || seen.size < 150) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const output = srv.output();
  stop = true;
  await srv.kill();
  await Promise.allSettled([reader, ...writers]);
  assert.doesNotMatch(output, /store\.read-not-gated/);

  const again = await srv.restart();
  servers.push(again);
  const c = await RawImap.connect(again.ports.imap);
  await c.login(USER, 'pw');
  const st = await c.cmd('STATUS INBOX (UIDNEXT)');
  const uidNext = Number(/UIDNEXT (\d+)/.exec(st.lines.join(' '))![1]);
  assert.ok(uidNext >= uidNextSeen, `UIDNEXT ${uidNext} after the restart, ${uidNextSeen} shown before`);
  await c.cmd('SELECT INBOX');
  const now = fetched((await c.cmd('UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])', 30_000)).lines);
  for (const [uid, id] of seen) assert.equal(now.get(uid), id, `UID ${uid} was shown with ${id}`);
  // One more delivery takes a UID none was shown with.
  const r = await c.append('INBOX', 'Message-ID: <after@crash.example>\r\nSubject: after\r\n\r\nok\r\n');
  const uid = Number(/APPENDUID \d+ (\d+)/.exec(r.tagged)![1]);
  assert.ok(!seen.has(uid) && uid >= uidNextSeen);
  c.close();
  await again.stop();
});
