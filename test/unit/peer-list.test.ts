import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSnakebiteError } from '../../src/errors';
import { formatEndpoint, formatPrefix } from '../../src/ip/address';
import { mergePeerList } from '../../src/peer-list/merge';
import { parsePeerList, parsePeerReport } from '../../src/peer-list/parse';
import { PEER_LIST_LIMITS, type PeerList, type PeerReport } from '../../src/peer-list/peer-list';
import { formatPeerListText, serializePeerList, serializePeerReport } from '../../src/peer-list/serialize';
import { endpoint, key, prefix } from '../support/fakes';

const FANG = key(0xf0);
const YOU = key(0x01);
const P2 = key(0x02);
const P3 = key(0x03);
const P4 = key(0x04);

function entry(publicKey: string, overrides: Record<string, unknown> = {}) {
  return { publicKey, endpoint: '198.51.100.2:51820', allowedIps: ['10.10.10.2/32'], latestHandshake: 1700000000, ...overrides };
}

function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    fang: { publicKey: FANG },
    you: { publicKey: YOU, endpoint: '203.0.113.1:40000' },
    peers: [entry(P2), entry(P3, { endpoint: '[2001:db8::3]:51820', allowedIps: ['10.10.10.3/32', 'fd00::3/128'] }), entry(P4, { endpoint: null, latestHandshake: 0 })],
    ...overrides,
  };
}

function summary(list: PeerList) {
  return {
    fang: list.fang.publicKey,
    you: { publicKey: list.you.publicKey, endpoint: list.you.endpoint && formatEndpoint(list.you.endpoint) },
    peers: list.peers.map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint && formatEndpoint(p.endpoint), allowedIps: p.allowedIps.map(formatPrefix), latestHandshake: p.latestHandshake })),
  };
}

describe('parsePeerList: good lists', () => {
  test('a full list', () => {
    const { list, rejected } = parsePeerList(body());
    assert.deepEqual(rejected, []);
    assert.equal(list.version, 1);
    assert.deepEqual(summary(list), {
      fang: FANG,
      you: { publicKey: YOU, endpoint: '203.0.113.1:40000' },
      peers: [
        { publicKey: P2, endpoint: '198.51.100.2:51820', allowedIps: ['10.10.10.2/32'], latestHandshake: 1700000000 },
        { publicKey: P3, endpoint: '[2001:db8::3]:51820', allowedIps: ['10.10.10.3/32', 'fd00::3/128'], latestHandshake: 1700000000 },
        { publicKey: P4, endpoint: null, allowedIps: ['10.10.10.2/32'], latestHandshake: 0 },
      ],
    });
  });

  test('no peers, and a "you" without an endpoint', () => {
    const { list, rejected } = parsePeerList(body({ peers: [], you: { publicKey: YOU, endpoint: null } }));
    assert.deepEqual(rejected, []);
    assert.equal(list.peers.length, 0);
    assert.equal(list.you.endpoint, null);
  });

  test('unknown fields are ignored, so a newer fang can add some', () => {
    const { list, rejected } = parsePeerList({ ...body(), extra: { nested: true }, peers: [{ ...entry(P2), nickname: 'laptop', rxBytes: 5 }] });
    assert.deepEqual(rejected, []);
    assert.deepEqual(Object.keys(list.peers[0]!).sort(), ['allowedIps', 'endpoint', 'latestHandshake', 'publicKey']);
  });

  test('allowed IPs are normalized (host bits cleared)', () => {
    const { list } = parsePeerList(body({ peers: [entry(P2, { allowedIps: ['10.10.10.7/24'] })] }));
    assert.deepEqual(list.peers[0]?.allowedIps.map(formatPrefix), ['10.10.10.0/24']);
  });

  test('an empty allowed-IPs array is accepted here (the plan decides)', () => {
    const { list, rejected } = parsePeerList(body({ peers: [entry(P2, { allowedIps: [] })] }));
    assert.deepEqual(rejected, []);
    assert.deepEqual(list.peers[0]?.allowedIps, []);
  });
});

