import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerList } from '../../src/peer-list/peer-list';
import { explainNoDirectPath } from '../../src/status/diagnose';
import { describePath, describePaths, guessFangPeer, SESSION_LIFETIME_SECONDS, type PathContext, type PathKind } from '../../src/status/paths';
import { parseDump } from '../../src/wireguard/dump-parser';
import { device, endpoint, key, peer, prefix, readFixture, type PeerSpec } from '../support/fakes';

const NOW = 1_700_000_000;
const FANG = key(0xf0);
const P = key(0x02);

describe('describePath', () => {
  const rows: { name: string; peer: PeerSpec; fang?: string; want: PathKind; reason: RegExp }[] = [
    {
      name: 'the fang peer with a session',
      peer: { publicKey: FANG, endpoint: '192.0.2.1:51820', latestHandshake: NOW - 10 },
      fang: FANG,
      want: 'fang',
      reason: /the fang peer; session up/,
    },
    {
      name: 'the fang peer without a session',
      peer: { publicKey: FANG, endpoint: '192.0.2.1:51820', latestHandshake: NOW - 1000 },
      fang: FANG,
      want: 'fang',
      reason: /no session: check that the fang is reachable/,
    },
    {
      name: 'the fang peer never reached, no endpoint',
      peer: { publicKey: FANG, endpoint: null },
      fang: FANG,
      want: 'fang',
      reason: /no session/,
    },
    {
      name: 'direct over a public endpoint',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641', latestHandshake: NOW - 5, persistentKeepalive: 25 },
      want: 'direct',
      reason: /^handshake 5s ago with 198\.51\.100\.7:41641$/,
    },
    {
      name: 'direct over IPv6',
      peer: { publicKey: P, endpoint: '[2001:db8::7]:51820', latestHandshake: NOW - 5, persistentKeepalive: 25 },
      want: 'direct',
      reason: /\[2001:db8::7\]:51820/,
    },
    {
      name: 'direct but keepalive off is pointed out',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641', latestHandshake: NOW - 5, persistentKeepalive: null },
      want: 'direct',
      reason: /no persistent keepalive: the NAT mapping may close when idle/,
    },
    ...['192.168.1.20:51820', '10.0.0.5:51820', '172.16.3.4:51820', '172.31.255.255:1', '[fd12::5]:51820', '[fe80::1%eth0]:51820', '[::ffff:192.168.1.20]:51820'].map((ep) => ({
      name: `lan over ${ep}`,
      peer: { publicKey: P, endpoint: ep, latestHandshake: NOW - 5, persistentKeepalive: 25 },
      want: 'lan' as const,
      reason: /^handshake 5s ago with /,
    })),
    ...['172.32.0.1:51820', '192.169.0.1:51820', '11.0.0.1:51820', '100.64.0.1:51820', '100.128.0.1:51820', '[2001:db8::1]:51820'].map((ep) => ({
      name: `not lan: ${ep}`,
      peer: { publicKey: P, endpoint: ep, latestHandshake: NOW - 5, persistentKeepalive: 25 },
      want: 'direct' as const,
      reason: /handshake/,
    })),
    {
      name: 'none: no endpoint yet',
      peer: { publicKey: P, endpoint: null },
      want: 'none',
      reason: /no endpoint yet: is snakebite client running/,
    },
    {
      name: 'none: endpoint but never a handshake',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641' },
      want: 'none',
      reason: /^never had a handshake; punching through 198\.51\.100\.7:41641$/,
    },
    {
      name: 'none: session expired',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641', latestHandshake: NOW - SESSION_LIFETIME_SECONDS - 1 },
      want: 'none',
      reason: /^no handshake for 181s; punching through/,
    },
    {
      name: 'still live at exactly the session lifetime',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641', latestHandshake: NOW - SESSION_LIFETIME_SECONDS, persistentKeepalive: 25 },
      want: 'direct',
      reason: /handshake 180s ago/,
    },
    {
      name: 'a handshake in the future counts as now',
      peer: { publicKey: P, endpoint: '198.51.100.7:41641', latestHandshake: NOW + 30, persistentKeepalive: 25 },
      want: 'direct',
      reason: /handshake 0s ago/,
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const path = describePath(peer(row.peer), row.fang, NOW);
      assert.equal(path.path, row.want);
      assert.match(path.reason, row.reason);
    });
  }

  test('the fields carried along', () => {
    const path = describePath(peer({ publicKey: P, endpoint: '[2001:db8::7]:51820', latestHandshake: NOW - 42, rxBytes: 1, txBytes: 2, persistentKeepalive: 25 }), undefined, NOW);
    assert.deepEqual(path, {
      publicKey: P,
      endpoint: '[2001:db8::7]:51820',
      handshakeAgeSeconds: 42,
      rxBytes: 1,
      txBytes: 2,
      persistentKeepalive: 25,
      path: 'direct',
      reason: 'handshake 42s ago with [2001:db8::7]:51820',
    });
  });

  test('never: handshake age is null, and no endpoint is null', () => {
    const path = describePath(peer({ publicKey: P }), undefined, NOW);
    assert.equal(path.handshakeAgeSeconds, null);
    assert.equal(path.endpoint, null);
  });
});

