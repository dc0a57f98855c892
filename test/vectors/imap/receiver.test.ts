// Byte-exact vectors for the incremental IMAP receiver: each input is fed whole, split at every
// byte offset, and byte by byte; the events must be the same every time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Receiver, type LiteralMode } from '../../../src/protocol/imap/receiver.ts';

type Policy = (size: number, nonSync: boolean, index: number) => LiteralMode | 'reject';

/** Runs the receiver over chunks; returns a transcript of events. */
function run(chunks: Buffer[], policy: Policy = () => 'buffer', opts = { maxLine: 1000, maxCommand: 100_000 }): string[] {
  const r = new Receiver(opts);
  const out: string[] = [];
  let streamed: Buffer[] = [];
  let litIndex = 0;
  const drain = () => {
    for (let ev = r.next(); ev; ev = r.next()) {
      switch (ev.kind) {
        case 'command':
        case 'discarded':
          out.push(
            `${ev.kind}:` +
              ev.command.segments.map((s, i) => s.toString('latin1') + (i < ev.command.literals.length ? `[${ev.command.literals[i]?.toString('latin1') ?? 'null'}]` : '')).join(''),
          );
          break;
        case 'literal': {
          const d = policy(ev.size, ev.nonSync, litIndex++);
          out.push(`literal:${ev.size}${ev.nonSync ? '+' : ''}${ev.binary ? '~' : ''}:${d}`);
          if (d === 'reject') r.reject();
          else r.accept(d);
          break;
        }
        case 'literal-data':
          streamed.push(ev.data);
          break;
        case 'literal-end':
          out.push(`streamed:${Buffer.concat(streamed).toString('latin1')}`);
          streamed = [];
          break;
        case 'fatal':
          out.push(`fatal:${ev.reason}`);
          break;
      }
    }
  };
  for (const c of chunks) {
    r.push(c);
    drain();
  }
  return out;
}

function splits(input: Buffer): Buffer[][] {
  const all: Buffer[][] = [[input]];
  for (let i = 1; i < input.length; i++) all.push([input.subarray(0, i), input.subarray(i)]);
  all.push([...input].map((b) => Buffer.from([b])));
  return all;
}

function check(name: string, input: string | Buffer, expected: string[], policy?: Policy, opts?: { maxLine: number; maxCommand: number }) {
  test(name, () => {
    const buf = Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1');
    for (const chunks of splits(buf)) {
      assert.deepEqual(run(chunks, policy, opts), expected, `split ${chunks.map((c) => c.length).join('+')}`);
    }
  });
}

check('plain commands, CRLF and bare LF', 'a1 NOOP\r\na2 CAPABILITY\na3 LOGOUT\r\n', ['command:a1 NOOP', 'command:a2 CAPABILITY', 'command:a3 LOGOUT']);

check('synchronizing literal is announced before its data', 'a LOGIN {4}\r\nuser {6}\r\npa ss!\r\n', [
  'literal:4:buffer',
  'literal:6:buffer',
  'command:a LOGIN [user] [pa ss!]',
]);

check('LITERAL+ non-synchronizing literal', 'b LOGIN {4+}\r\nuser pass\r\n', ['literal:4+:buffer', 'command:b LOGIN [user] pass']);

check('literal8 for APPEND', 'c APPEND INBOX UTF8 (~{3+}\r\nabc)\r\n', ['literal:3+~:buffer', 'command:c APPEND INBOX UTF8 ([abc])']);

check('literal bytes may contain CRLF and braces', 'd X {7}\r\n{1}\r\n\r\n\r\n', ['literal:7:buffer', 'command:d X [{1}\r\n\r\n]']);

check('streamed literal (APPEND body) is not kept in the command', 'e APPEND INBOX {11}\r\nHello\r\nBody\r\n', ['literal:11:stream', 'streamed:Hello\r\nBody', 'command:e APPEND INBOX [null]'], () => 'stream');

check('zero-length streamed literal', 'e APPEND INBOX {0}\r\n\r\n', ['literal:0:stream', 'streamed:', 'command:e APPEND INBOX [null]'], () => 'stream');

check(
  'rejected synchronizing literal ends the command; the next command follows',
  'f APPEND INBOX {999999}\r\ng NOOP\r\n',
  ['literal:999999:reject', 'command:g NOOP'],
  () => 'reject',
);

check(
  'discarded non-synchronizing literal is read and dropped, then the command is reported',
  'h APPEND INBOX {5+}\r\nABCDE\r\ni NOOP\r\n',
  ['literal:5+:discard', 'discarded:h APPEND INBOX [null]', 'command:i NOOP'],
  () => 'discard',
);

check('a line longer than the limit is fatal', 'j NOOP ' + 'x'.repeat(200) + '\r\nk NOOP\r\n', ['fatal:line-too-long'], undefined, { maxLine: 100, maxCommand: 10_000 });

check('an endless line without CRLF is fatal as soon as it passes the limit', 'x'.repeat(300), ['fatal:line-too-long'], undefined, { maxLine: 100, maxCommand: 10_000 });

check('a buffered literal beyond the command cap is discarded', 'l X {50+}\r\n' + 'y'.repeat(50) + '\r\n', ['literal:50+:buffer', 'discarded:l X [null]'], undefined, {
  maxLine: 100,
  maxCommand: 40,
});

test('pipelined commands arrive one by one and nothing is lost', () => {
  const input = Buffer.from(Array.from({ length: 50 }, (_, i) => `p${i} NOOP\r\n`).join(''));
  const out = run([input]);
  assert.equal(out.length, 50);
  assert.equal(out[49], 'command:p49 NOOP');
});