describe('parsePeerList: envelope errors refuse the whole reply', () => {
  const rows: { name: string; input: unknown; path: string; want: RegExp }[] = [
    { name: 'null', input: null, path: '(root)', want: /expected an object, got null/ },
    { name: 'an array', input: [], path: '(root)', want: /expected an object, got \[\]/ },
    { name: 'a string', input: 'peers', path: '(root)', want: /got "peers"/ },
    { name: 'undefined', input: undefined, path: '(root)', want: /got undefined/ },
    { name: 'no version', input: body({ version: undefined }), path: 'version', want: /expected 1, got undefined/ },
    { name: 'version 2', input: body({ version: 2 }), path: 'version', want: /expected 1, got 2/ },
    { name: 'version as text', input: body({ version: '1' }), path: 'version', want: /expected 1, got "1"/ },
    { name: 'no fang', input: body({ fang: undefined }), path: 'fang.publicKey', want: /expected a WireGuard public key/ },
    { name: 'fang key malformed', input: body({ fang: { publicKey: 'not-a-key' } }), path: 'fang.publicKey', want: /got "not-a-key"/ },
    { name: 'fang as a string', input: body({ fang: FANG }), path: 'fang.publicKey', want: /expected a WireGuard public key/ },
    { name: 'no you', input: body({ you: undefined }), path: 'you.publicKey', want: /expected a WireGuard public key/ },
    { name: 'you key malformed', input: body({ you: { publicKey: 42, endpoint: null } }), path: 'you.publicKey', want: /got 42/ },
    { name: 'you endpoint malformed', input: body({ you: { publicKey: YOU, endpoint: '300.1.1.1:80' } }), path: 'you.endpoint', want: /expected ip:port or \[ipv6\]:port, got "300\.1\.1\.1:80"/ },
    { name: 'you endpoint missing', input: body({ you: { publicKey: YOU } }), path: 'you.endpoint', want: /expected ip:port or null, got undefined/ },
    { name: 'peers missing', input: body({ peers: undefined }), path: 'peers', want: /expected an array/ },
    { name: 'peers an object', input: body({ peers: { 0: entry(P2) } }), path: 'peers', want: /expected an array/ },
    { name: 'revision negative', input: body({ revision: -1 }), path: 'revision', want: /expected a non-negative integer, got -1/ },
    { name: 'revision as text', input: body({ revision: '5' }), path: 'revision', want: /got "5"/ },
    { name: 'revision fractional', input: body({ revision: 1.5 }), path: 'revision', want: /got 1\.5/ },
    { name: 'since past 2^53', input: body({ revision: 1, since: 2 ** 60 }), path: 'since', want: /expected a non-negative integer/ },
    { name: 'removed not an array', input: body({ revision: 2, since: 1, removed: P2 }), path: 'removed', want: /expected an array of WireGuard public keys/ },
    { name: 'removed with a bad key', input: body({ revision: 2, since: 1, removed: [P2, 'x'] }), path: 'removed', want: /expected an array of WireGuard public keys/ },
    {
      name: 'too many peers',
      input: body({ peers: new Array(PEER_LIST_LIMITS.maxPeers + 1).fill(0) }),
      path: 'peers',
      want: new RegExp(`${PEER_LIST_LIMITS.maxPeers + 1} entries, more than the limit of ${PEER_LIST_LIMITS.maxPeers}`),
    },
  ];
  for (const { name, input, path, want } of rows) {
    test(name, () => {
      assert.throws(
        () => parsePeerList(input),
        (error: unknown) => {
          assert.ok(isSnakebiteError(error, 'SB_REPLY_MALFORMED'), String(error));
          assert.ok(error.message.startsWith(`peer list: ${path}: `), error.message);
          assert.match(error.message, want);
          assert.ok(error.hint);
          return true;
        },
      );
    });
  }

  test('long values are shortened in the message', () => {
    assert.throws(
      () => parsePeerList(body({ fang: { publicKey: 'x'.repeat(500) } })),
      (error: unknown) => isSnakebiteError(error) && error.message.length < 200 && error.message.includes('...'),
    );
  });
});

