// Issue 13, "against Postfix from Debian on a loopback port, both ways". One private Postfix
// (bench/lib/peers.ts: its own config, queue and data folders in a temp dir, smtpd on a high
// loopback port, logging to DIR/maillog) and one Pillarbox, both on 127.0.0.1, plus a test DNS:
//   a) Pillarbox → Postfix: adam submits over 587 to rita@remote.test; MX remote.test → 127.0.0.1,
//      Pillarbox's outbound port = Postfix's smtpd port; Postfix's virtual(8) writes it into a
//      Maildir and logs status=sent; the stored copy's DKIM-Signature verifies with mailauth.
//   b) Postfix → Pillarbox's MX: a message injected with Postfix's sendmail(1), routed by a
//      transport map to smtp:[127.0.0.1]:<MX port>; status=sent, and it is in bea's INBOX (IMAP).
//   c) Postfix → Pillarbox's LMTP listener (lmtp:inet:127.0.0.1:<port>): four recipients, two
//      known, one unknown (550 5.1.1 at RCPT) and one over quota (552 5.2.2: at RCPT, as Postfix declares SIZE); Postfix
//      logs each recipient's own result with Pillarbox's reply; the two mailboxes have it.
// Every wait polls the log or the store with a generous deadline (the machine is shared).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promises as dnsp } from 'node:dns';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { dkimVerify } from 'mailauth';
import { needs, installed } from '../../helpers/external.ts';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { startSender, submit, waitFor, type Sender } from '../queue/util.ts';
import { stored } from '../smtp/util.ts';
import { freePort, startPostfixInstance, type Postfix } from '../../../bench/lib/peers.ts';
import { alive, descendants, killTree } from '../../../bench/lib/util.ts';

const POSTFIX = '/usr/sbin/postfix';
const DEADLINE = 120_000;

let dns: TestDns;
let pb: Sender;
let pf: Postfix;
let pfPids: number[] = [];

process.on('exit', () => {
  // Last resort if after() never ran: no Postfix left behind.
  if (pf) killTree(pf.masterPid());
});

before(async () => {
  if (!installed(POSTFIX)) return;
  dns = await startDns([
    { name: 'remote.test', type: 'MX', priority: 10, exchange: 'mx.remote.test' },
    { name: 'mx.remote.test', type: 'A', address: '127.0.0.1' },
  ]);
  // Postfix's port first (Pillarbox sends there), Pillarbox next (Postfix's transports need its ports).
  const pfPort = await freePort();
  pb = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port: pfPort, outbound: { retryBase: 1000, retryMax: 5000, timeout: 30_000 }, args: ['--lmtp-port', '0'] });
  await pb.addUser('adam@a.test', 'adam-pw');
  await pb.addUser('bea@a.test', 'bea-pw');
  for (const u of ['betty', 'carol']) await pb.addUser(`${u}@l.test`, `${u}-pw`);
  await pb.addUser('tiny@l.test', 'tiny-pw', { quota: '1000' });
  const gen = await pb.cli(['dkim', 'generate', 'a.test']);
  assert.equal(gen.code, 0, gen.stderr);
  const zone = await pb.cli(['dns', 'a.test', '--ip', '127.0.0.1', '--hostname', 'mail.a.test']);
  assert.equal(zone.code, 0, zone.stderr);
  dns.load(zone.stdout);
  const lmtpPort = (pb.ports as unknown as { lmtp?: number }).lmtp;
  assert.ok(lmtpPort, `LMTP port in the ports file: ${JSON.stringify(pb.ports)}`);

  pf = await startPostfixInstance({
    name: 'interop-postfix',
    port: pfPort,
    nobodyDirs: ['mail'],
    files: {
      vmailbox: 'rita@remote.test remote.test/rita/\n',
      // pf.test is the senders' domain of b) and c): their bounces are discarded here.
      transport: `a.test smtp:[127.0.0.1]:${pb.ports.smtp}\nl.test lmtp:inet:127.0.0.1:${lmtpPort}\npf.test discard:bounces of the test\n`,
    },
    main: {
      myhostname: 'mx.remote.test',
      virtual_mailbox_domains: 'remote.test',
      virtual_mailbox_base: '$config_directory/../mail',
      virtual_mailbox_maps: 'texthash:$config_directory/vmailbox',
      virtual_uid_maps: 'static:65534',
      virtual_gid_maps: 'static:65534',
      virtual_mailbox_limit: '0',
      transport_maps: 'texthash:$config_directory/transport',
      // Pillarbox answers fast on loopback; don't let a busy machine turn a slow reply into a defer.
      smtp_connect_timeout: '60s',
      lmtp_connect_timeout: '60s',
    },
  });
  pfPids = [pf.masterPid(), ...descendants(pf.masterPid())];
});

