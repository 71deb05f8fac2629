import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEndpoint, formatPrefix } from '../../src/ip/address';
import { isSnakebiteError } from '../../src/errors';
import type { DeviceState } from '../../src/wireguard/device-state';
import { parseDump } from '../../src/wireguard/dump-parser';
import { key, readFixture, stringify } from '../support/fakes';

/** The private and preshared key values a dump holds: the interface line's first field, each peer line's second. */
function secretsOf(dump: string): string[] {
  const lines = dump.split('\n').filter((line) => line.length > 0);
  const secrets = lines.map((line, index) => line.split('\t')[index === 0 ? 0 : 1] ?? '');
  return secrets.filter((value) => value !== '(none)' && value !== '');
}

/** The peers in a form that reads well in a failed assertion. */
function summary(state: DeviceState) {
  return state.peers.map((p) => ({
    publicKey: p.publicKey,
    hasPresharedKey: p.hasPresharedKey,
    endpoint: p.endpoint && formatEndpoint(p.endpoint),
    allowedIps: p.allowedIps.map(formatPrefix),
    latestHandshake: p.latestHandshake,
    rxBytes: p.rxBytes,
    txBytes: p.txBytes,
    persistentKeepalive: p.persistentKeepalive,
  }));
}

const FIXTURES = ['wireguard-go-ipv6-psk.dump', 'kernel-fang-several-peers.dump', 'no-private-key.dump', 'client-fang-and-two-peers.dump'];

describe('parseDump on captures', () => {
  test('wireguard-go capture: IPv6 endpoint, preshared key, (none) and off', () => {
    const state = parseDump('wg0', readFixture('wireguard-go-ipv6-psk.dump'));
    assert.equal(state.interfaceName, 'wg0');
    assert.equal(state.hasPrivateKey, true);
    assert.equal(state.publicKey, 'IOyK4RTi8DxLrr7GHCovm8QNjNqpcMKjpU+WOKubklU=');
    assert.equal(state.listenPort, 51820);
    assert.equal(state.fwmark, 0x1234);
    assert.deepEqual(summary(state), [
      {
        publicKey: '6stQnJ894eyeTCTW7qd7MrKruiSupbPeWaq5D4tFgV0=',
        hasPresharedKey: false,
        endpoint: '[2001:db8::1]:51820',
        allowedIps: ['10.10.10.0/24', 'fd00::/64'],
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 25,
      },
      {
        publicKey: 'KCutslQpqAqW5IaqJjmN6q1pW7zqArnwDhqeRnvjGSQ=',
        hasPresharedKey: true,
        endpoint: null,
        allowedIps: [],
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: null,
      },
    ]);
  });

  test('a fang with several peers: IPv4, IPv6, mapped and link-local endpoints, counters, keepalives', () => {
    const state = parseDump('wg0', readFixture('kernel-fang-several-peers.dump'));
    assert.equal(state.hasPrivateKey, true);
    assert.equal(state.publicKey, 'hJvXQmJ2MLyTF4X8yn/W/Kdt3Ly6J2kz0wPU1VSkcXw=');
    assert.equal(state.fwmark, null, 'fwmark "off" is null');
    const peers = summary(state).map(({ publicKey: _key, ...rest }) => rest);
    assert.deepEqual(peers, [
      { hasPresharedKey: false, endpoint: '198.51.100.7:41641', allowedIps: ['10.10.10.2/32'], latestHandshake: 1700000000, rxBytes: 123456, txBytes: 654321, persistentKeepalive: null },
      { hasPresharedKey: true, endpoint: '[2001:db8:85a3::8a2e:370:7334]:51820', allowedIps: ['10.10.10.3/32', 'fd00::3/128'], latestHandshake: 1700000100, rxBytes: 0, txBytes: 92, persistentKeepalive: 25 },
      { hasPresharedKey: false, endpoint: null, allowedIps: ['10.10.10.4/32'], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null },
      { hasPresharedKey: false, endpoint: '203.0.113.9:1024', allowedIps: ['10.10.10.5/32', '10.20.0.0/16'], latestHandshake: 1699999000, rxBytes: Number.MAX_SAFE_INTEGER, txBytes: 2 ** 32, persistentKeepalive: 65535 },
      { hasPresharedKey: false, endpoint: '[::ffff:192.0.2.44]:51820', allowedIps: ['10.10.10.6/32'], latestHandshake: 1700000050, rxBytes: 1, txBytes: 2, persistentKeepalive: null },
      { hasPresharedKey: false, endpoint: '[fe80::1%eth0]:51820', allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null },
    ]);
  });

  test('an interface without a private key', () => {
    const state = parseDump('wg9', readFixture('no-private-key.dump'));
    assert.equal(state.hasPrivateKey, false);
    assert.equal(state.publicKey, null);
    assert.equal(state.listenPort, 0);
    assert.equal(state.fwmark, null);
    assert.equal(state.peers.length, 1);
    assert.deepEqual(summary(state)[0]?.allowedIps, ['10.10.10.9/32']);
  });

  test('a client: fwmark in hex, fang peer first', () => {
    const state = parseDump('wg0', readFixture('client-fang-and-two-peers.dump'));
    assert.equal(state.fwmark, 0xca6c);
    assert.equal(state.listenPort, 40000);
    assert.deepEqual(summary(state).map((p) => p.endpoint), ['192.0.2.1:51820', '192.168.1.20:51820', null]);
  });

  for (const name of FIXTURES) {
    test(`no private or preshared key value leaves the parser: ${name}`, () => {
      const dump = readFixture(name);
      const secrets = secretsOf(dump);
      const json = stringify(parseDump('wg0', dump));
      for (const secret of secrets) assert.ok(!json.includes(secret), `parsed state of ${name} contains a secret`);
      // Nor any 10-character piece of one, in case a field were sliced or shortened.
      for (const secret of secrets) {
        for (let i = 0; i + 10 <= secret.length; i += 10) assert.ok(!json.includes(secret.slice(i, i + 10)));
      }
    });
  }

  test('the parse is the same with and without the trailing newline', () => {
    const dump = readFixture('kernel-fang-several-peers.dump');
    assert.deepEqual(parseDump('wg0', dump.trimEnd()), parseDump('wg0', dump));
  });
});

