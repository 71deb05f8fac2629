/**
 * A hostile fang sends every kind of bad reply. After each, the client's
 * interface (a fake driver holding the real fixture's state) is compared
 * byte for byte with what the same reply minus the bad parts would have made:
 * only valid changes are ever made, and a bad envelope changes nothing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { syncOnce, type SyncDeps, type SyncOptions } from '../../src/client/sync';
import { isSnakebiteError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { PEER_LIST_LIMITS } from '../../src/peer-list/peer-list';
import type { DeviceState } from '../../src/wireguard/device-state';
import { parseDump } from '../../src/wireguard/dump-parser';
import { FakeDriver, ip, key, readFixture, stringify } from '../support/fakes';

const DEVICE = parseDump('wg0', readFixture('client-fang-and-two-peers.dump'));
const SELF = DEVICE.publicKey!;
const [FANG_PEER, LAN_PEER] = DEVICE.peers as [DeviceState['peers'][0], DeviceState['peers'][0]];
const FANG = FANG_PEER.publicKey;
const NOW = new Date((LAN_PEER.latestHandshake + 90) * 1000);
const OPTIONS: SyncOptions = { serverAddress: ip('10.10.10.1'), keepaliveSeconds: 25, flowingWithinSeconds: 180, dryRun: false };
const GOOD = { publicKey: key(0x05), endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], latestHandshake: 1 };
const HOSTILE_KEY = key(0x66);

function envelope(peers: unknown[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, fang: { publicKey: FANG }, you: { publicKey: SELF, endpoint: '203.0.113.1:40000' }, peers, ...overrides };
}

async function run(body: unknown): Promise<{ state: string; batches: string; error?: unknown }> {
  const driver = new FakeDriver(DEVICE);
  const deps: SyncDeps = { driver, fetchPeerList: async () => body, triggerHandshakes: async () => {}, logger: silentLogger, clock: () => NOW, ownAddresses: () => [ip('10.10.10.2')] };
  let error: unknown;
  await syncOnce(deps, OPTIONS).catch((e: unknown) => (error = e));
  return { state: stringify(driver.state), batches: stringify(driver.batches), error };
}

const deep = (n: number) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown;
const entry = (patch: Record<string, unknown>) => ({ publicKey: HOSTILE_KEY, endpoint: '198.51.100.66:4000', allowedIps: ['10.10.10.66/32'], latestHandshake: 1, ...patch });

/** Entries a hostile fang may list next to a good one: each must be refused and change nothing. */
export const HOSTILE_ENTRIES: { name: string; entry: unknown }[] = [
  { name: 'not an object', entry: 'not a peer' },
  { name: 'null', entry: null },
  { name: 'a bad key', entry: entry({ publicKey: 'AAAA' }) },
  { name: 'our own key', entry: entry({ publicKey: SELF }) },
  { name: 'the fang\'s key, moved elsewhere', entry: { publicKey: FANG, endpoint: '203.0.113.66:666', allowedIps: ['10.10.10.0/24'], latestHandshake: 1 } },
  { name: 'a loopback endpoint', entry: entry({ endpoint: '127.0.0.1:51820' }) },
  { name: 'an unspecified endpoint', entry: entry({ endpoint: '0.0.0.0:51820' }) },
  { name: 'a multicast endpoint', entry: entry({ endpoint: '224.0.0.1:51820' }) },
  { name: 'a broadcast endpoint', entry: entry({ endpoint: '255.255.255.255:51820' }) },
  { name: 'an IPv6 loopback endpoint', entry: entry({ endpoint: '[::1]:51820' }) },
  { name: 'a host name', entry: entry({ endpoint: 'evil.example:51820' }) },
  { name: 'port 0', entry: entry({ endpoint: '198.51.100.66:0' }) },
  { name: 'port 70000', entry: entry({ endpoint: '198.51.100.66:70000' }) },
  { name: 'a scoped endpoint', entry: entry({ endpoint: '[fe80::1%eth0]:51820' }) },
  { name: 'an octet over 255', entry: entry({ endpoint: '300.1.1.1:80' }) },
  { name: 'allowed IPs 0.0.0.0/0', entry: entry({ allowedIps: ['0.0.0.0/0'] }) },
  { name: 'allowed IPs ::/0', entry: entry({ allowedIps: ['::/0'] }) },
  { name: 'the fang\'s whole range', entry: entry({ allowedIps: ['10.10.10.0/24'] }) },
  { name: 'a prefix holding the server address', entry: entry({ allowedIps: ['10.10.10.0/25'] }) },
  { name: 'the server address itself', entry: entry({ allowedIps: ['10.10.10.1/32'] }) },
  { name: 'outside the fang\'s range', entry: entry({ allowedIps: ['10.99.0.0/16'] }) },
  { name: 'another peer\'s address', entry: entry({ allowedIps: ['10.10.10.3/32'] }) },
  { name: 'a malformed prefix', entry: entry({ allowedIps: ['10.10.10.66/33'] }) },
  { name: 'too many allowed IPs', entry: entry({ allowedIps: Array.from({ length: 257 }, (_, i) => `10.10.10.${i % 250}/32`) }) },
  { name: 'allowed IPs not an array', entry: entry({ allowedIps: '10.10.10.66/32' }) },
  { name: 'a negative handshake', entry: entry({ latestHandshake: -1 }) },
  { name: 'a handshake that is text', entry: entry({ latestHandshake: 'yesterday' }) },
  { name: 'a loopback LAN candidate', entry: entry({ candidates: ['127.0.0.1:51820'] }) },
  { name: 'garbage seenBy', entry: entry({ seenBy: [{ publicKey: 'x' }] }) },
  { name: 'garbage punch requests', entry: entry({ punchRequests: [{ publicKey: SELF, at: -5 }] }) },
  { name: 'a listen port of 0', entry: entry({ listenPort: 0 }) },
  { name: 'our own overlay address as its allowed IP', entry: entry({ allowedIps: ['10.10.10.2/32'] }) },
  { name: 'a prefix holding our own overlay address', entry: entry({ allowedIps: ['10.10.10.2/31'] }) },
  { name: 'an endpoint inside the overlay', entry: entry({ endpoint: '10.10.10.77:51820' }) },
  { name: 'an IPv4 link-local endpoint', entry: entry({ endpoint: '169.254.1.1:51820' }) },
  { name: 'an IPv6 link-local endpoint', entry: entry({ endpoint: '[fe80::1]:51820' }) },
  { name: 'nested a million deep', entry: deep(20_000) },
  { name: 'an endpoint nested deep', entry: entry({ endpoint: deep(20_000) }) },
];