describe('parsePeerList: a bad entry is dropped, the rest survive', () => {
  const rows: { name: string; item: unknown; path: string; reason: RegExp; hasKey: boolean }[] = [
    { name: 'not an object', item: 'peer', path: 'peers[1]', reason: /expected an object, got "peer"/, hasKey: false },
    { name: 'null', item: null, path: 'peers[1]', reason: /expected an object, got null/, hasKey: false },
    { name: 'an array', item: [P3], path: 'peers[1]', reason: /expected an object/, hasKey: false },
    { name: 'bad key', item: entry('AAAA'), path: 'peers[1].publicKey', reason: /expected a WireGuard public key, got "AAAA"/, hasKey: false },
    { name: 'missing key', item: { endpoint: null, allowedIps: [], latestHandshake: 0 }, path: 'peers[1].publicKey', reason: /got undefined/, hasKey: false },
    { name: 'endpoint out of range', item: entry(P3, { endpoint: '300.1.1.1:80' }), path: 'peers[1].endpoint', reason: /expected ip:port.* got "300\.1\.1\.1:80"/, hasKey: true },
    { name: 'loopback endpoint', item: entry(P3, { endpoint: '127.0.0.1:51820' }), path: 'peers[1].endpoint', reason: /"127\.0\.0\.1:51820" is a loopback address/, hasKey: true },
    { name: 'unspecified endpoint', item: entry(P3, { endpoint: '0.0.0.0:51820' }), path: 'peers[1].endpoint', reason: /is a unspecified address|is an? unspecified address/, hasKey: true },
    { name: 'multicast endpoint', item: entry(P3, { endpoint: '[ff02::1]:51820' }), path: 'peers[1].endpoint', reason: /is a multicast address/, hasKey: true },
    { name: 'IPv6 loopback endpoint', item: entry(P3, { endpoint: '[::1]:51820' }), path: 'peers[1].endpoint', reason: /is a loopback address/, hasKey: true },
    { name: 'zoned endpoint (means nothing on another machine)', item: entry(P3, { endpoint: '[fe80::1%eth0]:51820' }), path: 'peers[1].endpoint', reason: /scoped to interface "eth0" of another machine/, hasKey: true },
    { name: 'broadcast endpoint', item: entry(P3, { endpoint: '255.255.255.255:51820' }), path: 'peers[1].endpoint', reason: /is a broadcast address/, hasKey: true },
    { name: 'endpoint without port', item: entry(P3, { endpoint: '198.51.100.3' }), path: 'peers[1].endpoint', reason: /got "198\.51\.100\.3"/, hasKey: true },
    { name: 'endpoint port 0', item: entry(P3, { endpoint: '198.51.100.3:0' }), path: 'peers[1].endpoint', reason: /got "198\.51\.100\.3:0"/, hasKey: true },
    { name: 'endpoint host name', item: entry(P3, { endpoint: 'evil.example:51820' }), path: 'peers[1].endpoint', reason: /got "evil\.example:51820"/, hasKey: true },
    { name: 'endpoint a number', item: entry(P3, { endpoint: 51820 }), path: 'peers[1].endpoint', reason: /expected ip:port or null, got 51820/, hasKey: true },
    { name: 'endpoint missing', item: entry(P3, { endpoint: undefined }), path: 'peers[1].endpoint', reason: /got undefined/, hasKey: true },
    { name: 'allowed IPs a string', item: entry(P3, { allowedIps: '10.10.10.3/32' }), path: 'peers[1].allowedIps', reason: /expected an array, got "10\.10\.10\.3\/32"/, hasKey: true },
    { name: 'allowed IP /33', item: entry(P3, { allowedIps: ['10.10.10.3/32', '10.0.0.0/33'] }), path: 'peers[1].allowedIps[1]', reason: /expected a prefix like 10\.10\.10\.2\/32, got "10\.0\.0\.0\/33"/, hasKey: true },
    { name: 'allowed IP a number', item: entry(P3, { allowedIps: [167772161] }), path: 'peers[1].allowedIps[0]', reason: /got 167772161/, hasKey: true },
    { name: 'allowed IP with a zone', item: entry(P3, { allowedIps: ['fe80::1%eth0/128'] }), path: 'peers[1].allowedIps[0]', reason: /got "fe80::1%eth0\/128"/, hasKey: true },
    {
      name: 'too many allowed IPs',
      item: entry(P3, { allowedIps: new Array(PEER_LIST_LIMITS.maxAllowedIpsPerPeer + 1).fill('10.10.10.3/32') }),
      path: 'peers[1].allowedIps',
      reason: /257 entries, more than the limit of 256/,
      hasKey: true,
    },
    { name: 'negative handshake', item: entry(P3, { latestHandshake: -1 }), path: 'peers[1].latestHandshake', reason: /expected unix seconds \(0 for never\), got -1/, hasKey: true },
    { name: 'fractional handshake', item: entry(P3, { latestHandshake: 1.5 }), path: 'peers[1].latestHandshake', reason: /got 1\.5/, hasKey: true },
    { name: 'handshake as text', item: entry(P3, { latestHandshake: '0' }), path: 'peers[1].latestHandshake', reason: /got "0"/, hasKey: true },
    { name: 'handshake past 2^53', item: entry(P3, { latestHandshake: 2 ** 60 }), path: 'peers[1].latestHandshake', reason: /expected unix seconds/, hasKey: true },
  ];
  for (const { name, item, path, reason, hasKey } of rows) {
    test(name, () => {
      const { list, rejected } = parsePeerList(body({ peers: [entry(P2), item, entry(P4, { allowedIps: ['10.10.10.4/32'] })] }));
      assert.deepEqual(list.peers.map((p) => p.publicKey), [P2, P4], 'the good entries survive, in order');
      assert.equal(rejected.length, 1);
      const [refused] = rejected;
      assert.equal(refused?.path, path);
      assert.match(refused?.reason ?? '', reason);
      assert.equal(refused?.publicKey, hasKey ? P3 : undefined);
    });
  }

  test('duplicates: the first entry wins, the second is rejected with its path', () => {
    const { list, rejected } = parsePeerList(
      body({ peers: [entry(P2), entry(P3), entry(P2, { endpoint: '203.0.113.66:666' })] }),
    );
    assert.deepEqual(list.peers.map((p) => p.publicKey), [P2, P3]);
    assert.equal(formatEndpoint(list.peers[0]!.endpoint!), '198.51.100.2:51820');
    assert.deepEqual(rejected, [{ path: 'peers[2].publicKey', publicKey: P2, reason: 'listed twice; the first entry is used' }]);
  });

  test('a bad entry does not count as the first of a duplicate pair', () => {
    const { list, rejected } = parsePeerList(body({ peers: [entry(P2, { endpoint: 'bad' }), entry(P2)] }));
    assert.deepEqual(list.peers.map((p) => p.publicKey), [P2]);
    assert.deepEqual(rejected.map((r) => r.path), ['peers[0].endpoint']);
  });

  test('every entry bad: an empty list, every one explained', () => {
    const { list, rejected } = parsePeerList(body({ peers: [1, 'two', null, entry('x')] }));
    assert.equal(list.peers.length, 0);
    assert.deepEqual(rejected.map((r) => r.path), ['peers[0]', 'peers[1]', 'peers[2]', 'peers[3].publicKey']);
  });
});

