import { startPillarbox, fillStore } from './lib/pillarbox.ts';
import { ImapConn } from './lib/imap-client.ts';
import { benchMain } from './lib/util.ts';
await benchMain(async () => {
  const accounts = Array.from({ length: 8 }, (_, i) => ({ address: `b${i}@example.com`, password: 'benchpass' }));
  const t = performance.now();
  const p = await startPillarbox({ accounts, imapMaxConnections: 50, beforeStart: (dir) => fillStore(dir, [{ addresses: ['b0@example.com'], mailbox: 'INBOX', from: 0, count: 5000, unique: true, maxBytes: 8000 }]) });
  console.log('started', performance.now() - t, p.memory());
  const c = await ImapConn.connect(p.ports.imap);
  await c.login('b0@example.com', 'benchpass');
  let t1 = performance.now(); const r = await c.ok('SELECT INBOX'); console.log(r.untagged, performance.now() - t1);
  t1 = performance.now(); const f = await c.ok('UID FETCH 1:* (FLAGS)'); console.log(f.untagged.length, performance.now() - t1);
  t1 = performance.now(); const s = await c.ok('UID SEARCH BODY "zanzibar"'); console.log(s.untagged, performance.now() - t1);
  await c.logout();
  await p.stop();
});