after(async () => {
  if (pf) {
    const before = [pf.masterPid(), ...descendants(pf.masterPid()), ...pfPids];
    await pf.stop();
    // Every Postfix process of this instance is gone (master and its children).
    const left = before.filter((p) => alive(p) && isPostfixProcess(p));
    assert.deepEqual(left, [], `Postfix processes left: ${left.join(', ')}`);
  }
  await pb?.done();
  await dns?.close();
});

function isPostfixProcess(pid: number): boolean {
  try {
    const exe = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    return exe.includes('postfix') || exe.includes('master') || exe.includes('qmgr') || exe.includes('smtpd');
  } catch {
    return false;
  }
}

/** The maillog lines about one recipient (`to=<addr>`) that carry a status. */
function statusLines(addr: string): string[] {
  return pf.log().split('\n').filter((l) => l.includes(`to=<${addr}>`) && l.includes(' status='));
}

function waitStatus(addr: string, status = 'sent'): Promise<string> {
  return waitFor(`Postfix logging status=${status} for ${addr}`, () => {
    const l = statusLines(addr).find((x) => x.includes(`status=${status}`));
    if (!l && statusLines(addr).some((x) => x.includes('status=bounced'))) throw new Error(`bounced: ${statusLines(addr).join('\n')}`);
    return l ?? null;
  }, DEADLINE, 200).catch((err: Error) => {
    throw new Error(`${err.message}\n--- maillog tail:\n${pf.logTail(40)}\n--- pillarbox output tail:\n${pb.output().split('\n').slice(-30).join('\n')}`);
  });
}

