// The receiving end of the outbound benchmarks: an SMTP server on 127.0.0.1 that accepts every
// message and throws it away, and counts what it accepted.
//   smtp-sink (default): Postfix's own SMTP test server (/usr/sbin/smtp-sink from the postfix
//     package), one event-driven process, nothing written to disk; counted by its -c counters.
//   postfix: a private Postfix instance (peers.ts) relaying the sink domain to discard(8): smtpd,
//     cleanup's fsync'd queue file, qmgr, discard; counted by discard's status=sent log lines.

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, startPostfixInstance } from './peers.ts';
import { killTree, onCleanup, sleep, spawnTracked } from './util.ts';

export type SinkKind = 'smtp-sink' | 'postfix';

export interface Sink {
  kind: SinkKind;
  port: number;
  /** Messages accepted so far. */
  count(): number;
  /** SMTP sessions the sink has had so far (smtp-sink; NaN for the Postfix sink): connection reuse. */
  sessions(): number;
  /** The sink's process (smtp-sink), for its CPU; the Postfix sink gives none. */
  pid?: number;
  stop(): Promise<void>;
}

export async function startSink(kind: SinkKind, domain: string): Promise<Sink> {
  if (kind === 'postfix') return postfixSink(domain);
  const port = await freePort();
  // -c: counters on stdout ("sess=N quit=N mesg=N\r"), -u: drop root after binding; backlog 1024.
  const p = spawnTracked('smtp-sink', '/usr/sbin/smtp-sink', ['-c', '-u', 'nobody', `127.0.0.1:${port}`, '1024']);
  let tail = '';
  let mesg = 0;
  let sess = 0;
  p.stdout!.setEncoding('latin1');
  p.stdout!.on('data', (d: string) => {
    tail = (tail + d).slice(-400);
    const end = tail.lastIndexOf('\r');
    if (end < 0) return;
    const i = tail.lastIndexOf('mesg=', end);
    if (i >= 0) mesg = Number(tail.slice(i + 5, end)) || mesg;
    const j = tail.lastIndexOf('sess=', end);
    if (j >= 0) sess = Number(tail.slice(j + 5, tail.indexOf(' ', j))) || sess;
  });
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (p.exitCode !== null || Date.now() > deadline) throw new Error(`smtp-sink did not start: ${err}`);
    await sleep(50);
  }
  // canConnect's probe is a session without a message: it does not move mesg.
  const off = onCleanup('smtp-sink', () => killTree(p.pid!));
  return {
    kind,
    port,
    count: () => mesg,
    sessions: () => sess,
    pid: p.pid!,
    stop: async () => {
      off();
      killTree(p.pid!, 'SIGTERM');
      await sleep(100);
      killTree(p.pid!);
    },
  };
}

async function postfixSink(domain: string): Promise<Sink> {
  const pf = await startPostfixInstance({
    name: 'bench-sink',
    files: { transport: `${domain} discard:benchmark sink\n` },
    main: { relay_domains: domain, transport_maps: 'texthash:$config_directory/transport', default_process_limit: '200' },
  });
  const file = join(pf.dir, 'maillog');
  let offset = 0;
  let n = 0;
  let partial = '';
  const needle = 'status=sent';
  return {
    kind: 'postfix',
    port: pf.port,
    sessions: () => NaN,
    count: () => {
      // Reads only what was appended since the last call.
      const size = statSync(file).size;
      if (size > offset) {
        const fd = openSync(file, 'r');
        try {
          const buf = Buffer.alloc(size - offset);
          readSync(fd, buf, 0, buf.length, offset);
          offset = size;
          const text = partial + buf.toString('latin1');
          const lines = text.split('\n');
          partial = lines.pop() ?? '';
          for (const l of lines) if (l.includes('postfix/discard[') && l.includes(needle)) n++;
        } finally {
          closeSync(fd);
        }
      }
      return n;
    },
    stop: () => pf.stop(),
  };
}
