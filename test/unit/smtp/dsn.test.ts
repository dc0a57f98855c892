// RFC 3464 DSN composer: every DSN is parsed back with the project's MIME parser and each field checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composeDsn, type DsnInput } from '../../../src/protocol/smtp/dsn.ts';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import { parseHeaderBlock, unfoldValue } from '../../../src/protocol/mime/headers.ts';
import type { MimeNode } from '../../../src/protocol/mime/types.ts';

const original = Buffer.from(
  'From: Adam <adam@example.com>\r\nTo: carol@example.com\r\nSubject: lunch\r\nMessage-ID: <m1@example.com>\r\n\r\nSee you at noon.\r\n',
);

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.example.com',
    from: 'MAILER-DAEMON@mx.example.com',
    to: 'adam@example.com',
    envid: 'ENV-42',
    arrivalDate: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    recipients: [
      {
        finalRecipient: 'rfc822;carol@example.com',
        originalRecipient: 'rfc822;Carol@Example.com',
        action: 'failed',
        status: '5.2.2',
        remoteMta: 'dns;mx.example.org',
        diagnostic: '552 5.2.2 mailbox full',
        lastAttempt: new Date(Date.UTC(2026, 0, 2, 3, 5, 0)),
      },
    ],
    original,
    ret: 'FULL',
    now: new Date(Date.UTC(2026, 0, 2, 3, 6, 7)),
    messageId: 'dsn.1@mx.example.com',
    ...over,
  };
}

function fields(raw: Buffer, start = 0): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of parseHeaderBlock(raw.subarray(start))) m.set(f.name, unfoldValue(f.value));
  return m;
}

/** The delivery-status body as groups of fields (RFC 3464 §2.1: blank-line separated). */
function statusGroups(body: string): Array<Map<string, string>> {
  return body
    .split('\r\n\r\n')
    .filter((g) => g.trim() !== '')
    .map((g) => fields(Buffer.from(g + '\r\n\r\n')));
}

const body = (raw: Buffer, n: MimeNode) => raw.subarray(n.bodyStart, n.bodyEnd).toString('utf8');
const param = (n: MimeNode, k: string) => n.params.find(([a]) => a === k)?.[1];

