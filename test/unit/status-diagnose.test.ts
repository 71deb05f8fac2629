import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerList, PeerListEntry } from '../../src/peer-list/peer-list';
import { explainNoDirectPath, listenPortClashes, natBehaviour, type NatBehaviour } from '../../src/status/diagnose';
import type { WireGuardKey } from '../../src/wireguard/key';
import { endpoint, key, prefix } from '../support/fakes';

const SELF = key(0x01);
const FANG = key(0xf0);
const P = key(0x05);
const Q = key(0x06);
const R = key(0x07);
const short = (k: WireGuardKey) => k.slice(0, 8);

type Seen = { publicKey: WireGuardKey; endpoint: string }[];
const seen = (items: Seen) => items.map((s) => ({ publicKey: s.publicKey, endpoint: endpoint(s.endpoint) }));

describe('natBehaviour', () => {
  const rows: { name: string; atFang: string | null; listenPort?: number; seenBy?: Seen; want: NatBehaviour; detail: string }[] = [
    {
      name: 'another peer sees the same address at another port: symmetric',
      atFang: '198.51.100.5:40000',
      listenPort: 51820,
      seenBy: [{ publicKey: Q, endpoint: '198.51.100.5:40123' }],
      want: 'symmetric',
      detail: `the fang sees port 40000, peer ${short(Q)} sees port 40123: a new mapping per destination`,
    },
    {
      name: 'another peer sees the same address and port: independent',
      atFang: '198.51.100.5:40000',
      listenPort: 51820,
      seenBy: [{ publicKey: Q, endpoint: '198.51.100.5:40000' }],
      want: 'independent',
      detail: `the fang and peer ${short(Q)} both see 198.51.100.5:40000`,
    },
    {
      name: 'one observer agrees, another sees another port: symmetric, naming the one that differs',
      atFang: '198.51.100.5:40000',
      seenBy: [
        { publicKey: Q, endpoint: '198.51.100.5:40000' },
        { publicKey: R, endpoint: '198.51.100.5:40777' },
      ],
      want: 'symmetric',
      detail: `the fang sees port 40000, peer ${short(R)} sees port 40777: a new mapping per destination`,
    },
    {
      name: 'an observer at an IPv4-mapped spelling of the same address counts',
      atFang: '198.51.100.5:40000',
      seenBy: [{ publicKey: Q, endpoint: '[::ffff:198.51.100.5]:40001' }],
      want: 'symmetric',
      detail: `the fang sees port 40000, peer ${short(Q)} sees port 40001: a new mapping per destination`,
    },
    {
      name: 'an observer at another address (over a LAN) says nothing about the NAT: ListenPort decides',
      atFang: '198.51.100.5:51820',
      listenPort: 51820,
      seenBy: [{ publicKey: Q, endpoint: '192.168.1.5:51820' }],
      want: 'keeps-port',
      detail: 'it keeps ListenPort 51820 (198.51.100.5:51820)',
    },
    {
      name: 'no observers, the fang sees another port than the ListenPort: rewrites-port',
      atFang: '198.51.100.5:40000',
      listenPort: 51820,
      want: 'rewrites-port',
      detail: 'it maps ListenPort 51820 to 198.51.100.5:40000 towards the fang',
    },
    {
      name: 'no observers, the fang sees the ListenPort: keeps-port',
      atFang: '[2001:db8::5]:51820',
      listenPort: 51820,
      want: 'keeps-port',
      detail: 'it keeps ListenPort 51820 ([2001:db8::5]:51820)',
    },
    {
      name: 'no observers and no ListenPort reported: unknown',
      atFang: '198.51.100.5:40000',
      want: 'unknown',
      detail: 'the fang sees 198.51.100.5:40000; its ListenPort is not reported',
    },
    {
      name: 'the fang has no endpoint for it: unknown, whatever else is known',
      atFang: null,
      listenPort: 51820,
      seenBy: [{ publicKey: Q, endpoint: '198.51.100.5:40123' }],
      want: 'unknown',
      detail: 'the fang has no endpoint for it',
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const finding = natBehaviour(row.atFang === null ? null : endpoint(row.atFang), row.listenPort, row.seenBy && seen(row.seenBy));
      assert.deepEqual(finding, { behaviour: row.want, detail: row.detail });
    });
  }
});

