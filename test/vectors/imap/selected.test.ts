// Unsolicited responses of the selected-mailbox state (RFC 9051 §7.4.1, §7.5.1; RFC 7162 §3.2.10):
// byte-exact EXISTS / EXPUNGE / VANISHED / FETCH for changes arriving from the bus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SelectedMailbox } from '../../../src/imap/selected.ts';
import type { Change } from '../../../src/store/bus.ts';

const mb = () => new SelectedMailbox(7, 'INBOX', 99, false, [10, 11, 12, 13, 14], 50);
const base = { accountId: 1, mailboxId: 7 };
const plain = { allowExpunge: true, qresync: false, condstore: false };

test('EXPUNGE responses go from the highest sequence number down, then EXISTS', () => {
  const s = mb();
  const changes: Change[] = [
    { kind: 'messages-expunged', ...base, uids: [11, 13], modseq: 51 },
    { kind: 'message-added', ...base, uid: 15, modseq: 52, keywords: [] },
  ];
  s.apply(changes, 'me');
  assert.equal(s.flush(plain), '* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n* 4 EXISTS\r\n');
  assert.deepEqual(s.uids, [10, 12, 14, 15]);
  assert.equal(s.flush(plain), '');
});

test('no EXPUNGE while forbidden; EXISTS counts the not-yet-expunged messages', () => {
  const s = mb();
  s.apply([{ kind: 'messages-expunged', ...base, uids: [10], modseq: 51 }, { kind: 'message-added', ...base, uid: 20, modseq: 52, keywords: [] }], 'me');
  assert.equal(s.flush({ ...plain, allowExpunge: false }), '* 6 EXISTS\r\n');
  assert.equal(s.flush(plain), '* 1 EXPUNGE\r\n');
  assert.deepEqual(s.uids, [11, 12, 13, 14, 20]);
});

test('VANISHED with QRESYNC; FETCH with UID and MODSEQ with CONDSTORE; own flag changes skipped', () => {
  const s = mb();
  s.apply(
    [
      { kind: 'flags-changed', ...base, uid: 12, modseq: 53, systemFlags: 1 | 4, keywords: ['$Work'] },
      { kind: 'flags-changed', ...base, uid: 13, modseq: 54, systemFlags: 2, keywords: [], origin: 'me' },
      { kind: 'messages-expunged', ...base, uids: [10, 11, 14], modseq: 55 },
    ],
    'me',
  );
  assert.equal(
    s.flush({ allowExpunge: true, qresync: true, condstore: true }),
    // RFC 3501 §7.2.6: the new keyword is announced before the FETCH that shows it.
    '* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work)\r\n* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work \\*)] Flags permitted\r\n' +
      '* VANISHED 10:11,14\r\n* 1 FETCH (UID 12 FLAGS (\\Seen \\Flagged $Work) MODSEQ (53))\r\n',
  );
  assert.equal(s.highestModseq, 55);
});

test('a message added and expunged before it was announced leaves no trace; other mailboxes are ignored', () => {
  const s = mb();
  s.apply(
    [
      { kind: 'message-added', ...base, uid: 30, modseq: 51, keywords: [] },
      { kind: 'messages-expunged', ...base, uids: [30], modseq: 52 },
      { kind: 'message-added', accountId: 1, mailboxId: 8, uid: 31, modseq: 53, keywords: [] },
    ],
    'me',
  );
  assert.equal(s.flush(plain), '');
  assert.deepEqual(s.uids, [10, 11, 12, 13, 14]);
});

test('changes that arrive while SELECT lists the mailbox are merged, not lost', () => {
  const s = new SelectedMailbox(7, 'INBOX', 99, false, [], 50);
  s.apply([{ kind: 'message-added', ...base, uid: 3, modseq: 51, keywords: [] }, { kind: 'message-added', ...base, uid: 4, modseq: 52, keywords: [] }, { kind: 'messages-expunged', ...base, uids: [2], modseq: 53 }], 'me');
  s.initialize([1, 2, 3]);
  assert.deepEqual(s.uids, [1, 3]);
  assert.equal(s.flush(plain), '* 3 EXISTS\r\n');
  assert.deepEqual(s.uids, [1, 3, 4]);
});

test('RFC 3501 §7.2.6: a keyword new to the session is announced once, case-insensitively; read-only: FLAGS only', () => {
  const s = new SelectedMailbox(7, 'INBOX', 99, true, [10], 50);
  s.noteKeywords(['$Old']);
  assert.equal(s.flagsResponses(true), '* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Old)\r\n* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n');
  s.apply([{ kind: 'message-added', ...base, uid: 11, modseq: 51, keywords: ['$old', 'Todo'] }], 'me');
  assert.equal(s.flush(plain), '* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Old Todo)\r\n* 2 EXISTS\r\n');
  s.apply([{ kind: 'flags-changed', ...base, uid: 11, modseq: 52, systemFlags: 0, keywords: ['TODO'], origin: 'x' }], 'me');
  assert.equal(s.flush(plain), '* 2 FETCH (UID 11 FLAGS (TODO))\r\n');
});
