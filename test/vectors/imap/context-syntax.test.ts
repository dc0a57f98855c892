// RFC 5267 §5 syntax: the UPDATE and CONTEXT return options of SEARCH and SORT, CANCELUPDATE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Receiver } from '../../../src/protocol/imap/receiver.ts';
import { ImapParseError, parseCommand } from '../../../src/protocol/imap/parser.ts';
import type { ImapCommand } from '../../../src/protocol/imap/types.ts';

function parse(wire: string): ImapCommand {
  const r = new Receiver({ maxLine: 10_000, maxCommand: 100_000 });
  r.push(Buffer.from(wire));
  const ev = r.next();
  assert.equal(ev?.kind, 'command');
  return parseCommand((ev as { command: Parameters<typeof parseCommand>[0] }).command).command;
}

test('RFC 5267 §5: search-return-opt =/ modifier-context / modifier-update (any case, with the other options)', () => {
  const c = parse('B01 UID SEARCH RETURN (update COUNT Context) DELETED KEYWORD $Junk\r\n');
  assert.deepEqual(c, { name: 'SEARCH', uid: true, charset: null, returns: ['COUNT'], partial: null, update: true, key: { k: 'and', keys: [{ k: 'flag', flag: 8, set: true }, { k: 'keyword', keyword: '$Junk', set: true }] } });
  // CONTEXT alone is a hint: no `update`, no result option.
  assert.deepEqual(parse('A01 SEARCH RETURN (CONTEXT) ALL\r\n'), { name: 'SEARCH', uid: false, charset: null, returns: [], partial: null, key: { k: 'all' } });
  const s = parse('B02 UID SORT RETURN (UPDATE PARTIAL 1:10) (SUBJECT) UTF-8 ALL\r\n');
  assert.equal(s.name === 'SORT' && s.update, true);
  assert.deepEqual(s.name === 'SORT' && s.partial, { lo: 1, hi: 10, last: false, text: '1:10' });
});

test('RFC 5267 §5: command-select =/ "CANCELUPDATE" 1*(SP quoted)', () => {
  assert.deepEqual(parse('B04 CANCELUPDATE "B01"\r\n'), { name: 'CANCELUPDATE', tags: ['B01'] });
  assert.deepEqual(parse('B05 CANCELUPDATE "B01" "x]y"\r\n'), { name: 'CANCELUPDATE', tags: ['B01', 'x]y'] });
  for (const wire of ['B06 CANCELUPDATE\r\n', 'B06 CANCELUPDATE B01\r\n', 'B06 CANCELUPDATE "B01"  "B02"\r\n']) {
    assert.throws(() => parse(wire), (e: unknown) => e instanceof ImapParseError && e.tag === 'B06', wire);
  }
});