describe('parsePeerList: limits', () => {
  test('exactly the maximum number of peers, each with the maximum number of allowed IPs, is accepted', () => {
    const allowedIps = Array.from({ length: PEER_LIST_LIMITS.maxAllowedIpsPerPeer }, (_, i) => `10.99.${i}.0/24`);
    const peers = Array.from({ length: PEER_LIST_LIMITS.maxPeers }, (_, i) => ({
      publicKey: Buffer.alloc(32, 0).fill(i & 0xff, 0, 1).fill(i >> 8, 1, 2).toString('base64'),
      endpoint: `198.51.${i >> 8}.${i & 0xff}:51820`,
      allowedIps: i === 0 ? allowedIps : [`10.${i >> 8}.${i & 0xff}.1/32`],
      latestHandshake: i,
    }));
    const { list, rejected } = parsePeerList(body({ peers }));
    assert.deepEqual(rejected, []);
    assert.equal(list.peers.length, PEER_LIST_LIMITS.maxPeers);
    assert.equal(list.peers[0]?.allowedIps.length, PEER_LIST_LIMITS.maxAllowedIpsPerPeer);
  });
});

describe('serializePeerList', () => {
  const list: PeerList = {
    version: 1,
    fang: { publicKey: FANG },
    you: { publicKey: YOU, endpoint: endpoint('[2001:db8::99]:40000') },
    peers: [
      { publicKey: P2, endpoint: endpoint('198.51.100.2:51820'), allowedIps: [prefix('10.10.10.2/32')], latestHandshake: 1700000000 },
      { publicKey: P3, endpoint: endpoint('[::ffff:192.0.2.3]:51820'), allowedIps: [prefix('10.10.10.3/32'), prefix('fd00::3/128')], latestHandshake: 1 },
      { publicKey: P4, endpoint: null, allowedIps: [], latestHandshake: 0 },
    ],
  };

  test('the wire form', () => {
    assert.deepEqual(serializePeerList(list), {
      version: 1,
      fang: { publicKey: FANG },
      you: { publicKey: YOU, endpoint: '[2001:db8::99]:40000' },
      peers: [
        { publicKey: P2, endpoint: '198.51.100.2:51820', allowedIps: ['10.10.10.2/32'], latestHandshake: 1700000000 },
        { publicKey: P3, endpoint: '[::ffff:192.0.2.3]:51820', allowedIps: ['10.10.10.3/32', 'fd00::3/128'], latestHandshake: 1 },
        { publicKey: P4, endpoint: null, allowedIps: [], latestHandshake: 0 },
      ],
    });
  });

  test('serialize -> JSON text -> parse gives the list back', () => {
    const { list: back, rejected } = parsePeerList(JSON.parse(JSON.stringify(serializePeerList(list))));
    assert.deepEqual(rejected, []);
    assert.deepEqual(back, list);
  });

  test('parse -> serialize -> parse is stable', () => {
    const first = parsePeerList(body()).list;
    const second = parsePeerList(JSON.parse(JSON.stringify(serializePeerList(first)))).list;
    assert.deepEqual(second, first);
  });

  test('formatPeerListText: one "<key> <endpoint>" line per peer with an endpoint', () => {
    assert.equal(formatPeerListText(list), `${P2} 198.51.100.2:51820\n${P3} [::ffff:192.0.2.3]:51820\n`);
  });

  test('formatPeerListText of a list without endpoints is empty', () => {
    assert.equal(formatPeerListText({ ...list, peers: [list.peers[2]!] }), '');
  });
});

