// Header decoding (RFC 2047 words, RFC 2231 parameters, addresses), section-spec parsing,
// transfer decoding and text extraction for SEARCH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import { decodeCharset, decodeParamValue, decodeWords, parseAddressList, parseMimeHeader, joinRfc2231 } from '../../../src/protocol/mime/headers.ts';
import {
  parseSection, formatSection, resolveSection, readSection, filterHeaderFields, decodeTransferEncoding, extractText,
} from '../../../src/protocol/imap/section.ts';
import { writeEnvelope, humanString } from '../../../src/protocol/imap/envelope.ts';

const here = dirname(fileURLToPath(import.meta.url));
const load = (f: string) => readFileSync(join(here, 'messages', f));

test('RFC 2047 encoded words decode to UTF-8 (Q/B, ISO-8859-1, UTF-8, ISO-2022-JP, KOI8)', () => {
  assert.equal(decodeWords('=?ISO-8859-1?Q?Gr=FC=DFe?= und =?UTF-8?B?8J+YgA==?='), 'Grüße und 😀');
  assert.equal(decodeWords('=?utf-8?q?a_b?= =?utf-8?q?c?= plain'), 'a bc plain');
  assert.equal(decodeWords('=?iso-2022-jp?B?GyRCJUYlOSVIGyhC?='), 'テスト');
  assert.equal(decodeWords('no words here'), 'no words here');
  assert.equal(decodeCharset(Buffer.from('GyRCJUYlOSVIGyhC', 'base64'), 'ISO-2022-JP'), 'テスト');
  assert.equal(decodeCharset(Buffer.from([0x80]), 'windows-1252'), '€');
  assert.equal(decodeCharset(Buffer.from('plain'), 'x-bogus'), 'plain');
  const m = parseMessage(load('02-nested.eml'));
  assert.equal(m.search.subject, 'Grüße und 😀');
  assert.equal(m.search.from, 'Jörg Müller <joerg@example.de>\nJörg Müller\njoerg@example.de');
  assert.equal(m.sentDate, Date.UTC(2022, 2, 1, 9, 0, 0));
  // ENVELOPE keeps the raw words (RFC 9051 §7.5.2; clients decode)
  assert.equal(m.envelope.subject, '=?ISO-8859-1?Q?Gr=FC=DFe?= und =?UTF-8?B?8J+YgA==?=');
  const r = parseMessage(load('10-rfc2047-2231.eml'));
  assert.equal(r.search.from, 'Иван <ivan@example.ru>\nИван\nivan@example.ru');
  assert.equal(r.search.to, 'テスト <jp@example.jp>\nテスト\njp@example.jp');
});

