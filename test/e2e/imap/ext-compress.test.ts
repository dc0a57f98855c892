// Issue 14 extensions, part 4: COMPRESS=DEFLATE (RFC 4978) against the real server: a raw client
// that deflates its commands and inflates the responses with node:zlib, exact responses; mbsync
// and imapflow use it too (mbsync.test.ts checks its trace).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, Writable } from 'node:stream';
import { constants, createDeflateRaw, createInflateRaw } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { crlf, eachBackend, ok } from './conformance-env.ts';
import { RawImap } from './raw-client.ts';
import { probeRoundTrips, rssOf, sampleRss } from '../../helpers/probe.ts';

/** Switches a connection to raw DEFLATE both ways (RFC 4978 §3); `wire` counts compressed bytes received. */
function compressed(c: RawImap): { client: RawImap; wire: { bytes: number } } {
  const sock = c.socket as Socket;
  sock.removeAllListeners('data');
  const wire = { bytes: 0 };
  sock.on('data', (d: Buffer) => (wire.bytes += d.length));
  const inflate = createInflateRaw();
  sock.pipe(inflate);
  const deflate = createDeflateRaw();
  deflate.pipe(sock);
  const writable = new Writable({
    write(chunk, _enc, cb) {
      deflate.write(chunk);
      deflate.flush(constants.Z_SYNC_FLUSH, () => cb());
    },
  });
  const duplex = Duplex.from({ readable: inflate, writable });
  duplex.on('close', () => sock.destroy());
  return { client: new RawImap(duplex as unknown as Socket), wire };
}