describe('revisions and deltas', () => {
  test('revision, since and removed parse and survive a round trip', () => {
    const { list } = parsePeerList(body({ revision: 12, since: 11, removed: [P4] }));
    assert.equal(list.revision, 12);
    assert.equal(list.since, 11);
    assert.deepEqual(list.removed, [P4]);
    assert.deepEqual(parsePeerList(JSON.parse(JSON.stringify(serializePeerList(list)))).list, list);
  });

  test('a list without them (an older fang) has none of them', () => {
    const { list } = parsePeerList(body());
    assert.equal('revision' in list, false);
    assert.equal('since' in list, false);
    assert.equal('removed' in list, false);
    const wire = serializePeerList(list) as Record<string, unknown>;
    assert.equal('revision' in wire, false);
  });
});

describe('mergePeerList', () => {
  const full = parsePeerList(body({ revision: 10 })).list;

  test('a full list replaces what is held, or starts it', () => {
    const other = parsePeerList(body({ revision: 3, peers: [entry(P2)] })).list;
    assert.equal(mergePeerList(full, other), other);
    assert.equal(mergePeerList(undefined, other), other);
  });

  test('a delta updates, adds and removes entries, and becomes a full list', () => {
    const delta = parsePeerList(
      body({ revision: 11, since: 10, removed: [P4], peers: [entry(P2, { endpoint: '203.0.113.2:2222' }), entry(key(0x09), { allowedIps: ['10.10.10.9/32'] })] }),
    ).list;
    const merged = mergePeerList(full, delta);
    assert.ok(merged);
    assert.equal(merged.revision, 11);
    assert.equal(merged.since, undefined);
    assert.equal(merged.removed, undefined);
    assert.deepEqual(
      merged.peers.map((p) => [p.publicKey, p.endpoint && formatEndpoint(p.endpoint)]).sort(),
      [
        [P2, '203.0.113.2:2222'],
        [P3, '[2001:db8::3]:51820'],
        [key(0x09), '198.51.100.2:51820'],
      ].sort(),
    );
  });

  test('an empty delta keeps everything and moves the revision', () => {
    const merged = mergePeerList(full, parsePeerList(body({ revision: 10, since: 10, peers: [], removed: [] })).list);
    assert.deepEqual(merged?.peers, full.peers);
  });

  test('a delta that does not follow what is held, or with nothing held, is refused', () => {
    const delta = parsePeerList(body({ revision: 12, since: 11, peers: [] })).list;
    assert.equal(mergePeerList(full, delta), undefined);
    assert.equal(mergePeerList(undefined, delta), undefined);
    const fromOldFang = parsePeerList(body({ peers: [] })).list;
    assert.equal(mergePeerList(fromOldFang, parsePeerList(body({ revision: 1, since: 0, peers: [] })).list), undefined);
  });

  test('merging a delta equals the full list at the new revision (peer order aside)', () => {
    const before = parsePeerList(body({ revision: 1, peers: [entry(P2), entry(P3), entry(P4)] })).list;
    const after = parsePeerList(body({ revision: 2, peers: [entry(P2), entry(P4, { endpoint: '198.51.100.44:4' })] })).list;
    const delta = parsePeerList(body({ revision: 2, since: 1, removed: [P3], peers: [entry(P4, { endpoint: '198.51.100.44:4' })] })).list;
    const merged = mergePeerList(before, delta)!;
    const byKey = (l: PeerList) => [...l.peers].sort((a, b) => a.publicKey.localeCompare(b.publicKey));
    assert.deepEqual(byKey(merged), byKey(after));
    assert.equal(merged.revision, after.revision);
  });
});

