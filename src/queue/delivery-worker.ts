// Worker thread of the delivery workers (delivery-pool.ts): the SMTP client sessions of
// transport.ts (nodemailer's SMTPConnection: connect, EHLO, STARTTLS, MAIL/RCPT/DATA and the
// replies) run here, beside the event loop. This thread keeps no queue state: it opens sessions
// when asked, sends the bytes it is given and answers with the per-recipient replies; the engine
// on the main thread decides and settles every outcome (src/queue/engine.ts).
//
// - MTA-STS: the policy was looked up on the main thread (its cache lives there) and comes with
//   the open request; the TLS-RPT results and MTA-STS log lines the session produces are sent back
//   with the answer and recorded there.
// - A session that ends or fails while idle is announced (`state`), so the engine does not pick it.

import { parentPort } from 'node:worker_threads';
import type { MtaSts, StsPolicy, TlsReport } from './mta-sts.ts';
import { SmtpSession, TransportError, type TransportOptions } from './transport.ts';
import type { DeliveryEvent, DeliveryJob, DeliveryReply, OpenResult } from './delivery-pool.ts';

const sessions = new Map<number, SmtpSession>();
let nextSid = 1;

function options(t: Extract<DeliveryJob, { op: 'open' }>, events: DeliveryEvent[]): TransportOptions {
  const o: TransportOptions = { ...t.transport };
  // Stand-ins for the main thread's objects: the looked-up policy, and events recorded for later.
  o.mtaSts = { policyFor: async () => t.sts, log: (event: string, fields: Record<string, string | number | boolean | undefined>) => void events.push({ kind: 'log', event, fields }) } as unknown as MtaSts;
  o.tlsReport = {
    record: (domain: string, sts: boolean, failure: string | null, policy?: StsPolicy | null) => void events.push({ kind: 'tls', domain, sts, failure, policy: policy ?? null }),
  } as unknown as TlsReport;
  if (!t.useSts) delete o.mtaSts;
  if (!t.useTlsReport) delete o.tlsReport;
  return o;
}

async function open(job: Extract<DeliveryJob, { op: 'open' }>): Promise<OpenResult> {
  const events: DeliveryEvent[] = [];
  const o = options(job, events);
  try {
    const s = job.relay ? await SmtpSession.toRelay(job.relay, o) : await SmtpSession.toMx(job.domain, job.hosts, o);
    const sid = nextSid++;
    sessions.set(sid, s);
    s.onGone(() => parentPort!.postMessage({ kind: 'state', sid, usable: false }));
    return { ok: true, sid, host: s.host, mxHostname: s.mxHostname, events };
  } catch (err) {
    const e = err instanceof TransportError ? err : new TransportError(0, `451 4.4.2 ${(err as Error).message}`);
    return { ok: false, code: e.code, reply: e.reply, events };
  }
}

async function run(job: DeliveryJob): Promise<unknown> {
  if (job.op === 'open') return open(job);
  const s = sessions.get(job.sid);
  if (job.op === 'send') {
    if (!s) return { replies: job.message.recipients.map((r) => ({ id: r.id, code: 0, reply: '451 4.4.2 delivery session gone' })), usable: false, sent: 0, dirty: false };
    const bytes = Buffer.from(job.body.buffer, job.body.byteOffset, job.body.byteLength);
    const replies = await s.send({ ...job.message, body: () => bytes }, job.deadlineMs);
    return { replies, usable: s.usable, sent: s.sent, dirty: s.needsReset };
  }
  if (job.op === 'reset') return s ? s.reset() : false;
  if (s) {
    sessions.delete(job.sid);
    if (job.op === 'close') s.close();
    else s.destroy();
  }
  return true;
}

parentPort!.on('message', (job: DeliveryJob) => {
  run(job).then(
    (result) => parentPort!.postMessage({ kind: 'reply', id: job.id, result } satisfies DeliveryReply),
    (err: Error) => parentPort!.postMessage({ kind: 'reply', id: job.id, error: err?.message ?? String(err) } satisfies DeliveryReply),
  );
});
