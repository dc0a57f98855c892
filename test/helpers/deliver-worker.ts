// Child process for the crash test: 500 concurrent deliveries through the store API; prints
// "OK <uid> <blobId>" for every delivery that has returned (i.e. was acknowledged).
import { openStore } from '../../src/store/open.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { randomBytes } from 'node:crypto';

const [dataDir, database, countArg] = process.argv.slice(2);
const store = await openStore(database!, dataDir!);
const account = (await store.getAccount('crash@example.com'))!;
const inbox = (await store.getMailbox(account.id, 'INBOX'))!;
const count = Number(countArg ?? 500);
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const body = randomBytes(1000 + ((i * 7919) % 60000)).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.from(`From: a@example.org\r\nTo: crash@example.com\r\nSubject: crash ${i}\r\n\r\n${body}\r\n`);
    const blob = await store.stageBlob(raw);
    try {
      const [r] = await store.deliver(blob, parseMessage(raw), [{ mailboxId: inbox.id }]);
      if (r?.ok) process.stdout.write(`OK ${r.uid} ${blob.id}\n`);
    } finally {
      blob.release();
    }
  }),
);
process.stdout.write('DONE\n');
await store.close();