/** Replies whose envelope is bad: refused whole, with the malformed-reply (or fang-mismatch) error. */
export const HOSTILE_ENVELOPES: { name: string; body: unknown }[] = [
  { name: 'null', body: null },
  { name: 'a number', body: 42 },
  { name: 'a string', body: 'hello' },
  { name: 'an array', body: [GOOD] },
  { name: 'version 2', body: envelope([GOOD], { version: 2 }) },
  { name: 'no version', body: envelope([GOOD], { version: undefined }) },
  { name: 'no fang', body: envelope([GOOD], { fang: undefined }) },
  { name: 'another fang key', body: envelope([GOOD], { fang: { publicKey: key(0x77) } }) },
  { name: 'a bad you', body: envelope([GOOD], { you: 'me' }) },
  { name: 'a loopback you.endpoint', body: envelope([GOOD], { you: { publicKey: SELF, endpoint: '127.0.0.1:1' } }) },
  { name: 'peers not an array', body: envelope([GOOD], { peers: { 0: GOOD } }) },
  { name: `more than ${PEER_LIST_LIMITS.maxPeers} peers`, body: envelope(Array.from({ length: PEER_LIST_LIMITS.maxPeers + 1 }, () => GOOD)) },
  { name: 'a negative revision', body: envelope([GOOD], { revision: -1 }) },
  { name: 'deep JSON as the whole reply', body: deep(20_000) },
  { name: 'deep JSON as the version', body: envelope([GOOD], { version: deep(20_000) }) },
  { name: 'deep JSON as you', body: envelope([GOOD], { you: deep(20_000) }) },
];

describe('attack: a hostile fang', () => {
  test('reference: the good entry alone is added', async () => {
    const clean = await run(envelope([GOOD]));
    assert.equal(clean.error, undefined);
    assert.ok(clean.state.includes(GOOD.publicKey));
  });

  for (const row of HOSTILE_ENTRIES) {
    test(`an entry with ${row.name}: only the valid change is made`, async () => {
      const clean = await run(envelope([GOOD]));
      for (const peers of [[row.entry, GOOD], [GOOD, row.entry]]) {
        const hostile = await run(envelope(peers));
        assert.equal(hostile.error, undefined, String(hostile.error));
        assert.equal(hostile.state, clean.state);
        assert.equal(hostile.batches, clean.batches);
      }
    });
  }

  for (const row of HOSTILE_ENVELOPES) {
    test(`a reply with ${row.name}: refused with a clear error, the interface byte for byte as before`, async () => {
      const result = await run(row.body);
      assert.ok(isSnakebiteError(result.error), `not a SnakebiteError: ${String(result.error)}`);
      assert.match(result.error.code, /^SB_(REPLY_MALFORMED|FANG_MISMATCH)$/);
      assert.equal(result.state, stringify(DEVICE));
      assert.equal(result.batches, '[]');
    });
  }
});