describe('describePath: relayed through the fang', () => {
  const EP = '198.51.100.7:41641';
  const relayed: PeerSpec = { publicKey: P, endpoint: EP, allowedIps: [], latestHandshake: 0, persistentKeepalive: 25 };
  // The fang sees us keep our ListenPort and sees P at another port than its own: their NAT rewrites it.
  const list: PeerList = {
    version: 1,
    fang: { publicKey: FANG },
    you: { publicKey: key(0x01), endpoint: endpoint('203.0.113.1:51820') },
    peers: [{ publicKey: P, endpoint: endpoint(EP), allowedIps: [prefix('10.10.10.7/32')], latestHandshake: NOW - 3, listenPort: 51820 }],
  };
  const diagnosis = explainNoDirectPath(list, 51820, list.peers[0]!);

  const rows: { name: string; peer: PeerSpec; fang: string | undefined; context?: PathContext; want: PathKind; reason: string }[] = [
    {
      name: 'an endpoint and no allowed IPs, with a fang key known: relayed',
      peer: relayed,
      fang: FANG,
      want: 'relayed',
      reason: `relayed via the fang, no direct handshake through ${EP}`,
    },
    {
      name: 'relayed, a handshake notwithstanding: still relayed until its allowed IPs are back',
      peer: { ...relayed, latestHandshake: NOW - 5 },
      fang: FANG,
      want: 'relayed',
      reason: `relayed via the fang, no direct handshake through ${EP}`,
    },
    {
      name: 'relayedSince gives how long',
      peer: relayed,
      fang: FANG,
      context: { relayedSince: new Map([[P, NOW - 40]]) },
      want: 'relayed',
      reason: `relayed via the fang for 40s, no direct handshake through ${EP}`,
    },
    {
      name: 'relayedSince in the future counts as now',
      peer: relayed,
      fang: FANG,
      context: { relayedSince: new Map([[P, NOW + 5]]) },
      want: 'relayed',
      reason: `relayed via the fang for 0s, no direct handshake through ${EP}`,
    },
    {
      name: "relayedSince of other peers only: no time given",
      peer: relayed,
      fang: FANG,
      context: { relayedSince: new Map([[key(0x09), NOW - 40]]) },
      want: 'relayed',
      reason: `relayed via the fang, no direct handshake through ${EP}`,
    },
    {
      name: 'with the list, the NAT diagnosis is appended',
      peer: relayed,
      fang: FANG,
      context: { list, relayedSince: new Map([[P, NOW - 40]]) },
      want: 'relayed',
      reason: `relayed via the fang for 40s, no direct handshake through ${EP}: ${diagnosis}`,
    },
    {
      name: 'a list that does not name the peer adds nothing',
      peer: relayed,
      fang: FANG,
      context: { list: { ...list, peers: [] } },
      want: 'relayed',
      reason: `relayed via the fang, no direct handshake through ${EP}`,
    },
    {
      name: 'no fang key known: not relayed, a path like any other',
      peer: { ...relayed, latestHandshake: NOW - 5 },
      fang: undefined,
      want: 'direct',
      reason: `handshake 5s ago with ${EP}`,
    },
    {
      name: 'no endpoint: none, not relayed',
      peer: { ...relayed, endpoint: null },
      fang: FANG,
      want: 'none',
      reason: 'no endpoint yet: is snakebite client running, and has this peer contacted the fang?',
    },
    {
      name: 'the fang peer itself is the fang, whatever its allowed IPs',
      peer: { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: [], latestHandshake: NOW - 5 },
      fang: FANG,
      want: 'fang',
      reason: 'the fang peer; session up',
    },
    {
      name: 'a routed peer without a session gets the diagnosis too',
      peer: { publicKey: P, endpoint: EP, allowedIps: ['10.10.10.7/32'], latestHandshake: 0 },
      fang: FANG,
      context: { list },
      want: 'none',
      reason: `never had a handshake; punching through ${EP}: ${diagnosis}`,
    },
    {
      name: 'a live routed peer gets no diagnosis',
      peer: { publicKey: P, endpoint: EP, allowedIps: ['10.10.10.7/32'], latestHandshake: NOW - 5, persistentKeepalive: 25 },
      fang: FANG,
      context: { list },
      want: 'direct',
      reason: `handshake 5s ago with ${EP}`,
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const path = describePath(peer(row.peer), row.fang, NOW, row.context, 51820);
      assert.equal(path.path, row.want);
      assert.equal(path.reason, row.reason);
    });
  }

  test('the diagnosis names the NATs by address and says whose NAT defeats the punch', () => {
    const withPeer = (extra: Partial<PeerList['peers'][number]>): PeerList => ({ ...list, peers: [{ ...list.peers[0]!, ...extra }] });
    const rows = [
      { name: 'their NAT rewrites the port', list, want: /: their NAT gives each destination its own port, so we punch a port it never opens for us; our NAT \(203\.0\.113\.1\): it keeps ListenPort 51820 \(203\.0\.113\.1:51820\); their NAT \(198\.51\.100\.7\): it maps ListenPort 51820 to 198\.51\.100\.7:41641 towards the fang$/ },
      { name: 'both keep their ports', list: withPeer({ listenPort: 41641 }), want: /: neither NAT looks symmetric; .*our NAT \(203\.0\.113\.1\): it keeps ListenPort 51820.*their NAT \(198\.51\.100\.7\): it keeps ListenPort 41641/ },
      { name: 'another peer sees them at another port', list: withPeer({ listenPort: 41641, seenBy: [{ publicKey: key(0x09), endpoint: endpoint('198.51.100.7:40000') }] }), want: /: their NAT gives each destination its own port.*their NAT \(198\.51\.100\.7\): the fang sees port 41641, peer CQkJCQkJ sees port 40000/ },
    ];
    for (const row of rows) assert.match(describePath(peer(relayed), FANG, NOW, { list: row.list }, 51820).reason, row.want, row.name);
  });

  test("describePaths compares with the interface's own ListenPort", () => {
    const state = { ...device(key(0x01), [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW - 5 }, relayed]), listenPort: 4242 };
    const [, path] = describePaths(state, FANG, new Date(NOW * 1000), { list });
    assert.equal(path?.path, 'relayed');
    assert.match(path?.reason ?? '', /our NAT \(203\.0\.113\.1\): it maps ListenPort 4242 to 203\.0\.113\.1:51820 towards the fang/);
  });
});