const OUR_PUBLIC = '203.0.113.1';

function peerEntry(publicKey: WireGuardKey, endpointText: string | null, extra: Partial<PeerListEntry> = {}): PeerListEntry {
  return { publicKey, endpoint: endpointText === null ? null : endpoint(endpointText), allowedIps: [prefix('10.10.10.5/32')], latestHandshake: 1_700_000_000, ...extra };
}

function peerList(ourEndpoint: string | null, peers: PeerListEntry[], youSeenBy?: Seen): PeerList {
  return {
    version: 1,
    fang: { publicKey: FANG },
    you: { publicKey: SELF, endpoint: ourEndpoint === null ? null : endpoint(ourEndpoint), ...(youSeenBy ? { seenBy: seen(youSeenBy) } : {}) },
    peers,
  };
}

describe('explainNoDirectPath', () => {
  // Our ListenPort is 51820 throughout.
  const oursKeeps = `${OUR_PUBLIC}:51820`;
  const oursRewrites = `${OUR_PUBLIC}:62099`;
  const theirsKeeps = peerEntry(P, '198.51.100.5:51820', { listenPort: 51820 });
  const theirsSymmetric = peerEntry(P, '198.51.100.5:40000', { listenPort: 51820, seenBy: seen([{ publicKey: Q, endpoint: '198.51.100.5:40555' }]) });

  const rows: { name: string; list: PeerList; peer: PeerListEntry; verdict: string; names: RegExp[] }[] = [
    {
      name: 'both NATs hard',
      list: peerList(oursRewrites, [theirsSymmetric]),
      peer: theirsSymmetric,
      verdict: 'both NATs give each destination its own port: a punch cannot pass two of them',
      names: [/our NAT \(203\.0\.113\.1\): it maps ListenPort 51820 to 203\.0\.113\.1:62099 towards the fang/, /their NAT \(198\.51\.100\.5\): the fang sees port 40000/],
    },
    {
      name: 'only theirs hard',
      list: peerList(oursKeeps, [theirsSymmetric]),
      peer: theirsSymmetric,
      verdict: 'their NAT gives each destination its own port, so we punch a port it never opens for us',
      names: [/our NAT \(203\.0\.113\.1\): it keeps ListenPort 51820/, /their NAT \(198\.51\.100\.5\)/],
    },
    {
      name: 'only ours hard (seen by another peer at another port)',
      list: peerList(oursKeeps, [theirsKeeps], [{ publicKey: Q, endpoint: `${OUR_PUBLIC}:51999` }]),
      peer: theirsKeeps,
      verdict: 'our NAT gives each destination its own port, so they punch a port it never opens for them',
      names: [new RegExp(`our NAT \\(203\\.0\\.113\\.1\\): the fang sees port 51820, peer ${short(Q).replace(/[+/]/g, '\\$&')} sees port 51999`), /their NAT \(198\.51\.100\.5\): it keeps ListenPort 51820/],
    },
    {
      name: 'neither hard',
      list: peerList(oursKeeps, [theirsKeeps]),
      peer: theirsKeeps,
      verdict: 'neither NAT looks symmetric; a firewall may drop the punch (check UDP on the ListenPorts)',
      names: [/our NAT \(203\.0\.113\.1\)/, /their NAT \(198\.51\.100\.5\)/],
    },
    {
      name: 'nothing known of either: neither, and no address named where there is none',
      list: peerList(null, [peerEntry(P, null)]),
      peer: peerEntry(P, null),
      verdict: 'neither NAT looks symmetric; a firewall may drop the punch (check UDP on the ListenPorts)',
      names: [/; our NAT: the fang has no endpoint for it; their NAT: the fang has no endpoint for it$/],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const text = explainNoDirectPath(row.list, 51820, row.peer);
      assert.ok(text.startsWith(`${row.verdict}; `), text);
      for (const pattern of row.names) assert.match(text, pattern);
      const evidence = text.slice(row.verdict.length + 2);
      assert.ok(evidence.startsWith('our NAT') && evidence.includes('; their NAT'), `ours first, then theirs: ${evidence}`);
    });
  }
});

