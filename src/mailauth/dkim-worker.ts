// Worker thread of the DKIM signer pool (dkim-pool.ts): signs with the shared signer
// (./dkim.ts, mailauth) off the event loop. Several jobs may be in flight; each answer carries its id.
// Parsed keys are kept between messages (key-memo.ts: mailauth would parse them for every one).
import { parentPort } from 'node:worker_threads';
import { signWithKeys } from './dkim.ts';
import { memoisePrivateKeys } from './key-memo.ts';
import type { SignJob, SignReply } from './dkim-pool.ts';

memoisePrivateKeys();

parentPort!.on('message', (job: SignJob) => {
  // The message arrives as a Uint8Array (structured clone); the signer wants a Buffer.
  const message = Buffer.from(job.message.buffer, job.message.byteOffset, job.message.byteLength);
  signWithKeys(message, job.domain, job.keys, job.now).then(
    (result) => parentPort!.postMessage({ id: job.id, result } satisfies SignReply),
    (err: Error) => parentPort!.postMessage({ id: job.id, error: err?.message ?? String(err) } satisfies SignReply),
  );
});