describe('parsePeerList: what peers report (listenPort, candidates, seenBy)', () => {
  const reported = entry(P3, {
    listenPort: 51820,
    candidates: ['192.168.1.5:51820', '[fd12::5]:51820', '[::ffff:192.168.1.6]:51820'],
    seenBy: [{ publicKey: P2, endpoint: '198.51.100.3:40001' }, { publicKey: P4, endpoint: '[2001:db8::3]:51820' }],
  });

  test('good values parse', () => {
    const { list, rejected } = parsePeerList(body({ you: { publicKey: YOU, endpoint: '203.0.113.1:40000', seenBy: [{ publicKey: P2, endpoint: '203.0.113.1:40009' }] }, peers: [entry(P2), reported] }));
    assert.deepEqual(rejected, []);
    const p3 = list.peers[1]!;
    assert.equal(p3.listenPort, 51820);
    assert.deepEqual(p3.candidates?.map(formatEndpoint), ['192.168.1.5:51820', '[fd12::5]:51820', '[::ffff:192.168.1.6]:51820']);
    assert.deepEqual(p3.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), [
      [P2, '198.51.100.3:40001'],
      [P4, '[2001:db8::3]:51820'],
    ]);
    assert.deepEqual(list.you.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), [[P2, '203.0.113.1:40009']]);
    assert.deepEqual(Object.keys(list.peers[0]!).sort(), ['allowedIps', 'endpoint', 'latestHandshake', 'publicKey'], 'absent fields stay absent');
  });

  const goods: { name: string; fields: Record<string, unknown> }[] = [
    { name: 'everything', fields: { listenPort: 51820, candidates: ['192.168.1.5:51820'], seenBy: [{ publicKey: P2, endpoint: '198.51.100.3:40001' }] } },
    { name: 'the lowest port', fields: { listenPort: 1 } },
    { name: 'the highest port', fields: { listenPort: 65535 } },
    { name: 'empty candidates and seenBy', fields: { candidates: [], seenBy: [] } },
    { name: 'the most candidates', fields: { candidates: Array.from({ length: PEER_LIST_LIMITS.maxCandidates }, (_, i) => `192.168.1.${i + 1}:51820`) } },
  ];
  for (const { name, fields } of goods) {
    test(`survives serialize -> JSON -> parse: ${name}`, () => {
      const { list, rejected } = parsePeerList(body({ revision: 3, you: { publicKey: YOU, endpoint: null, seenBy: [{ publicKey: P3, endpoint: '[2001:db8::1]:1' }] }, peers: [entry(P2, fields)] }));
      assert.deepEqual(rejected, []);
      for (const field of Object.keys(fields)) assert.ok(field in list.peers[0]!, field);
      const again = parsePeerList(JSON.parse(JSON.stringify(serializePeerList(list))));
      assert.deepEqual(again.rejected, []);
      assert.deepEqual(again.list, list);
    });
  }

  const bads: { name: string; fields: Record<string, unknown>; path: string; reason: RegExp }[] = [
    { name: 'listenPort 0', fields: { listenPort: 0 }, path: 'peers[1].listenPort', reason: /^expected a port from 1 to 65535, got 0$/ },
    { name: 'listenPort 65536', fields: { listenPort: 65536 }, path: 'peers[1].listenPort', reason: /got 65536/ },
    { name: 'listenPort negative', fields: { listenPort: -1 }, path: 'peers[1].listenPort', reason: /got -1/ },
    { name: 'listenPort fractional', fields: { listenPort: 51820.5 }, path: 'peers[1].listenPort', reason: /got 51820\.5/ },
    { name: 'listenPort as text', fields: { listenPort: '51820' }, path: 'peers[1].listenPort', reason: /got "51820"/ },
    { name: 'listenPort null', fields: { listenPort: null }, path: 'peers[1].listenPort', reason: /got null/ },
    { name: 'candidates not an array', fields: { candidates: '192.168.1.5:51820' }, path: 'peers[1].candidates', reason: /^expected an array of at most 16 endpoints, got "192\.168\.1\.5:51820"$/ },
    { name: 'too many candidates', fields: { candidates: new Array(PEER_LIST_LIMITS.maxCandidates + 1).fill('192.168.1.5:51820') }, path: 'peers[1].candidates', reason: /at most 16 endpoints/ },
    { name: 'a candidate malformed', fields: { candidates: ['192.168.1.5:51820', '192.168.1.300:51820'] }, path: 'peers[1].candidates[1]', reason: /^expected ip:port or \[ipv6\]:port, got "192\.168\.1\.300:51820"$/ },
    { name: 'a candidate null', fields: { candidates: [null] }, path: 'peers[1].candidates[0]', reason: /^expected an endpoint, got null$/ },
    { name: 'a candidate a number', fields: { candidates: [51820] }, path: 'peers[1].candidates[0]', reason: /expected ip:port or null, got 51820/ },
    { name: 'a loopback candidate', fields: { candidates: ['127.0.0.1:51820'] }, path: 'peers[1].candidates[0]', reason: /"127\.0\.0\.1:51820" is a loopback address/ },
    { name: 'a candidate with a zone', fields: { candidates: ['[fe80::1%eth0]:51820'] }, path: 'peers[1].candidates[0]', reason: /scoped to interface "eth0"/ },
    { name: 'a candidate without a port', fields: { candidates: ['192.168.1.5'] }, path: 'peers[1].candidates[0]', reason: /got "192\.168\.1\.5"/ },
    { name: 'seenBy not an array', fields: { seenBy: { publicKey: P2 } }, path: 'peers[1].seenBy', reason: /^expected an array, got/ },
    { name: 'seenBy with a bad key', fields: { seenBy: [{ publicKey: 'nope', endpoint: '198.51.100.3:1' }] }, path: 'peers[1].seenBy[0].publicKey', reason: /expected a WireGuard public key/ },
    { name: 'seenBy with a string item', fields: { seenBy: [P2] }, path: 'peers[1].seenBy[0].publicKey', reason: /expected a WireGuard public key/ },
    { name: 'seenBy without an endpoint', fields: { seenBy: [{ publicKey: P2 }] }, path: 'peers[1].seenBy[0].endpoint', reason: /expected ip:port or null, got undefined/ },
    { name: 'seenBy with a null endpoint', fields: { seenBy: [{ publicKey: P2, endpoint: null }] }, path: 'peers[1].seenBy[0].endpoint', reason: /^expected an endpoint, got null$/ },
    { name: 'seenBy, second item bad', fields: { seenBy: [{ publicKey: P2, endpoint: '198.51.100.3:1' }, { publicKey: P4, endpoint: '[::1]:1' }] }, path: 'peers[1].seenBy[1].endpoint', reason: /is a loopback address/ },
  ];
  for (const { name, fields, path, reason } of bads) {
    test(`rejects the entry: ${name}`, () => {
      const { list, rejected } = parsePeerList(body({ peers: [entry(P2), entry(P3, fields), entry(P4, { allowedIps: ['10.10.10.4/32'] })] }));
      assert.deepEqual(list.peers.map((p) => p.publicKey), [P2, P4], 'the good entries survive');
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0]?.path, path);
      assert.equal(rejected[0]?.publicKey, P3);
      assert.match(rejected[0]?.reason ?? '', reason);
    });
  }

  const badYou: { name: string; seenBy: unknown; path: string; want: RegExp }[] = [
    { name: 'not an array', seenBy: 'x', path: 'you.seenBy', want: /expected an array, got "x"/ },
    { name: 'a bad key', seenBy: [{ publicKey: 1, endpoint: '198.51.100.3:1' }], path: 'you.seenBy[0].publicKey', want: /expected a WireGuard public key/ },
    { name: 'a bad endpoint', seenBy: [{ publicKey: P2, endpoint: '198.51.100.3:1' }, { publicKey: P3, endpoint: '198.51.100.3:0' }], path: 'you.seenBy[1].endpoint', want: /got "198\.51\.100\.3:0"/ },
  ];
  for (const { name, seenBy, path, want } of badYou) {
    test(`you.seenBy ${name}: the whole reply is refused, naming ${path}`, () => {
      assert.throws(
        () => parsePeerList(body({ you: { publicKey: YOU, endpoint: null, seenBy } })),
        (error: unknown) => {
          assert.ok(isSnakebiteError(error, 'SB_REPLY_MALFORMED'), String(error));
          assert.ok(error.message.startsWith(`peer list: ${path}: `), error.message);
          assert.match(error.message, want);
          return true;
        },
      );
    });
  }
});

