// Config dnsServers (--dns-servers, PILLARBOX_DNS_SERVERS, config.json) and the resolver the
// mail authentication checks use with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../src/config/load.ts';
import { mailauthResolver } from '../../../src/mailauth/resolver.ts';
import { startDns } from '../../helpers/dns.ts';

test('dnsServers from flag, environment and file; bad values refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-dnscfg-'));
  try {
    assert.deepEqual(loadConfig({ data: dir }, {}).dnsServers, []);
    assert.deepEqual(loadConfig({ data: dir, 'dns-servers': '127.0.0.1:5353, ::1' }, {}).dnsServers, ['127.0.0.1:5353', '::1']);
    assert.deepEqual(loadConfig({ data: dir }, { PILLARBOX_DNS_SERVERS: '10.0.0.1' }).dnsServers, ['10.0.0.1']);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ dnsServers: ['127.0.0.2:53'] }));
    assert.deepEqual(loadConfig({ data: dir }, {}).dnsServers, ['127.0.0.2:53']);
    assert.throws(() => loadConfig({ data: dir, 'dns-servers': 'not an address' }, {}), ConfigError);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ dnsServers: '127.0.0.1' }));
    assert.throws(() => loadConfig({ data: dir }, {}), /dnsServers must be a list/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the injected resolver asks the configured server', async () => {
  const dns = await startDns([{ name: 'x.example', type: 'TXT', data: 'v=spf1 -all' }]);
  try {
    assert.deepEqual(await mailauthResolver(dns.servers)('x.example', 'TXT'), [['v=spf1 -all']]);
    assert.deepEqual(dns.queries.map((q) => q.name), ['x.example']);
  } finally {
    await dns.close();
  }
});