eachBackend('IMAP extensions: COMPRESS=DEFLATE', (env) => {
  const { login, session } = env;
  test('RFC 4978 §3: "c compress deflate" → "c OK DEFLATE active", then everything is compressed both ways', async () => {
    const c = await login();
    const other = await login();
    let z: RawImap | null = null;
    try {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / COMPRESS=DEFLATE( |$)/);
      assert.match((await c.cmd('COMPRESS GZIP')).tagged, /^t\d+ BAD Unknown compression mechanism GZIP$/);
      c.write('c compress deflate\r\n');
      assert.equal(await c.readLine(), 'c OK DEFLATE active');
      const s = compressed(c);
      z = s.client;
      assert.deepEqual(await ok(z, 'NOOP'), []);
      const cap = (await ok(z, 'CAPABILITY'))[0]!;
      assert.match(cap, /^\* CAPABILITY IMAP4rev2 /);
      assert.ok(!cap.includes('COMPRESS='), 'not offered again');
      // §3: BAD when COMPRESS is already active.
      assert.match((await z.cmd('COMPRESS DEFLATE')).tagged, /^t\d+ BAD \[COMPRESSIONACTIVE\] DEFLATE is already active$/);
      // An upload (LITERAL+ and synchronizing) and its download, compressed: 300 KB of text, 200 KB random.
      await ok(z, 'CREATE Zip');
      const text = crlf(['Subject: big text', '', ...Array.from({ length: 6000 }, (_, i) => `line ${i} of a long and repetitive message body`)]);
      assert.match((await z.append('Zip', text, '', true)).tagged, /^t\d+ OK \[APPENDUID \d+ 1\] /);
      const bin = crlf(['Subject: random', '', randomBytes(150_000).toString('base64')]);
      assert.match((await z.append('Zip', bin)).tagged, /^t\d+ OK \[APPENDUID \d+ 2\] /);
      await ok(z, 'SELECT Zip');
      const before = s.wire.bytes;
      const f1 = await z.cmd('FETCH 1 BODY.PEEK[]', 15000);
      assert.equal(RawImap.literalAfter(f1.raw, 'BODY[]')!.toString(), text);
      assert.ok(s.wire.bytes - before < text.length / 5, `text compresses: ${s.wire.bytes - before} bytes on the wire for ${text.length}`);
      const f2 = await z.cmd('FETCH 2 BODY.PEEK[]', 15000);
      assert.equal(RawImap.literalAfter(f2.raw, 'BODY[]')!.toString(), bin);
      // IDLE: another session's message is pushed at once (the deflater is flushed per response).
      z.write('i1 IDLE\r\n');
      assert.equal(await z.readLine(), '+ idling');
      assert.match((await other.append('Zip', crlf(['Subject: pushed', '', 'p']))).tagged, / OK /);
      assert.equal(await z.readLine(2000), '* 3 EXISTS');
      z.write('DONE\r\n');
      assert.equal((await z.until('i1')).tagged, 'i1 OK IDLE terminated');
      // LOGOUT: BYE and OK arrive whole before the server closes (the deflater's end ends the socket).
      const bye = await z.cmd('LOGOUT');
      assert.deepEqual([bye.lines, bye.tagged.replace(/^\S+ /, '')], [['* BYE Logging out'], 'OK LOGOUT completed']);
    } finally {
      z?.close();
      c.close();
      other.close();
    }
  });

  test('RFC 4978 §5: COMPRESS is a command of the authenticated state', async () => {
    const c = await RawImap.connect(env.srv.ports.imaps, { tls: true, ca: env.srv.ca });
    try {
      assert.ok(!(await ok(c, 'CAPABILITY'))[0]!.includes('COMPRESS='));
      assert.equal((await c.cmd('COMPRESS DEFLATE')).tagged.replace(/^\S+ /, ''), 'BAD COMPRESS: Log in first');
      assert.deepEqual(await ok(c, 'NOOP'), [], 'still uncompressed');
    } finally {
      c.close();
    }
  });

  test('RFC 4978 with backpressure: a compressing client that never reads holds no unbounded output', (t) =>
    session(async (c, another) => {
      const other = await another();
      await ok(c, 'CREATE ZipFlood');
      const bin = crlf(['Subject: random', '', randomBytes(150_000).toString('base64')]);
      assert.match((await c.append('ZipFlood', bin)).tagged, / OK /);
      await ok(c, 'SELECT ZipFlood');
      c.write('z COMPRESS DEFLATE\r\n');
      assert.equal(await c.readLine(), 'z OK DEFLATE active');
      const { client } = compressed(c);
      (c.socket as Socket).pause(); // never read again
      const pid = env.srv.proc.pid!;
      const start = rssOf(pid);
      const rss = sampleRss(pid);
      // 1,500 × 200 KB of incompressible body: 300 MB of output nobody reads. Buffered, it would
      // show in RSS by far; held back (the deflater and the socket full), RSS moves by what reading
      // bodies leaves for the garbage collector (11-60 MB here, PostgreSQL's reads the most).
      for (let i = 0; i < 1500; i++) client.write(`f${i} FETCH 1 BODY.PEEK[]\r\n`);
      const probe = probeRoundTrips(() => other.cmd('NOOP', 60_000));
      await new Promise((r) => setTimeout(r, 3000));
      const { maxMs, count } = await probe.stop();
      const grown = rss.stop() - start;
      t.diagnostic(`RSS +${(grown / 1048576).toFixed(1)} MB; other client ${count} round trips, slowest ${maxMs.toFixed(0)} ms`);
      assert.ok(grown < 96 * 1024 * 1024, `RSS grew ${(grown / 1048576).toFixed(1)} MB`);
      assert.ok(maxMs < 1500 && count > 10, `another client: ${count} round trips, slowest ${maxMs} ms`);
      client.close();
    }));

  test('RFC 4978: inflated input keeps the line cap: a 20 MB line that deflates to ~20 KB gets BYE [TOOBIG]', () =>
    session(async (c) => {
      c.write('z COMPRESS DEFLATE\r\n');
      assert.equal(await c.readLine(), 'z OK DEFLATE active');
      const { client } = compressed(c);
      const pid = env.srv.proc.pid!;
      const rss = sampleRss(pid);
      const start = rssOf(pid);
      client.write('a NOOP ' + 'A'.repeat(20 * 1024 * 1024));
      assert.equal(await client.readLine(10_000), '* BYE [TOOBIG] Line longer than 65536 bytes');
      assert.ok(rss.stop() - start < 48 * 1024 * 1024);
      client.close();
    }));
});
