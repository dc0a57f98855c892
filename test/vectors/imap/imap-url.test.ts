// IMAP URLs as CATENATE takes them (RFC 4469 §3, RFC 5092): src/protocol/imap/imap-url.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImapUrl } from '../../../src/protocol/imap/imap-url.ts';

test('RFC 4469 Appendix A URLs, relative forms, %-encoding; anything else refused', () => {
  assert.deepEqual(parseImapUrl('/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER'), { mailbox: 'Drafts', uidValidity: 385759045, uid: 20, section: 'HEADER', partial: null });
  assert.deepEqual(parseImapUrl('/Drafts;UIDVALIDITY=385759045/;UID=20/;Section=2.MIME'), { mailbox: 'Drafts', uidValidity: 385759045, uid: 20, section: '2.MIME', partial: null });
  assert.deepEqual(parseImapUrl('/Drafts/;UID=3002'), { mailbox: 'Drafts', uidValidity: null, uid: 3002, section: null, partial: null });
  assert.deepEqual(parseImapUrl('/Work/Sub%20Box/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)/;PARTIAL=5.10'), {
    mailbox: 'Work/Sub Box',
    uidValidity: null,
    uid: 1,
    section: 'HEADER.FIELDS (SUBJECT)',
    partial: { start: 5, length: 10 },
  });
  assert.deepEqual(parseImapUrl(';UID=7/;PARTIAL=0'), { mailbox: null, uidValidity: null, uid: 7, section: null, partial: { start: 0, length: null } });
  for (const bad of ['', 'imap://joe@example.com/INBOX/;UID=1', '/Drafts;UID=1', '/Drafts/;UID=0', '/Drafts/;UID=1/;URLAUTH=x', '/;UID=1', '/Drafts/;UIDVALIDITY=1/;UID=2', '/Drafts/;UID=1/;SECTION=', '/%ZZ/;UID=1', 'Drafts/;UID=1', '/Drafts/;UID=99999999999']) {
    assert.equal(parseImapUrl(bad), null, bad);
  }
});