test('a) Pillarbox delivers to Postfix by MX: status=sent, DKIM-Signature verifies (mailauth)', needs(POSTFIX), async () => {
  await submit(pb, 'adam@a.test', 'adam-pw', { to: ['rita@remote.test'], subject: 'to postfix', text: 'from pillarbox to postfix\r\nline two\r\n' });
  const line = await waitStatus('rita@remote.test');
  assert.match(line, /postfix\/virtual\[/);
  const newDir = join(pf.dir, 'mail', 'remote.test', 'rita', 'new');
  const files = await waitFor('the message in rita\'s Maildir', () => {
    try {
      const f = readdirSync(newDir);
      return f.length ? f : null;
    } catch {
      return null;
    }
  }, DEADLINE);
  assert.equal(files.length, 1, 'delivered once');
  const raw = readFileSync(join(newDir, files[0]!));
  const text = raw.toString('latin1');
  assert.match(text, /^Subject: to postfix$/m);
  assert.match(text, /^DKIM-Signature: .*d=a\.test/m);
  // Postfix's Maildir file has LF line ends; on the wire (and for DKIM) lines end in CRLF.
  const wire = Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1');
  const resolver = new dnsp.Resolver();
  resolver.setServers(dns.servers);
  const res: any = await dkimVerify(wire, { resolver: (name: string, type: string) => resolver.resolve(name, type as 'TXT') });
  const sig = res.results?.find((r: { signingDomain?: string }) => r.signingDomain === 'a.test');
  assert.equal(sig?.status?.result, 'pass', JSON.stringify(res.results?.map((r: { status?: unknown }) => r.status)));
});

test('b) Postfix relays to Pillarbox\'s MX: status=sent, in bea\'s INBOX (IMAP)', needs(POSTFIX), async () => {
  const msg = 'From: Alice <alice@pf.test>\nTo: bea@a.test\nSubject: from postfix sendmail\nMessage-ID: <b.1@pf.test>\n\nrelayed by postfix\n';
  pf.sendmail('alice@pf.test', ['bea@a.test'], msg);
  const line = await waitStatus('bea@a.test');
  assert.match(line, /postfix\/smtp\[.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 /);
  const imap = new ImapFlow({ host: '127.0.0.1', port: pb.ports.imaps, secure: true, tls: { ca: [pb.ca], servername: 'localhost' }, auth: { user: 'bea@a.test', pass: 'bea-pw' }, logger: false });
  await imap.connect();
  try {
    const lock = await imap.getMailboxLock('INBOX');
    try {
      const found: string[] = [];
      for await (const m of imap.fetch('1:*', { envelope: true, source: true })) {
        if (m.envelope?.subject === 'from postfix sendmail') found.push(m.source!.toString('latin1'));
      }
      assert.equal(found.length, 1, 'in INBOX once');
      assert.match(found[0]!, /relayed by postfix/);
      assert.match(found[0]!, /^Received: from .*mx\.remote\.test/m, 'Postfix\'s hop recorded by Pillarbox');
    } finally {
      lock.release();
    }
  } finally {
    await imap.logout();
  }
});

test('c) Postfix delivers to Pillarbox\'s LMTP listener: one result per recipient', needs(POSTFIX), async () => {
  // Into Postfix's smtpd (127.0.0.0/8 is mynetworks: it relays), then its lmtp client to Pillarbox.
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: pf.port, secure: false, ignoreTLS: true });
  try {
    await t.sendMail({
      envelope: { from: 'alice@pf.test', to: ['betty@l.test', 'nobody@l.test', 'carol@l.test', 'tiny@l.test'] },
      raw: `From: alice@pf.test\r\nTo: betty@l.test, carol@l.test, tiny@l.test\r\nSubject: over lmtp\r\nMessage-ID: <c.1@pf.test>\r\n\r\n${'lmtp body line\r\n'.repeat(120)}`,
    });
  } finally {
    t.close();
  }
  const betty = await waitStatus('betty@l.test');
  const carol = await waitStatus('carol@l.test');
  for (const l of [betty, carol]) assert.match(l, /postfix\/lmtp\[.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 /);
  const unknown = await waitFor('a final result for nobody@l.test', () => statusLines('nobody@l.test').find((l) => /status=(bounced|deferred)/.test(l)) ?? null, DEADLINE, 200);
  assert.match(unknown, /status=bounced .*550 5\.1\.1 .*in reply to RCPT TO/);
  const tiny = await waitFor('a final result for tiny@l.test', () => statusLines('tiny@l.test').find((l) => /status=(bounced|deferred)/.test(l)) ?? null, DEADLINE, 200);
  // Postfix sends SIZE= (RFC 1870), so Pillarbox can refuse at RCPT already; without it, after DATA.
  assert.match(tiny, /status=(bounced|deferred) .*[45]52 [45]\.2\.2 .*in reply to (RCPT TO command|end of DATA)/);
  // The queue id is the same for all four: one LMTP transaction, per-recipient replies.
  const qid = (l: string) => /: ([0-9A-F]{6,}): to=/.exec(l)?.[1];
  assert.ok(qid(betty) && qid(betty) === qid(carol) && qid(carol) === qid(unknown) && qid(unknown) === qid(tiny), 'one queue file, four results');
  for (const u of ['betty@l.test', 'carol@l.test']) {
    const got = (await stored(pb.dataDir, u)).filter((m) => m.toString('latin1').includes('Subject: over lmtp'));
    assert.equal(got.length, 1, `${u} has it once`);
  }
  assert.equal((await stored(pb.dataDir, 'tiny@l.test')).filter((m) => m.toString('latin1').includes('Subject: over lmtp')).length, 0);
  // Postfix bounced to alice@pf.test (discarded by its transport), it didn't keep anything queued.
  await waitFor('Postfix queue empty', () => pf.queued() === 0 || null, DEADLINE, 250);
});
