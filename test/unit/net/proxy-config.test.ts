// Config proxyProtocol (src/config/proxy.ts) as `pillarbox serve` loads it: the file's object, the
// flags' lists over it, and the errors an operator gets for a setting that can't work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../src/config/load.ts';
import { trustMatcher } from '../../../src/config/proxy.ts';

function withFile(content: unknown, f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-proxycfg-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(content));
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('off unless a listener is listed; the file\'s settings, defaults for the rest', () => {
  withFile({}, (dir) => assert.equal(loadConfig({ data: dir }, {}).proxyProtocol, null));
  withFile({ proxyProtocol: { listeners: ['imap', 'imaps', 'imap'], trusted: ['10.0.0.0/8'] } }, (dir) => {
    assert.deepEqual(loadConfig({ data: dir }, {}).proxyProtocol, { listeners: ['imap', 'imaps'], trusted: ['10.0.0.0/8'], timeout: 5000, maxHeaderBytes: 1024 });
  });
});

test('flags and environment replace the lists', () => {
  withFile({ proxyProtocol: { listeners: ['imap'], trusted: ['10.0.0.1'], timeout: 2000 } }, (dir) => {
    const c = loadConfig({ data: dir, 'proxy-protocol': 'smtp, lmtp', 'proxy-trusted': '::1,192.0.2.0/24' }, {});
    assert.deepEqual(c.proxyProtocol, { listeners: ['smtp', 'lmtp'], trusted: ['::1', '192.0.2.0/24'], timeout: 2000, maxHeaderBytes: 1024 });
    const e = loadConfig({ data: dir }, { PILLARBOX_PROXY_PROTOCOL: 'pop3s', PILLARBOX_PROXY_TRUSTED: '127.0.0.1' });
    assert.deepEqual(e.proxyProtocol?.listeners, ['pop3s']);
    assert.deepEqual(e.proxyProtocol?.trusted, ['127.0.0.1']);
  });
});

test('settings that cannot work are start-up errors that say why', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ listeners: ['imap'] }, /list the proxies' addresses/],
    [{ listeners: ['imap4'], trusted: ['10.0.0.1'] }, /"imap4" is not one of smtp, submission/],
    [{ listeners: ['imap'], trusted: ['10.0.0.300'] }, /not an IP address or CIDR range/],
    [{ listeners: ['imap'], trusted: ['10.0.0.0/33'] }, /prefix must be 0-32/],
    [{ listeners: ['imap'], trusted: ['fd00::/129'] }, /prefix must be 0-128/],
    [{ listeners: ['imap'], trusted: ['10.0.0.1'], maxHeaderBytes: 100 }, /maxHeaderBytes must be a whole number from 232/],
    [{ listeners: ['imap'], trusted: ['10.0.0.1'], timeout: 0 }, /timeout must be a positive number/],
    [{ listeners: 'imap', trusted: ['10.0.0.1'] }, /listeners must be a list/],
    [{ listener: ['imap'] }, /proxyProtocol\.listener is not a setting/],
    [['imap'], /must be an object/],
  ];
  for (const [pp, re] of cases) {
    withFile({ proxyProtocol: pp }, (dir) => assert.throws(() => loadConfig({ data: dir }, {}), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(pp)));
  }
});

test('trusted ranges match socket addresses, IPv4-mapped ones as IPv4', () => {
  const t = trustMatcher(['10.1.0.0/16', '192.0.2.7', 'fd00::/8', '::1']);
  assert.equal(t('10.1.200.3'), true);
  assert.equal(t('::ffff:10.1.0.9'), true);
  assert.equal(t('10.2.0.1'), false);
  assert.equal(t('192.0.2.7'), true);
  assert.equal(t('192.0.2.8'), false);
  assert.equal(t('fd12:3456::1'), true);
  assert.equal(t('fe80::1'), false);
  assert.equal(t('::1'), true);
  assert.equal(t('?'), false);
});