describe('guessFangPeer', () => {
  const rows: { name: string; peers: PeerSpec[]; want: string | undefined }[] = [
    {
      name: 'the widest prefix among peers with an endpoint',
      peers: [
        { publicKey: key(1), endpoint: '198.51.100.1:1', allowedIps: ['10.10.10.2/32'] },
        { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'] },
        { publicKey: key(3), endpoint: '198.51.100.3:1', allowedIps: ['10.10.10.3/32', '10.10.10.128/25'] },
      ],
      want: FANG,
    },
    {
      name: 'a wider prefix without an endpoint does not count',
      peers: [
        { publicKey: key(1), endpoint: null, allowedIps: ['0.0.0.0/0'] },
        { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'] },
      ],
      want: FANG,
    },
    {
      name: 'a tie goes to the first',
      peers: [
        { publicKey: key(1), endpoint: '198.51.100.1:1', allowedIps: ['10.10.0.0/16'] },
        { publicKey: key(2), endpoint: '198.51.100.2:1', allowedIps: ['10.20.0.0/16'] },
      ],
      want: key(1),
    },
    { name: 'no peer with an endpoint', peers: [{ publicKey: key(1), endpoint: null, allowedIps: ['10.0.0.0/8'] }], want: undefined },
    { name: 'an endpoint but no allowed IPs', peers: [{ publicKey: key(1), endpoint: '198.51.100.1:1', allowedIps: [] }], want: undefined },
    { name: 'no peers', peers: [], want: undefined },
  ];
  for (const { name, peers, want } of rows) {
    test(name, () => assert.equal(guessFangPeer(device(key(9), peers)), want));
  }

  test('on the client fixture, the fang peer is found', () => {
    const state = parseDump('wg0', readFixture('client-fang-and-two-peers.dump'));
    assert.equal(guessFangPeer(state), state.peers[0]?.publicKey);
  });
});

describe('describePaths', () => {
  test('one path per peer, in interface order, on the client fixture', () => {
    const state = parseDump('wg0', readFixture('client-fang-and-two-peers.dump'));
    const now = new Date((state.peers[1]!.latestHandshake + 60) * 1000);
    const paths = describePaths(state, guessFangPeer(state), now);
    assert.deepEqual(paths.map((p) => p.path), ['fang', 'lan', 'none']);
    assert.deepEqual(paths.map((p) => p.publicKey), state.peers.map((p) => p.publicKey));
  });
});

describe("describePath: what the client changed and what it leaves alone", () => {
  test("a user's peer relayed by moving its allowed IPs onto the fang peer says so, and since when", () => {
    const p = peer({ publicKey: P, endpoint: '198.51.100.7:41641', allowedIps: [], latestHandshake: 0, persistentKeepalive: 5 });
    const path = describePath(p, FANG, NOW, { relayedSince: new Map([[P, NOW - 30]]), changed: new Map([[P, { allowedIps: ['10.10.10.3/32'], viaFang: true, since: NOW - 30 }]]) });
    assert.equal(path.path, 'relayed');
    assert.match(path.reason, /10\.10\.10\.3\/32 moved onto the fang peer 30s ago/);
  });
  test('a listed peer left unmanaged carries the reason', () => {
    const p = peer({ publicKey: P, endpoint: null, allowedIps: ['192.168.50.0/24'] });
    const path = describePath(p, FANG, NOW, { unmanaged: new Map([[P, 'its allowed IP 192.168.50.0/24 lies outside']]) });
    assert.match(path.reason, /not managed by Snakebite: its allowed IP 192\.168\.50\.0\/24 lies outside$/);
  });
});