test('a failure DSN parses back: multipart/report, three parts, every field', () => {
  const raw = composeDsn(input());
  assert.ok(!/(^|[^\r])\n/.test(raw.toString('latin1')), 'every line ends in CRLF');
  const meta = parseMessage(raw);
  const top = fields(raw);
  assert.equal(top.get('from'), 'Mail Delivery System <MAILER-DAEMON@mx.example.com>');
  assert.equal(top.get('to'), '<adam@example.com>');
  assert.equal(top.get('auto-submitted'), 'auto-replied');
  assert.equal(top.get('message-id'), '<dsn.1@mx.example.com>');
  assert.equal(top.get('date'), 'Fri, 2 Jan 2026 03:06:07 +0000');
  assert.equal(top.get('mime-version'), '1.0');
  assert.match(top.get('subject')!, /Undelivered/);
  assert.equal(meta.envelope.messageId, '<dsn.1@mx.example.com>');

  const root = meta.root;
  assert.equal(`${root.type}/${root.subtype}`, 'multipart/report');
  assert.equal(param(root, 'report-type'), 'delivery-status');
  const [human, status, orig] = root.children!;
  assert.equal(root.children!.length, 3);
  assert.equal(`${human!.type}/${human!.subtype}`, 'text/plain');
  assert.equal(`${status!.type}/${status!.subtype}`, 'message/delivery-status');
  assert.equal(`${orig!.type}/${orig!.subtype}`, 'message/rfc822');

  // Part 1 (quoted-printable because of the dash): decode and read it.
  assert.equal(human!.encoding.toLowerCase(), 'quoted-printable');
  const text = Buffer.from(body(raw, human!).replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  assert.match(text, /Your message to Carol@Example\.com could not be delivered: mailbox full — returned to sender\./);
  assert.match(text, /552 5\.2\.2 mailbox full/);

  // Part 2: per-message then per-recipient fields.
  const [perMessage, perRcpt, ...rest] = statusGroups(body(raw, status!));
  assert.equal(rest.length, 0);
  assert.equal(perMessage!.get('reporting-mta'), 'dns; mx.example.com');
  assert.equal(perMessage!.get('original-envelope-id'), 'ENV-42');
  assert.equal(perMessage!.get('arrival-date'), 'Fri, 2 Jan 2026 03:04:05 +0000');
  assert.equal(perRcpt!.get('original-recipient'), 'rfc822; Carol@Example.com');
  assert.equal(perRcpt!.get('final-recipient'), 'rfc822; carol@example.com');
  assert.equal(perRcpt!.get('action'), 'failed');
  assert.equal(perRcpt!.get('status'), '5.2.2');
  assert.equal(perRcpt!.get('remote-mta'), 'dns; mx.example.org');
  assert.equal(perRcpt!.get('diagnostic-code'), 'smtp; 552 5.2.2 mailbox full');
  assert.equal(perRcpt!.get('last-attempt-date'), 'Fri, 2 Jan 2026 03:05:00 +0000');
  assert.equal(perRcpt!.has('will-retry-until'), false, 'only for delayed');

  // Part 3: the original, byte for byte (less the final CRLF, which belongs to the boundary).
  assert.equal(body(raw, orig!), original.toString().slice(0, -2));
  assert.equal(orig!.message!.envelope.subject, 'lunch');
});

test('RET=HDRS: only the header block, as text/rfc822-headers', () => {
  const raw = composeDsn(input({ ret: 'HDRS' }));
  const third = parseMessage(raw).root.children![2]!;
  assert.equal(`${third.type}/${third.subtype}`, 'text/rfc822-headers');
  const b = body(raw, third);
  assert.match(b, /Subject: lunch/);
  assert.ok(!b.includes('See you at noon'), 'no body');
});

test('delayed with several recipients; bare addresses get their types; Will-Retry-Until', () => {
  const until = new Date(Date.UTC(2026, 0, 7));
  const raw = composeDsn(
    input({
      envid: null,
      arrivalDate: null,
      recipients: [
        { finalRecipient: 'a@example.org', action: 'delayed', status: '4.4.1', remoteMta: 'mx.example.org', diagnostic: 'connection refused', willRetryUntil: until },
        { finalRecipient: 'b@example.org', action: 'delivered', status: '2.0.0' },
      ],
    }),
  );
  const meta = parseMessage(raw);
  assert.match(fields(raw).get('subject')!, /delayed/i);
  const groups = statusGroups(body(raw, meta.root.children![1]!));
  assert.equal(groups.length, 3);
  assert.equal(groups[0]!.has('original-envelope-id'), false);
  assert.equal(groups[0]!.has('arrival-date'), false);
  assert.equal(groups[1]!.get('final-recipient'), 'rfc822; a@example.org');
  assert.equal(groups[1]!.get('remote-mta'), 'dns; mx.example.org');
  assert.equal(groups[1]!.get('action'), 'delayed');
  assert.equal(groups[1]!.get('will-retry-until'), 'Wed, 7 Jan 2026 00:00:00 +0000');
  assert.equal(groups[2]!.get('action'), 'delivered');
  assert.equal(groups[2]!.has('original-recipient'), false);
  const human = body(raw, meta.root.children![0]!);
  assert.equal(meta.root.children![0]!.encoding.toLowerCase(), '7bit');
  assert.match(human, /Your message to a@example\.org has not been delivered yet/);
  assert.match(human, /Your message to b@example\.org was delivered\./);
});

test('non-ASCII and line breaks in the diagnostic and addresses cannot break the report', () => {
  const evil = '550 5.7.1 Zugriff verweigert für dich\r\nX-Injected: yes\r\n\r\n--boundary';
  const raw = composeDsn(
    input({
      recipients: [{ finalRecipient: 'rfc822;jörg@例え.jp', action: 'failed', status: '5.7.1', diagnostic: evil }],
      envid: 'id\r\nBcc: x@y',
    }),
  );
  const meta = parseMessage(raw);
  assert.ok(!fields(raw).has('x-injected') && !fields(raw).has('bcc'));
  const statusNode = meta.root.children![1]!;
  const statusBytes = raw.subarray(statusNode.bodyStart, statusNode.bodyEnd);
  assert.ok(!statusBytes.some((b) => b >= 0x80), 'delivery-status stays 7-bit');
  const [perMessage, perRcpt] = statusGroups(statusBytes.toString('ascii'));
  assert.equal(perMessage!.get('original-envelope-id'), 'id  Bcc: x@y');
  assert.equal(perRcpt!.has('x-injected'), false);
  assert.equal(perRcpt!.get('diagnostic-code'), 'smtp; 550 5.7.1 Zugriff verweigert f\\x{FC}r dich  X-Injected: yes    --boundary');
  assert.equal(perRcpt!.get('final-recipient'), 'utf-8; j\\x{F6}rg@\\x{4F8B}\\x{3048}.jp');
  assert.equal(meta.root.children!.length, 3);
});

test('the boundary never occurs in the content; long diagnostics fold; bad input throws', () => {
  const long = '550 ' + 'word '.repeat(100);
  const raw = composeDsn(input({ recipients: [{ finalRecipient: 'x@y.example', action: 'failed', status: '5.0.0', diagnostic: long }] }));
  const boundary = param(parseMessage(raw).root, 'boundary')!;
  const occurrences = raw.toString('latin1').split(boundary).length - 1;
  assert.equal(occurrences, 5, 'the Content-Type parameter, three part separators and the closing one');
  for (const l of raw.toString('latin1').split('\r\n')) assert.ok(l.length <= 998, 'RFC 5322 §2.1.1 line limit');
  const status = statusGroups(body(raw, parseMessage(raw).root.children![1]!))[1]!;
  assert.equal(status.get('diagnostic-code'), `smtp; ${long.trim()}`);
  assert.throws(() => composeDsn(input({ recipients: [] })), RangeError);
  assert.throws(() => composeDsn(input({ recipients: [{ finalRecipient: 'x@y', action: 'failed', status: '5.2' }] })), RangeError);
});