describe('parseDump on odd output', () => {
  const PRIVATE = key(0xa1);
  const PUBLIC = key(0xa2);
  const PEER = key(0xa3);
  const PSK = key(0xa4);
  const head = [PRIVATE, PUBLIC, '51820', 'off'].join('\t');
  const peerLine = (fields: Partial<Record<'key' | 'psk' | 'endpoint' | 'allowed' | 'handshake' | 'rx' | 'tx' | 'keepalive', string>>) =>
    [
      fields.key ?? PEER,
      fields.psk ?? PSK,
      fields.endpoint ?? '192.0.2.1:51820',
      fields.allowed ?? '10.10.10.2/32',
      fields.handshake ?? '1700000000',
      fields.rx ?? '10',
      fields.tx ?? '20',
      fields.keepalive ?? 'off',
    ].join('\t');

  const malformed = [
    { name: 'empty output', input: '', line: 1, want: /empty output/ },
    { name: 'only newlines', input: '\n\n', line: 1, want: /empty output/ },
    { name: 'interface line with 3 fields', input: [PRIVATE, PUBLIC, '51820'].join('\t'), line: 1, want: /expected 4 tab-separated fields, got 3/ },
    { name: '`wg show all dump` (interface column)', input: ['wg0', PRIVATE, PUBLIC, '51820', 'off'].join('\t'), line: 1, want: /expected 4 .* got 5/ },
    { name: 'spaces instead of tabs', input: [PRIVATE, PUBLIC, '51820', 'off'].join(' '), line: 1, want: /got 1/ },
    { name: 'listen port 65536', input: [PRIVATE, PUBLIC, '65536', 'off'].join('\t'), line: 1, want: /listen port "65536"/ },
    { name: 'listen port not a number', input: [PRIVATE, PUBLIC, 'abc', 'off'].join('\t'), line: 1, want: /listen port "abc"/ },
    { name: 'negative listen port', input: [PRIVATE, PUBLIC, '-1', 'off'].join('\t'), line: 1, want: /listen port/ },
    { name: 'fwmark word', input: [PRIVATE, PUBLIC, '51820', 'on'].join('\t'), line: 1, want: /fwmark "on"/ },
    { name: 'fwmark bare 0x', input: [PRIVATE, PUBLIC, '51820', '0x'].join('\t'), line: 1, want: /fwmark "0x"/ },
    { name: 'fwmark over 32 bits', input: [PRIVATE, PUBLIC, '51820', '0x123456789'].join('\t'), line: 1, want: /fwmark/ },
    { name: 'interface public key not a key', input: [PRIVATE, 'notakey', '51820', 'off'].join('\t'), line: 1, want: /public key is not a WireGuard key/ },
    { name: 'peer line with 7 fields', input: `${head}\n${peerLine({}).split('\t').slice(0, 7).join('\t')}`, line: 2, want: /expected 8 tab-separated fields, got 7/ },
    { name: 'peer line with 9 fields', input: `${head}\n${peerLine({})}\textra`, line: 2, want: /got 9/ },
    { name: 'peer key not a key', input: `${head}\n${peerLine({ key: 'AAAA' })}`, line: 2, want: /peer public key is not a WireGuard key/ },
    { name: 'peer key with a bad last character', input: `${head}\n${peerLine({ key: `${'A'.repeat(42)}B=` })}`, line: 2, want: /peer public key/ },
    { name: 'endpoint out of range', input: `${head}\n${peerLine({ endpoint: '300.1.1.1:80' })}`, line: 2, want: /endpoint "300\.1\.1\.1:80"/ },
    { name: 'endpoint without port', input: `${head}\n${peerLine({ endpoint: '192.0.2.1' })}`, line: 2, want: /endpoint "192\.0\.2\.1"/ },
    { name: 'endpoint host name', input: `${head}\n${peerLine({ endpoint: 'fang.example:51820' })}`, line: 2, want: /endpoint/ },
    { name: 'allowed IP /33', input: `${head}\n${peerLine({ allowed: '10.0.0.0/33' })}`, line: 2, want: /allowed IP "10\.0\.0\.0\/33"/ },
    { name: 'allowed IPs with a trailing comma', input: `${head}\n${peerLine({ allowed: '10.0.0.1/32,' })}`, line: 2, want: /allowed IP ""/ },
    { name: 'allowed IPs separated by spaces', input: `${head}\n${peerLine({ allowed: '10.0.0.1/32 10.0.0.2/32' })}`, line: 2, want: /allowed IP/ },
    { name: 'negative handshake', input: `${head}\n${peerLine({ handshake: '-1' })}`, line: 2, want: /latest handshake "-1"/ },
    { name: 'rx not a number', input: `${head}\n${peerLine({ rx: 'x' })}`, line: 2, want: /transfer "x" "20"/ },
    { name: 'tx with 21 digits', input: `${head}\n${peerLine({ tx: '1'.repeat(21) })}`, line: 2, want: /transfer/ },
    { name: 'keepalive 65536', input: `${head}\n${peerLine({ keepalive: '65536' })}`, line: 2, want: /persistent keepalive "65536"/ },
    { name: 'keepalive "on"', input: `${head}\n${peerLine({ keepalive: 'on' })}`, line: 2, want: /persistent keepalive "on"/ },
    { name: 'bad third peer names line 4', input: `${head}\n${peerLine({})}\n${peerLine({ key: key(0xb1) })}\n${peerLine({ key: key(0xb2), rx: '?' })}`, line: 4, want: /transfer/ },
  ];
  for (const { name, input, line, want } of malformed) {
    test(`refuses ${name}`, () => {
      assert.throws(
        () => parseDump('wg0', input),
        (error: unknown) => {
          assert.ok(isSnakebiteError(error, 'SB_DUMP_MALFORMED'), String(error));
          assert.match(error.message, new RegExp(`^wg show wg0 dump, line ${line}: `));
          assert.match(error.message, want);
          assert.ok(error.hint && error.hint.length > 0);
          for (const secret of [PRIVATE, PSK]) assert.ok(!`${error.message} ${error.hint}`.includes(secret), 'the error repeats a secret');
          return true;
        },
      );
    });
  }

  const accepted = [
    { name: 'no peers', input: `${head}\n`, check: (s: DeviceState) => assert.equal(s.peers.length, 0) },
    { name: 'fwmark in decimal', input: [PRIVATE, PUBLIC, '51820', '51820'].join('\t'), check: (s: DeviceState) => assert.equal(s.fwmark, 51820) },
    { name: 'fwmark in upper-case hex', input: [PRIVATE, PUBLIC, '51820', '0xFFFFFFFF'].join('\t'), check: (s: DeviceState) => assert.equal(s.fwmark, 0xffffffff) },
    { name: 'listen port 0 (not bound yet)', input: [PRIVATE, PUBLIC, '0', 'off'].join('\t'), check: (s: DeviceState) => assert.equal(s.listenPort, 0) },
    {
      name: '(none) allowed IPs and endpoint',
      input: `${head}\n${peerLine({ endpoint: '(none)', allowed: '(none)' })}`,
      check: (s: DeviceState) => {
        assert.equal(s.peers[0]?.endpoint, null);
        assert.deepEqual(s.peers[0]?.allowedIps, []);
      },
    },
    {
      name: 'counters at 2^53 - 1 are exact',
      input: `${head}\n${peerLine({ rx: '9007199254740991', tx: '9007199254740990' })}`,
      check: (s: DeviceState) => {
        assert.equal(s.peers[0]?.rxBytes, 9007199254740991);
        assert.equal(s.peers[0]?.txBytes, 9007199254740990);
      },
    },
    {
      // WireGuard counts bytes in u64; a busy fang must not become unreadable because of a counter.
      name: 'counters past 2^53, up to u64 max, are kept approximately',
      input: `${head}\n${peerLine({ rx: '18446744073709551615', tx: '9007199254740993' })}`,
      check: (s: DeviceState) => {
        assert.equal(s.peers[0]?.rxBytes, 18446744073709551615);
        assert.ok((s.peers[0]?.txBytes ?? 0) >= 2 ** 53);
      },
    },
    {
      name: 'handshake far in the future',
      input: `${head}\n${peerLine({ handshake: '4102444800' })}`,
      check: (s: DeviceState) => assert.equal(s.peers[0]?.latestHandshake, 4102444800),
    },
    {
      name: 'many allowed IPs on one peer',
      input: `${head}\n${peerLine({ allowed: Array.from({ length: 300 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(',') })}`,
      check: (s: DeviceState) => assert.equal(s.peers[0]?.allowedIps.length, 300),
    },
  ];
  for (const { name, input, check } of accepted) {
    test(`accepts ${name}`, () => check(parseDump('wg0', input)));
  }

  test('preshared key is reduced to a flag', () => {
    const state = parseDump('wg0', `${head}\n${peerLine({})}\n${peerLine({ key: key(0xc1), psk: '(none)' })}`);
    assert.deepEqual(state.peers.map((p) => p.hasPresharedKey), [true, false]);
    assert.ok(!stringify(state).includes(PSK));
    assert.ok(!stringify(state).includes(PRIVATE));
  });
});