test('8-bit headers: raw UTF-8 kept, invalid UTF-8 read as Latin-1', () => {
  const u = parseMessage(load('08-utf8-headers.eml'));
  assert.equal(u.envelope.subject, 'Grüße – ünïcödé');
  assert.deepEqual(u.envelope.from, [{ name: 'Jörg Müller', adl: null, mailbox: 'jörg', host: 'exämple.de' }]);
  // literal with the UTF-8 byte count; quoted once UTF8=ACCEPT is on
  assert.match(writeEnvelope(u.envelope), /^\("Thu, 3 Mar 2022 12:00:00 \+0000" \{23\}\r\nGrüße – ünïcödé /);
  assert.match(writeEnvelope(u.envelope, true), /^\("Thu, 3 Mar 2022 12:00:00 \+0000" "Grüße – ünïcödé" \(\("Jörg Müller" NIL "jörg" "exämple.de"\)\)/);
  const l = parseMessage(load('09-latin1-headers.eml'));
  assert.equal(l.envelope.subject, 'Grüße aus München');
  assert.equal(l.search.from, 'Jörg <joerg@example.de>\nJörg\njoerg@example.de');
});

test('RFC 2231 parameters: continuations joined, charset form kept for BODYSTRUCTURE, decodable', () => {
  const m = parseMessage(load('10-rfc2047-2231.eml'));
  const [, att, txt] = m.root.children!;
  assert.deepEqual(att!.disposition!.params, [['filename', 'longname.txt']]);
  assert.equal(decodeParamValue(att!.params, 'name'), 'äöü.txt'); // RFC 2047 inside a parameter
  assert.deepEqual(txt!.params, [['title*', "us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A"]]);
  assert.equal(decodeParamValue(txt!.params, 'title'), 'This is ***fun***');
  assert.equal(decodeParamValue(txt!.disposition!.params, 'filename'), 'Grüße.txt');
  const n = parseMessage(load('02-nested.eml')).root.children![1]!;
  assert.equal(decodeParamValue(n.params, 'name'), '€ report 2022.pdf');
  assert.equal(decodeParamValue(n.disposition!.params, 'filename'), '€ report 2022.pdf');
  assert.deepEqual(joinRfc2231([['b*1', 'y'], ['a', '1'], ['b*0', 'x']]), [['a', '1'], ['b', 'xy']]);
  assert.deepEqual(parseMimeHeader('text/plain; a="x\\"y"; b=""; c=', true).params, [['a', 'x"y'], ['b', ''], ['c', '']]);
  assert.deepEqual(parseMimeHeader('Text/HTML (comment); CHARSET="ISO-8859-1"', true), { value: 'text/html', params: [['charset', 'ISO-8859-1']] });
  assert.deepEqual(parseMimeHeader('garbage', true), { value: 'garbage/', params: [] });
});

test('address lists: groups, quoted local parts, comments, routes, missing parts', () => {
  const m = parseMessage(load('11-addresses.eml'));
  assert.deepEqual(m.envelope.from, [{ name: 'Doe, John "JD"', adl: null, mailbox: 'john', host: 'example.com' }]);
  assert.deepEqual(m.envelope.sender, [{ name: null, adl: '@route1.example,@route2.example', mailbox: 'sender', host: 'example.com' }]);
  assert.deepEqual(m.envelope.replyTo, m.envelope.from); // empty Reply-To → From (RFC 9051 §7.5.2)
  assert.deepEqual(m.envelope.to!.slice(0, 4), [
    { name: null, adl: null, mailbox: 'undisclosed-recipients', host: null },
    { name: null, adl: null, mailbox: null, host: null },
    { name: null, adl: null, mailbox: 'quoted local', host: 'example.com' },
    { name: 'Plain Name', adl: null, mailbox: 'plain', host: 'example.com' },
  ]);
  assert.equal(m.envelope.subject, 'second subject'); // last one wins, as Dovecot
  assert.deepEqual(parseAddressList(''), null);
  assert.deepEqual(parseAddressList('a@b, , c@d'), [
    { name: null, adl: null, mailbox: 'a', host: 'b' }, { name: null, adl: null, mailbox: 'c', host: 'd' }]);
  // Malformed lists: every recoverable address (Dovecot stops at the first error).
  const bad = parseMessage(load('28-malformed-addresses.eml')).envelope;
  assert.deepEqual(bad.from, [
    { name: 'foo@bar', adl: null, mailbox: 'x', host: 'y.example' }, { name: null, adl: null, mailbox: 'b', host: 'example.com' }]);
  assert.deepEqual(bad.to, [
    { name: 'plain \\\\ backslash', adl: null, mailbox: 'bs', host: 'example.com' }, { name: null, adl: null, mailbox: 'c', host: 'example.com' }]);
  assert.deepEqual(bad.cc, [
    { name: null, adl: null, mailbox: 'broken', host: 'example.com' }, { name: null, adl: null, mailbox: 'd', host: 'example.com' }]);
  assert.deepEqual(parseAddressList('(comment) <c@example.com>'), [{ name: null, adl: null, mailbox: 'c', host: 'example.com' }]);
  assert.equal(humanString('a\r\n\tb  c '), '{5}\r\na b c');
  assert.equal(humanString('plain'), '"plain"');
  assert.equal(humanString('   '), '""');
});

test('section specs parse and format', () => {
  assert.deepEqual(parseSection(''), { part: [], text: null, fields: [] });
  assert.deepEqual(parseSection('1.2.HEADER.FIELDS (From "X-Y z" to)'), { part: [1, 2], text: 'HEADER.FIELDS', fields: ['From', 'X-Y z', 'to'] });
  assert.deepEqual(parseSection('2.1.text'), { part: [2, 1], text: 'TEXT', fields: [] });
  assert.deepEqual(parseSection('3.MIME'), { part: [3], text: 'MIME', fields: [] });
  for (const bad of ['MIME', '0', '1.', '1..2', 'HEADER.FIELDS ()', 'HEADER.FIELDS', 'BODY', '1.TEXTX', 'HEADER.FIELDS (a']) {
    assert.equal(parseSection(bad), null, bad);
  }
  assert.equal(formatSection(parseSection('1.2.header.fields.not (From to)')!), '1.2.HEADER.FIELDS.NOT (FROM TO)');
  assert.equal(formatSection(parseSection('')!), '');
});

test('section ranges: nested parts, message/rfc822 parts, nonexistent parts', () => {
  const raw = load('03-rfc822.eml');
  const m = parseMessage(raw);
  const sec = (s: string) => readSection(raw, m, parseSection(s)!).toString();
  assert.equal(sec('1'), 'See attached.\r\n');
  assert.equal(sec('2.1'), 'inner plain');
  assert.equal(sec('2.2.MIME'), 'Content-Type: text/html\r\n\r\n');
  assert.ok(sec('2.HEADER').startsWith('From: Original Sender'));
  assert.equal(sec('3.TEXT'), 'Just text,\r\ntwo lines.\r\n');
  assert.equal(sec('3.1'), 'Just text,\r\ntwo lines.\r\n');
  assert.equal(sec('3.HEADER.FIELDS (subject)'), 'Subject: Inner plain\r\n\r\n');
  assert.equal(sec('4'), '');
  assert.equal(sec('1.1'), 'See attached.\r\n'); // a leaf's part 1 is itself
  assert.equal(sec('1.HEADER'), ''); // HEADER only for message/rfc822 parts
  assert.deepEqual(resolveSection(m, parseSection('9.9')!), { kind: 'empty' });
  const r = resolveSection(m, parseSection('HEADER.FIELDS (To)')!);
  assert.equal(r.kind, 'header-fields');
  // non-multipart message: part 1 is the body
  const s = load('01-simple.eml');
  const sm = parseMessage(s);
  assert.equal(readSection(s, sm, parseSection('1')!).toString(), readSection(s, sm, parseSection('TEXT')!).toString());
});

test('HEADER.FIELDS filtering keeps continuation lines and the blank line', () => {
  const h = Buffer.from('From: a\r\nSubject: x\r\n\ty\r\nTo: b\r\nsubject: again\r\n\r\n');
  assert.equal(filterHeaderFields(h, ['SUBJECT'], false).toString(), 'Subject: x\r\n\ty\r\nsubject: again\r\n\r\n');
  assert.equal(filterHeaderFields(h, ['subject'], true).toString(), 'From: a\r\nTo: b\r\n\r\n');
  assert.equal(filterHeaderFields(Buffer.from('From: a\nTo: b'), ['to'], false).toString(), 'To: b\r\n');
});

test('transfer decoding for BINARY[]', () => {
  assert.equal(decodeTransferEncoding(Buffer.from('aGVs\r\nbG8=\r\n'), 'BASE64')!.toString(), 'hello');
  assert.equal(decodeTransferEncoding(Buffer.from('a=3Db=\r\nc  \r\nd=ZZ'), 'quoted-printable')!.toString(), 'a=bc\r\nd=ZZ');
  assert.equal(decodeTransferEncoding(Buffer.from('x\0y'), '8bit')!.toString('latin1'), 'x\0y');
  assert.equal(decodeTransferEncoding(Buffer.from('x'), 'x-uuencode'), null);
});

test('extractText: charset-decoded text parts, HTML stripped, attachments skipped', () => {
  const raw = load('02-nested.eml');
  const t = extractText(raw, parseMessage(raw));
  assert.match(t, /Grüße aus München! \r\nZweite Zeile, sehr lang, .*sehr lang\./);
  assert.match(t, /Grüße aus München!/);
  assert.doesNotMatch(t, /<b>|x\(\)|script/);
  const k = load('10-rfc2047-2231.eml');
  assert.match(extractText(k, parseMessage(k)), /^Привет\n/);
  const e = load('17-encodings.eml');
  const et = extractText(e, parseMessage(e));
  assert.match(et, /^Grüße, Welt!\nZweite Zeile\.\n/);
  assert.match(et, /Grüße soft break and hard \r\nline, = sign/);
  assert.doesNotMatch(et, /raw/);
  const f = load('03-rfc822.eml');
  assert.match(extractText(f, parseMessage(f)), /inner plain[\s\S]*inner html[\s\S]*Just text/);
});

test('SEARCH address text (RFC 3501 §6.4.4): the header as written, then each parsed name and mailbox@host', () => {
  const m = parseMessage(Buffer.from('From: "Name Q" <user-from (comment)@ (comment) domain.org>\r\nTo: team: a@b.example, =?utf-8?q?J=C3=B6rg?= <j@c.example>;\r\n\r\nx\r\n'));
  assert.equal(m.search.from, '"Name Q" <user-from (comment)@ (comment) domain.org>\nName Q\nuser-from@domain.org');
  assert.equal(m.search.to, 'team: a@b.example, Jörg <j@c.example>;\nteam\na@b.example\nJörg\nj@c.example');
});