describe('listenPortClashes', () => {
  const rows: { name: string; ours: string | null; ourListenPort?: number; peers: PeerListEntry[]; want: string[] }[] = [
    {
      name: 'two peers behind one address with the same ListenPort',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [peerEntry(P, '198.51.100.5:40000', { listenPort: 51820 }), peerEntry(Q, '198.51.100.5:40001', { listenPort: 51820 })],
      want: [`listen-port clash behind 198.51.100.5: ${short(P)} and ${short(Q)} all use ListenPort 51820; give each its own`],
    },
    {
      name: 'this peer and another behind our address',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [peerEntry(P, `${OUR_PUBLIC}:40001`, { listenPort: 51820 })],
      want: [`listen-port clash behind ${OUR_PUBLIC}: this peer and ${short(P)} all use ListenPort 51820; give each its own`],
    },
    {
      name: 'an IPv4-mapped spelling of the same address clashes too',
      ours: `[::ffff:${OUR_PUBLIC}]:51820`,
      peers: [peerEntry(P, `${OUR_PUBLIC}:40001`, { listenPort: 51820 })],
      want: [`listen-port clash behind ${OUR_PUBLIC}: this peer and ${short(P)} all use ListenPort 51820; give each its own`],
    },
    {
      name: 'three behind one IPv6 address',
      ours: '[2001:db8::1]:51820',
      peers: [peerEntry(P, '[2001:db8::1]:51821', { listenPort: 51820 }), peerEntry(Q, '[2001:db8::1]:51822', { listenPort: 51820 })],
      want: [`listen-port clash behind 2001:db8::1: this peer and ${short(P)} and ${short(Q)} all use ListenPort 51820; give each its own`],
    },
    {
      name: 'the same address with other ListenPorts: no clash',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [peerEntry(P, `${OUR_PUBLIC}:40001`, { listenPort: 51821 }), peerEntry(Q, `${OUR_PUBLIC}:40002`, { listenPort: 51822 })],
      want: [],
    },
    {
      name: 'the same ListenPort at other addresses: no clash',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [peerEntry(P, '198.51.100.5:51820', { listenPort: 51820 }), peerEntry(Q, '198.51.100.6:51820', { listenPort: 51820 })],
      want: [],
    },
    {
      name: 'a peer without a reported ListenPort or without an endpoint is left out',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [peerEntry(P, `${OUR_PUBLIC}:40001`), peerEntry(Q, null, { listenPort: 51820 })],
      want: [],
    },
    {
      name: 'we have no endpoint at the fang: only the peers are compared',
      ours: null,
      peers: [peerEntry(P, '198.51.100.5:40000', { listenPort: 51820 }), peerEntry(Q, '198.51.100.5:40001', { listenPort: 51820 })],
      want: [`listen-port clash behind 198.51.100.5: ${short(P)} and ${short(Q)} all use ListenPort 51820; give each its own`],
    },
    {
      name: 'two clashes, one line each',
      ours: `${OUR_PUBLIC}:51820`,
      peers: [
        peerEntry(P, `${OUR_PUBLIC}:40001`, { listenPort: 51820 }),
        peerEntry(Q, '198.51.100.5:40000', { listenPort: 4000 }),
        peerEntry(R, '198.51.100.5:40001', { listenPort: 4000 }),
      ],
      want: [
        `listen-port clash behind ${OUR_PUBLIC}: this peer and ${short(P)} all use ListenPort 51820; give each its own`,
        `listen-port clash behind 198.51.100.5: ${short(Q)} and ${short(R)} all use ListenPort 4000; give each its own`,
      ],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      assert.deepEqual(listenPortClashes(peerList(row.ours, row.peers), SELF, row.ourListenPort ?? 51820), row.want);
    });
  }
});