describe('parsePeerReport / serializePeerReport', () => {
  test('a full report parses', () => {
    const report = parsePeerReport({ listenPort: 51820, candidates: ['192.168.1.5:51820', '[fd12::5]:51820'], seen: [{ publicKey: P2, endpoint: '198.51.100.2:40000' }] });
    assert.equal(report.listenPort, 51820);
    assert.deepEqual(report.candidates.map(formatEndpoint), ['192.168.1.5:51820', '[fd12::5]:51820']);
    assert.deepEqual(report.seen.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), [[P2, '198.51.100.2:40000']]);
  });

  test('candidates and seen may be left out: none', () => {
    assert.deepEqual(parsePeerReport({ listenPort: 1 }), { listenPort: 1, candidates: [], seen: [] });
  });

  test('unknown fields are ignored', () => {
    assert.deepEqual(Object.keys(parsePeerReport({ listenPort: 51820, nickname: 'laptop' })).sort(), ['candidates', 'listenPort', 'seen']);
  });

  const reports: PeerReport[] = [
    { listenPort: 51820, candidates: [], seen: [] },
    { listenPort: 65535, candidates: [endpoint('192.168.1.5:51820'), endpoint('[fd12::5]:4')], seen: [{ publicKey: P2, endpoint: endpoint('[::ffff:198.51.100.2]:40000') }, { publicKey: P3, endpoint: endpoint('[2001:db8::3]:1') }] },
  ];
  for (const [i, report] of reports.entries()) {
    test(`serialize -> JSON -> parse gives the report back (${i})`, () => {
      const wire = JSON.parse(JSON.stringify(serializePeerReport(report))) as unknown;
      assert.deepEqual(parsePeerReport(wire), report);
    });
  }

  test('the wire form', () => {
    assert.deepEqual(serializePeerReport(reports[1]!), {
      listenPort: 65535,
      candidates: ['192.168.1.5:51820', '[fd12::5]:4'],
      seen: [
        { publicKey: P2, endpoint: '[::ffff:198.51.100.2]:40000' },
        { publicKey: P3, endpoint: '[2001:db8::3]:1' },
      ],
    });
  });

  const bads: { name: string; input: unknown; path: string; want: RegExp }[] = [
    { name: 'null', input: null, path: '(root)', want: /expected an object, got null/ },
    { name: 'an array', input: [], path: '(root)', want: /expected an object/ },
    { name: 'no listenPort', input: { candidates: [] }, path: 'listenPort', want: /expected a port from 1 to 65535, got undefined/ },
    { name: 'listenPort 0', input: { listenPort: 0 }, path: 'listenPort', want: /got 0/ },
    { name: 'listenPort as text', input: { listenPort: '51820' }, path: 'listenPort', want: /got "51820"/ },
    { name: 'candidates not an array', input: { listenPort: 1, candidates: {} }, path: 'candidates', want: /expected an array of at most 16 endpoints/ },
    { name: 'too many candidates', input: { listenPort: 1, candidates: new Array(17).fill('192.168.1.5:1') }, path: 'candidates', want: /at most 16/ },
    { name: 'a bad candidate', input: { listenPort: 1, candidates: ['192.168.1.5:1', 'evil.example:1'] }, path: 'candidates[1]', want: /got "evil\.example:1"/ },
    { name: 'a null candidate', input: { listenPort: 1, candidates: [null] }, path: 'candidates[0]', want: /expected an endpoint, got null/ },
    { name: 'a multicast candidate', input: { listenPort: 1, candidates: ['224.0.0.1:1'] }, path: 'candidates[0]', want: /is a multicast address/ },
    { name: 'seen not an array', input: { listenPort: 1, seen: 'x' }, path: 'seen', want: /expected an array/ },
    { name: 'seen with a bad key', input: { listenPort: 1, seen: [{ publicKey: 'k', endpoint: '198.51.100.2:1' }] }, path: 'seen[0].publicKey', want: /expected a WireGuard public key/ },
    { name: 'seen without an endpoint', input: { listenPort: 1, seen: [{ publicKey: P2 }] }, path: 'seen[0].endpoint', want: /got undefined/ },
    { name: 'seen at an unspecified address', input: { listenPort: 1, seen: [{ publicKey: P2, endpoint: '198.51.100.2:1' }, { publicKey: P3, endpoint: '[::]:1' }] }, path: 'seen[1].endpoint', want: /unspecified address/ },
  ];
  for (const { name, input, path, want } of bads) {
    test(`refused: ${name}, SB_REPLY_MALFORMED naming ${path}`, () => {
      assert.throws(
        () => parsePeerReport(input),
        (error: unknown) => {
          assert.ok(isSnakebiteError(error, 'SB_REPLY_MALFORMED'), String(error));
          assert.ok(error.message.includes(`: ${path}: `), error.message);
          assert.match(error.message, want);
          return true;
        },
      );
    });
  }
});

