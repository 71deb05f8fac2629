import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEndpoint } from '../../src/ip/address';
import type { PeerList, PeerListEntry } from '../../src/peer-list/peer-list';
import { chooseEndpoint, type EndpointChoice } from '../../src/plan/candidates';
import { endpoint, key, prefix } from '../support/fakes';

const SELF = key(0x01);
const PEER = key(0x05);

function entry(publicEndpoint: string | null, candidates?: string[]): PeerListEntry {
  return {
    publicKey: PEER,
    endpoint: publicEndpoint === null ? null : endpoint(publicEndpoint),
    allowedIps: [prefix('10.10.10.5/32')],
    latestHandshake: 1_700_000_000,
    ...(candidates ? { candidates: candidates.map(endpoint) } : {}),
  };
}

function you(publicEndpoint: string | null): PeerList['you'] {
  return { publicKey: SELF, endpoint: publicEndpoint === null ? null : endpoint(publicEndpoint) };
}

function show(choice: EndpointChoice) {
  return { endpoint: choice.endpoint && formatEndpoint(choice.endpoint), via: choice.via };
}

describe('chooseEndpoint', () => {
  const HOME = ['192.168.1.0/24', 'fd12:3456::/64'];
  const rows: { name: string; entry: PeerListEntry; you: PeerList['you']; networks: string[]; want: ReturnType<typeof show> }[] = [
    {
      name: 'same public address, a candidate on a shared LAN: that candidate',
      entry: entry('203.0.113.1:40001', ['10.99.0.5:51820', '192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '192.168.1.5:51820', via: 'lan' },
    },
    {
      name: 'same public address, the first candidate on a shared LAN wins',
      entry: entry('203.0.113.1:40001', ['192.168.1.5:51820', '192.168.1.6:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '192.168.1.5:51820', via: 'lan' },
    },
    {
      name: 'same public address, an IPv6 candidate on a shared network',
      entry: entry('203.0.113.1:40001', ['[fd12:3456::5]:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '[fd12:3456::5]:51820', via: 'lan' },
    },
    {
      name: 'same public address, no candidate on our networks: public',
      entry: entry('203.0.113.1:40001', ['10.99.0.5:51820', '172.16.0.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '203.0.113.1:40001', via: 'public' },
    },
    {
      name: 'same public address, candidates reported but none: public',
      entry: entry('203.0.113.1:40001', []),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '203.0.113.1:40001', via: 'public' },
    },
    {
      name: 'same public address, no candidates reported yet: wait (no endpoint)',
      entry: entry('203.0.113.1:40001'),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: null, via: 'wait' },
    },
    {
      name: 'same public address, no candidates reported yet, IPv4-mapped spelling: wait',
      entry: entry('[::ffff:203.0.113.1]:40001'),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: null, via: 'wait' },
    },
    {
      name: 'same public address, no candidates and no networks of ours to use them on: public',
      entry: entry('203.0.113.1:40001'),
      you: you('203.0.113.1:40000'),
      networks: [],
      want: { endpoint: '203.0.113.1:40001', via: 'public' },
    },
    {
      name: 'another public address, no candidates reported: public, no waiting',
      entry: entry('198.51.100.5:40001'),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '198.51.100.5:40001', via: 'public' },
    },
    {
      name: 'same public address, we know no networks of ours: public',
      entry: entry('203.0.113.1:40001', ['192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: [],
      want: { endpoint: '203.0.113.1:40001', via: 'public' },
    },
    {
      name: 'another public address: public, even with a candidate on our networks',
      entry: entry('198.51.100.5:40001', ['192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '198.51.100.5:40001', via: 'public' },
    },
    {
      name: 'the same port on another address is not the same NAT',
      entry: entry('198.51.100.5:40000', ['192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '198.51.100.5:40000', via: 'public' },
    },
    {
      name: 'IPv4-mapped peer endpoint and plain IPv4 "you": the same address',
      entry: entry('[::ffff:203.0.113.1]:40001', ['192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '192.168.1.5:51820', via: 'lan' },
    },
    {
      name: 'plain IPv4 peer endpoint and IPv4-mapped "you": the same address',
      entry: entry('203.0.113.1:40001', ['192.168.1.5:51820']),
      you: you('[::ffff:203.0.113.1]:40000'),
      networks: HOME,
      want: { endpoint: '192.168.1.5:51820', via: 'lan' },
    },
    {
      name: 'an IPv4-mapped candidate counts as on an IPv4 network',
      entry: entry('203.0.113.1:40001', ['[::ffff:192.168.1.5]:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: '[::ffff:192.168.1.5]:51820', via: 'lan' },
    },
    {
      name: 'the peer has no endpoint: null, public',
      entry: entry(null, ['192.168.1.5:51820']),
      you: you('203.0.113.1:40000'),
      networks: HOME,
      want: { endpoint: null, via: 'public' },
    },
    {
      name: 'we have no endpoint at the fang: public',
      entry: entry('203.0.113.1:40001', ['192.168.1.5:51820']),
      you: you(null),
      networks: HOME,
      want: { endpoint: '203.0.113.1:40001', via: 'public' },
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      assert.deepEqual(show(chooseEndpoint(row.entry, row.you, row.networks.map(prefix))), row.want);
    });
  }

  test('the chosen candidate is the entry\'s own value', () => {
    const e = entry('203.0.113.1:40001', ['192.168.1.5:51820']);
    assert.equal(chooseEndpoint(e, you('203.0.113.1:40000'), [prefix('192.168.1.0/24')]).endpoint, e.candidates![0]);
    assert.equal(chooseEndpoint(e, you('198.51.100.9:1'), [prefix('192.168.1.0/24')]).endpoint, e.endpoint);
  });
});
