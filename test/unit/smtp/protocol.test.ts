// Pure SMTP helpers: addresses, trace fields, the Received counter of the loop guard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitAddress, splitPlus, isLoopback, addressLiteral } from '../../../src/protocol/smtp/address.ts';
import { formatReceived, formatReturnPath, rfc5322Date, ReceivedCounter } from '../../../src/protocol/smtp/trace.ts';

test('addresses: split at the last @, plus tags, loopback, address literals', () => {
  assert.deepEqual(splitAddress('"a@b"@Example.COM'), { local: '"a@b"', domain: 'example.com' });
  assert.equal(splitAddress('nodomain'), null);
  assert.equal(splitAddress('@x.example'), null);
  assert.deepEqual(splitPlus('user+tag+more'), { base: 'user', tag: 'tag+more' });
  assert.equal(splitPlus('+tag'), null);
  assert.equal(splitPlus('user+'), null);
  assert.equal(splitPlus('plain'), null);
  for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(ip), true, ip);
  for (const ip of ['10.0.0.1', '::2', '192.168.1.127', 'localhost']) assert.equal(isLoopback(ip), false, ip);
  assert.equal(addressLiteral('::ffff:192.0.2.1'), '[192.0.2.1]');
  assert.equal(addressLiteral('2001:db8::1'), '[IPv6:2001:db8::1]');
});

test('trace fields: Return-Path and a RFC 5321 §4.4 Received with TLS details', () => {
  assert.equal(formatReturnPath(''), 'Return-Path: <>\r\n');
  assert.equal(formatReturnPath('a@b.example'), 'Return-Path: <a@b.example>\r\n');
  const date = new Date(Date.UTC(2026, 10, 22, 2, 3, 4));
  assert.equal(rfc5322Date(date), 'Sun, 22 Nov 2026 02:03:04 +0000');
  const r = formatReceived({
    helo: 'client.example',
    clientHostname: 'host.example',
    remoteAddress: '192.0.2.7',
    hostname: 'mx.example.com',
    protocol: 'ESMTPS',
    id: 'abc.1',
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    forRecipient: 'u@example.com',
    date,
  });
  assert.equal(
    r,
    'Received: from client.example (host.example [192.0.2.7])\r\n' +
      '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n' +
      '\tby mx.example.com (Pillarbox) with ESMTPS id abc.1\r\n' +
      '\tfor <u@example.com>; Sun, 22 Nov 2026 02:03:04 +0000\r\n',
  );
  const odd = formatReceived({ helo: 'evil(x);y', clientHostname: null, remoteAddress: '::1', hostname: 'mx', protocol: 'SMTP', id: 'i', tls: null, forRecipient: null, date });
  assert.equal(odd, 'Received: from evil_x__y ([IPv6:::1])\r\n\tby mx (Pillarbox) with SMTP id i\r\n\t; Sun, 22 Nov 2026 02:03:04 +0000\r\n');
});

test('ReceivedCounter counts Received fields of the header section only, across any chunking', () => {
  const msg = Buffer.from(
    'Received: a\r\nX: y\r\nRECEIVED: b\r\n\tcontinued Received: no\r\nreceived:c\r\nReceivedX: no\r\n\r\nReceived: in body\r\n',
  );
  for (let size = 1; size <= msg.length; size++) {
    const c = new ReceivedCounter();
    for (let i = 0; i < msg.length; i += size) c.write(msg.subarray(i, i + size));
    assert.equal(c.count, 3, `chunk size ${size}`);
    assert.equal(c.done, true);
  }
  const lf = new ReceivedCounter();
  lf.write(Buffer.from('Received: a\nReceived: b\n\nReceived: body\n'));
  assert.equal(lf.count, 2);
});
