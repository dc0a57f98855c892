// Parser robustness: mutated seed commands either parse or throw ImapParseError (which the session
// answers with BAD), never anything else. Deterministic PRNG, so failures reproduce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Receiver, type RawCommand } from '../../../src/protocol/imap/receiver.ts';
import { ImapParseError, appendMessageMailbox, parseCommand } from '../../../src/protocol/imap/parser.ts';

const SEEDS = [
  'a LOGIN "user" {4+}\r\npass\r\n',
  'a SELECT INBOX (QRESYNC (123 456 1:9 (1,3 5,7)))\r\n',
  'a UID FETCH 1:*,5 (BODY.PEEK[1.2.HEADER.FIELDS (FROM TO)]<0.100> BINARY[2] FLAGS) (CHANGEDSINCE 5 VANISHED)\r\n',
  'a SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (FROM "x" SINCE 1-Jan-2020) NOT UID 1:* MODSEQ "/flags/\\\\seen" all 7\r\n',
  'a UID STORE 1:3 (UNCHANGEDSINCE 9) -FLAGS.SILENT (\\Seen $x)\r\n',
  'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("a" b%) RETURN (STATUS (MESSAGES SIZE) CHILDREN)\r\n',
  'a APPEND "Sent" (\\Seen) "01-Jan-2020 10:00:00 +0000" {3+}\r\nabc\r\n',
  'a ID ("name" NIL "v" "1")\r\n',
  'a CREATE x (USE (\\Sent))\r\n',
];

let seed = 12345;
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const ALPHABET = Buffer.from('()[]{}<>"\\ *%$:,.+-~0123456789AZaz\r\n\x00\xff');

function mutate(b: Buffer): Buffer {
  const out = [...b];
  const n = 1 + rnd(4);
  for (let i = 0; i < n; i++) {
    const at = rnd(out.length + 1);
    switch (rnd(3)) {
      case 0:
        out.splice(at, 1);
        break;
      case 1:
        out.splice(at, 0, ALPHABET[rnd(ALPHABET.length)]!);
        break;
      default:
        out[at] = ALPHABET[rnd(ALPHABET.length)]!;
    }
  }
  return Buffer.from(out);
}

test('10,000 mutated commands: parse or ImapParseError, nothing else', () => {
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 10_000; i++) {
    const input = mutate(Buffer.from(SEEDS[i % SEEDS.length]!, 'latin1'));
    const r = new Receiver({ maxLine: 1000, maxCommand: 10_000 });
    r.push(input);
    const cmds: RawCommand[] = [];
    for (let ev = r.next(); ev; ev = r.next()) {
      if (ev.kind === 'literal') {
        appendMessageMailbox(ev.pending);
        if (ev.size > 5000) r.reject();
        else r.accept('buffer');
      } else if (ev.kind === 'command') cmds.push(ev.command);
    }
    for (const c of cmds) {
      try {
        parseCommand(c);
        parsed++;
      } catch (err) {
        assert.ok(err instanceof ImapParseError, `input ${JSON.stringify(input.toString('latin1'))}: ${(err as Error).stack}`);
        rejected++;
      }
    }
  }
  assert.ok(parsed > 100 && rejected > 100, `parsed ${parsed}, rejected ${rejected}`);
});