describe('punch requests', () => {
  test('an entry\'s punchRequests parse and survive a round trip', () => {
    const parsed = parsePeerList(body({ peers: [entry(P2, { punchRequests: [{ publicKey: YOU, at: 1700000001 }] })] }));
    assert.deepEqual(parsed.rejected, []);
    assert.deepEqual(parsed.list.peers[0]!.punchRequests, [{ publicKey: YOU, at: 1700000001 }]);
    const again = parsePeerList(JSON.parse(JSON.stringify(serializePeerList(parsed.list))));
    assert.deepEqual(again.list.peers[0]!.punchRequests, [{ publicKey: YOU, at: 1700000001 }]);
  });
  test('a malformed request rejects the entry with its path', () => {
    const parsed = parsePeerList(body({ peers: [entry(P2, { punchRequests: [{ publicKey: 'nope', at: 1 }] }), entry(P3, { punchRequests: [{ publicKey: YOU, at: -1 }] })] }));
    assert.deepEqual(parsed.list.peers, []);
    assert.deepEqual(parsed.rejected.map((r) => r.path), ['peers[0].punchRequests[0].publicKey', 'peers[1].punchRequests[0].at']);
  });
  test('a report carries its requests, and none when empty', () => {
    const report = parsePeerReport({ listenPort: 51820, candidates: [], seen: [], punchRequests: [{ publicKey: P2, at: 5 }] });
    assert.deepEqual(report.punchRequests, [{ publicKey: P2, at: 5 }]);
    assert.deepEqual(serializePeerReport(report), { listenPort: 51820, candidates: [], seen: [], punchRequests: [{ publicKey: P2, at: 5 }] });
    assert.deepEqual(serializePeerReport({ ...report, punchRequests: [] }), { listenPort: 51820, candidates: [], seen: [] });
    assert.throws(() => parsePeerReport({ listenPort: 51820, punchRequests: 'x' }), /report: punchRequests: expected an array/);
  });
});
