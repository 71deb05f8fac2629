import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSnakebiteError } from '../../src/errors';
import { endpointEquals, formatEndpoint, formatIp, formatPrefix, prefixContainsIp, prefixCovers } from '../../src/ip/address';
import type { PeerList, PeerListEntry } from '../../src/peer-list/peer-list';
import { chooseEndpoint } from '../../src/plan/candidates';
import { findFangPeer } from '../../src/plan/fang-peer';
import { planPeerChanges, type Activity, type Plan, type PlanObservations, type Policy } from '../../src/plan/plan';
import type { RefusedPrefix } from '../../src/plan/decision';
import type { DeviceState } from '../../src/wireguard/device-state';
import type { WireGuardKey } from '../../src/wireguard/key';
import { applyToDevice, device, endpoint, ip, key, peer, pick, prefix, randomKey, seededRandom, stringify, type PeerSpec } from '../support/fakes';

const SELF = key(0x01);
const FANG = key(0xf0);
const OLD = key(0x03); // an existing peer at 10.10.10.3
const NEW = key(0x05);
const NEW2 = key(0x06);

const NOW_SECONDS = 1_700_000_000;
const NOW = new Date(NOW_SECONDS * 1000);

const POLICY: Policy = { fangPublicKey: FANG, serverAddress: ip('10.10.10.1'), keepaliveSeconds: 25, flowingWithinSeconds: 180 };

const FANG_PEER: PeerSpec = { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24', 'fd00::/64'], latestHandshake: NOW_SECONDS - 30, persistentKeepalive: 25 };

function baseDevice(extra: PeerSpec[] = [], old: Partial<PeerSpec> = {}): DeviceState {
  return device(SELF, [FANG_PEER, { publicKey: OLD, endpoint: '198.51.100.3:51820', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW_SECONDS - 1000, persistentKeepalive: 25, ...old }, ...extra]);
}

function listEntry(publicKey: WireGuardKey, endpointText: string | null, allowedIps: string[], latestHandshake = NOW_SECONDS - 5): PeerListEntry {
  return { publicKey, endpoint: endpointText === null ? null : endpoint(endpointText), allowedIps: allowedIps.map(prefix), latestHandshake };
}

function list(peers: PeerListEntry[]): PeerList {
  return { version: 1, fang: { publicKey: FANG }, you: { publicKey: SELF, endpoint: endpoint('203.0.113.1:40000') }, peers };
}

/** The plan in words, so a failing row shows what differs. */
function describePlan(plan: Plan) {
  return {
    changes: plan.changes.map((c) => ({
      kind: c.kind,
      publicKey: c.publicKey,
      endpoint: c.endpoint && formatEndpoint(c.endpoint),
      ...(c.allowedIps ? { allowedIps: c.allowedIps.map(formatPrefix) } : {}),
      ...(c.persistentKeepalive !== undefined ? { persistentKeepalive: c.persistentKeepalive } : {}),
      previousEndpoint: c.previousEndpoint && formatEndpoint(c.previousEndpoint),
      probeAddress: c.probeAddress && formatIp(c.probeAddress),
      refused: c.refusedAllowedIps.map((r) => r.prefix),
    })),
    skipped: plan.skipped.map((s) => ({ publicKey: s.publicKey, severity: s.severity })),
  };
}

/**
 * The plan's decisions as codes, in order: a refusal's or keep's reason code,
 * `contest:<heard>s`, `add` or `add-relay-first`, `repoint-<cause>`,
 * `relay:<tried>s`, `relayed:<for>s`, `direct-again`, `remove`, then the codes of
 * refused prefixes (`overlaps:<owner key>`), and `via-lan` for a LAN endpoint.
 */
function whyCodes(plan: Plan): string[] {
  const codes: string[] = [];
  for (const d of plan.decisions) {
    const refused: RefusedPrefix[] = [];
    switch (d.kind) {
      case 'refuse':
        codes.push(d.why.code);
        if (d.why.code === 'no-acceptable-allowed-ip' || d.why.code === 'relayed-allowed-ips-taken') refused.push(...d.why.refused);
        break;
      case 'keep':
        if (d.why.code === 'relayed') codes.push(`relayed:${d.why.forSeconds}s`);
        else if (d.why.code !== 'in-place') codes.push(d.why.code);
        break;
      case 'contest':
        codes.push(`contest:${d.heardSecondsAgo}s`, ...(d.moved ? ['contest-moved'] : []));
        break;
      case 'add':
        codes.push(d.relayFirst ? 'add-relay-first' : 'add');
        refused.push(...d.refused);
        if (d.via === 'lan') codes.push('via-lan');
        break;
      case 'repoint':
        codes.push(`repoint-${d.cause}`, ...(d.via === 'lan' ? ['via-lan'] : []));
        break;
      case 'rebuild':
        codes.push('rebuild', ...(d.via === 'lan' ? ['via-lan'] : []));
        break;
      case 'relay':
        codes.push(`relay:${d.triedSeconds}s`);
        break;
      case 'direct-again':
        codes.push('direct-again');
        refused.push(...d.refused);
        break;
      case 'remove':
        codes.push('remove');
        break;
    }
    for (const r of refused) codes.push(r.why.code === 'overlaps' ? `overlaps:${r.why.owner}` : r.why.code);
  }
  return codes;
}

interface Row {
  name: string;
  current: DeviceState;
  list: PeerList;
  activity?: Activity;
  want: ReturnType<typeof describePlan>;
  /** Decision and refusal codes the plan must contain (see whyCodes). */
  whys?: string[];
}

const rows: Row[] = [
  {
    name: 'a new peer is added with its allowed IPs, keepalive and a probe address',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32', 'fd00::5/128'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32', 'fd00::5/128'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'a new peer at an IPv6 endpoint',
    current: baseDevice(),
    list: list([listEntry(NEW, '[2001:db8::5]:51820', ['fd00::5/128'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '[2001:db8::5]:51820', allowedIps: ['fd00::5/128'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: 'fd00::5', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'a new peer keeps only the allowed IPs strictly inside the fang range; 0.0.0.0/0 and ::/0 are refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['0.0.0.0/0', '10.10.10.5/32', '::/0'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: ['0.0.0.0/0', '::/0'] }],
      skipped: [],
    },
    whys: ['add', 'outside-fang-range'],
  },
  {
    name: 'only 0.0.0.0/0: the peer is refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['0.0.0.0/0'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', 'outside-fang-range'],
  },
  {
    name: 'outside the fang range: refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.11.5/32', '192.168.1.0/24'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', 'outside-fang-range'],
  },
  {
    name: "a prefix equal to the fang's range is refused (WireGuard would move it off the fang peer)",
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.0/24'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', 'equals-fang-range'],
  },
  {
    name: 'a prefix containing the server address is refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.0/30'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', 'contains-server'],
  },
  {
    name: 'the server address itself is refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.1/32', '10.10.10.5/32'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: ['10.10.10.1/32'] }],
      skipped: [],
    },
    whys: ['add', 'contains-server'],
  },
  {
    name: "a prefix equal to an existing peer's is refused",
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', `overlaps:${OLD}`],
  },
  {
    name: "a prefix covering an existing peer's is refused",
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.2/31'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', `overlaps:${OLD}`],
  },
  {
    name: "a prefix inside an existing peer's range is refused",
    current: baseDevice([{ publicKey: key(0x40), endpoint: null, allowedIps: ['10.10.10.64/26'] }]),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.70/32'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', `overlaps:${key(0x40)}`],
  },
  {
    name: 'two new peers claiming the same prefix: the first gets it',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32']), listEntry(NEW2, '198.51.100.6:4000', ['10.10.10.5/32'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
      skipped: [{ publicKey: NEW2, severity: 'refused' }],
    },
    whys: ['add', 'no-acceptable-allowed-ip', `overlaps:${NEW}`],
  },
  {
    name: 'a new peer listing no allowed IPs is refused',
    current: baseDevice(),
    list: list([listEntry(NEW, '198.51.100.5:4000', [])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip'],
  },
  {
    name: "the interface's own key is refused",
    current: baseDevice(),
    list: list([listEntry(SELF, '198.51.100.1:4000', ['10.10.10.2/32'])]),
    want: { changes: [], skipped: [{ publicKey: SELF, severity: 'refused' }] },
    whys: ['own-key'],
  },
  {
    name: "the fang's key is refused, even with a new endpoint",
    current: baseDevice(),
    list: list([listEntry(FANG, '203.0.113.66:666', ['10.10.10.0/24'], 0)]),
    want: { changes: [], skipped: [{ publicKey: FANG, severity: 'refused' }] },
    whys: ['fang-key'],
  },
  {
    name: 'a new peer without an endpoint is kept for later',
    current: baseDevice(),
    list: list([listEntry(NEW, null, ['10.10.10.5/32'], 0)]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'kept' }] },
    whys: ['no-endpoint-at-fang'],
  },
  {
    name: 'an existing peer without an endpoint in the list keeps its endpoint',
    current: baseDevice(),
    list: list([listEntry(OLD, null, ['10.10.10.3/32'], 0)]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
  },
  {
    name: 'an existing peer that is not flowing gets the new endpoint (keepalive already set, so untouched)',
    current: baseDevice(),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: {
      changes: [{ kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: "an existing peer routing a range outside the fang's (a site) is left to the user",
    current: baseDevice([], { allowedIps: ['10.10.10.3/32', '192.168.50.0/24'] }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
    whys: ['routes-outside'],
  },
  {
    name: 'an existing peer with keepalive off gets keepalive along with the endpoint',
    current: baseDevice([], { persistentKeepalive: null }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: {
      changes: [{ kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', persistentKeepalive: 25, previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'an existing peer with no endpoint and no handshake is re-created with its own allowed IPs and keepalive and the endpoint (WireGuard tries a new peer at once)',
    current: baseDevice([], { endpoint: null, latestHandshake: 0 }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: {
      changes: [{ kind: 'rebuild-peer', publicKey: OLD, endpoint: '203.0.113.3:6000', allowedIps: ['10.10.10.3/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'an existing peer with a recent handshake keeps its endpoint',
    current: baseDevice([], { latestHandshake: NOW_SECONDS - 10 }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
    whys: ['contest:10s'],
  },
  {
    name: 'flowing at exactly the limit still counts as flowing',
    current: baseDevice([], { latestHandshake: NOW_SECONDS - 180 }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
  },
  {
    name: 'one second past the limit is not flowing',
    current: baseDevice([], { latestHandshake: NOW_SECONDS - 181 }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: {
      changes: [{ kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'a handshake in the future (clock skew) counts as flowing',
    current: baseDevice([], { latestHandshake: NOW_SECONDS + 50 }),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
  },
  {
    name: 'an old handshake but recent received bytes (activity) keeps the endpoint',
    current: baseDevice(),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    activity: new Map([[OLD, NOW_SECONDS - 20]]),
    want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
    whys: ['contest:20s'],
  },
  {
    name: 'old activity does not keep the endpoint',
    current: baseDevice(),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]),
    activity: new Map([[OLD, NOW_SECONDS - 500]]),
    want: {
      changes: [{ kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'an equal endpoint is no change and not worth a skip line',
    current: baseDevice(),
    list: list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [] },
  },
  {
    name: 'an IPv4-mapped spelling of the same endpoint is no change',
    current: baseDevice(),
    list: list([listEntry(OLD, '[::ffff:198.51.100.3]:51820', ['10.10.10.3/32'])]),
    want: { changes: [], skipped: [] },
  },
  {
    name: 'allowed IPs of an existing peer are never rewritten',
    current: baseDevice(),
    list: list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.0/25', '0.0.0.0/0'])]),
    want: {
      changes: [{ kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] }],
      skipped: [],
    },
  },
  {
    name: 'without the fang peer on the interface, nothing can be added',
    current: device(SELF, [{ publicKey: OLD, endpoint: null, allowedIps: ['10.10.10.3/32'] }]),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32'])]),
    want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
    whys: ['no-acceptable-allowed-ip', 'outside-fang-range'],
  },
  {
    name: 'a full-tunnel fang (0.0.0.0/0) accepts host routes inside it',
    current: device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['0.0.0.0/0'] }]),
    list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32', '0.0.0.0/0'])]),
    want: {
      changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: ['0.0.0.0/0'] }],
      skipped: [],
    },
  },
  {
    name: 'an empty list plans nothing',
    current: baseDevice(),
    list: list([]),
    want: { changes: [], skipped: [] },
  },
  {
    name: 'a mixed list: each entry on its own merits, in list order',
    current: baseDevice([], { persistentKeepalive: null }),
    list: list([
      listEntry(FANG, '203.0.113.66:666', ['10.10.10.0/24']),
      listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32']),
      listEntry(SELF, '198.51.100.1:1', ['10.10.10.2/32']),
      listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32']),
      listEntry(NEW2, null, ['10.10.10.6/32']),
    ]),
    want: {
      changes: [
        { kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] },
        { kind: 'set-endpoint', publicKey: OLD, endpoint: '203.0.113.3:6000', persistentKeepalive: 25, previousEndpoint: '198.51.100.3:51820', probeAddress: '10.10.10.3', refused: [] },
      ],
      skipped: [
        { publicKey: FANG, severity: 'refused' },
        { publicKey: SELF, severity: 'refused' },
        { publicKey: NEW2, severity: 'kept' },
      ],
    },
  },
];

describe('planPeerChanges', () => {
  for (const row of rows) {
    test(row.name, () => {
      const before = stringify(row.current);
      const plan = planPeerChanges(row.current, row.list, POLICY, NOW, { activity: row.activity });
      assert.deepEqual(describePlan(plan), row.want);
      assert.equal(stringify(row.current), before, 'planning does not mutate the device');
      assert.ok(!plan.changes.some((c) => c.publicKey === FANG), 'the fang peer never appears in changes');
      const codes = whyCodes(plan);
      for (const code of row.whys ?? []) assert.ok(codes.includes(code), `no ${code} in ${stringify(codes)}`);
      for (const change of plan.changes) assert.ok(change.reason.length > 0, 'every change says why');
      for (const skip of plan.skipped) assert.ok(skip.reason.length > 0, 'every skip says why');

      const after = applyToDevice(row.current, plan.changes);
      assert.deepEqual(planPeerChanges(after, row.list, POLICY, NOW, { activity: row.activity }).changes, [], 'planning again after applying gives nothing');
    });
  }

  test('change reasons: never, or how long ago', () => {
    const never = planPeerChanges(baseDevice([], { latestHandshake: 0 }), list([listEntry(OLD, '203.0.113.3:6000', [])]), POLICY, NOW);
    assert.deepEqual(whyCodes(never), ['rebuild']);
    const old = planPeerChanges(baseDevice([], { latestHandshake: NOW_SECONDS - 1000 }), list([listEntry(OLD, '203.0.113.3:6000', [])]), POLICY, NOW);
    assert.deepEqual(whyCodes(old), ['repoint-stale']);
  });

  test('an existing peer without allowed IPs gets no probe address', () => {
    const plan = planPeerChanges(baseDevice([], { allowedIps: [] }), list([listEntry(OLD, '203.0.113.3:6000', [])]), POLICY, NOW);
    assert.equal(plan.changes[0]?.probeAddress, null);
  });

  test('a flowing peer listed at another endpoint is contested: kept, but to be probed', () => {
    const current = baseDevice([], { latestHandshake: NOW_SECONDS - 10 });
    const plan = planPeerChanges(current, list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]), POLICY, NOW);
    assert.deepEqual(plan.changes, []);
    assert.deepEqual(plan.contested.map((c) => [c.publicKey, formatIp(c.probeAddress)]), [[OLD, '10.10.10.3']]);
  });

  test('a flowing peer listed at its own endpoint is not contested', () => {
    const current = baseDevice([], { latestHandshake: NOW_SECONDS - 10 });
    const plan = planPeerChanges(current, list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]), POLICY, NOW);
    assert.deepEqual(plan.contested, []);
  });

  test('a contested peer that stayed silent to the probe is re-pointed, saying it moved', () => {
    const current = baseDevice([], { latestHandshake: NOW_SECONDS - 10 });
    const plan = planPeerChanges(current, list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]), POLICY, NOW, { silent: new Set([OLD]) });
    assert.deepEqual(describePlan(plan).changes.map((c) => [c.kind, c.publicKey, c.endpoint]), [['set-endpoint', OLD, '203.0.113.3:6000']]);
    assert.deepEqual(whyCodes(plan), ['repoint-silent']);
    assert.deepEqual(plan.contested, []);
    const after = applyToDevice(current, plan.changes);
    assert.deepEqual(planPeerChanges(after, list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]), POLICY, NOW, { silent: new Set([OLD]) }).changes, []);
  });

  test('a flowing peer the fang saw leave our endpoint is probed first, and re-pointed only if silent', () => {
    const current = baseDevice([], { latestHandshake: NOW_SECONDS - 10 });
    const listedBefore = new Map([[OLD, endpoint('198.51.100.3:51820')]]);
    const peers = list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]);
    const flowing = planPeerChanges(current, peers, POLICY, NOW, { listedBefore });
    assert.deepEqual(flowing.changes, [], 'traffic is flowing: no change before a probe');
    assert.deepEqual(flowing.contested.map((c) => c.publicKey), [OLD]);
    assert.deepEqual(whyCodes(flowing), ['contest:10s', 'contest-moved']);
    const silent = planPeerChanges(current, peers, POLICY, NOW, { listedBefore, silent: new Set([OLD]) });
    assert.deepEqual(silent.changes.map((c) => [c.kind, c.publicKey, c.endpoint && formatEndpoint(c.endpoint)]), [['set-endpoint', OLD, '203.0.113.3:6000']]);
    assert.deepEqual(whyCodes(silent), ['repoint-moved']);
  });

  test('a flowing peer the fang listed elsewhere before (NAT shows it another port) is only contested', () => {
    const current = baseDevice([], { latestHandshake: NOW_SECONDS - 10 });
    for (const before of [endpoint('203.0.113.3:5999'), null]) {
      const listedBefore = new Map([[OLD, before]]);
      const plan = planPeerChanges(current, list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]), POLICY, NOW, { listedBefore });
      assert.deepEqual(plan.changes, []);
      assert.deepEqual(plan.contested.map((c) => c.publicKey), [OLD]);
    }
  });

  test('silent never touches the fang peer or an unlisted peer', () => {
    const plan = planPeerChanges(baseDevice(), list([listEntry(FANG, '203.0.113.66:666', [])]), POLICY, NOW, { silent: new Set([FANG, OLD]) });
    assert.deepEqual(plan.changes, []);
  });

  test('the keepalive comes from the policy', () => {
    const plan = planPeerChanges(baseDevice(), list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32'])]), { ...POLICY, keepaliveSeconds: 7 }, NOW);
    assert.equal(plan.changes[0]?.persistentKeepalive, 7);
  });
});

describe('planPeerChanges converges (random devices and lists)', () => {
  const ITERATIONS = 200;

  function randomCase(random: () => number) {
    const fangRanges = pick(random, [['10.10.10.0/24'], ['10.10.0.0/16'], ['10.10.10.0/24', 'fd00::/64'], ['0.0.0.0/0'], []]);
    const server = pick(random, ['10.10.10.1', '10.10.0.1', 'fd00::1']);
    const host = () =>
      random() < 0.8
        ? `10.10.${pick(random, [10, 10, 10, 11, 0])}.${Math.floor(random() * 256)}/32`
        : pick(random, ['fd00::5/128', 'fd00::6/128', '10.10.10.0/24', '10.10.10.0/28', '10.10.10.64/26', '0.0.0.0/0', '192.168.1.0/24', '10.10.10.1/32', 'fd00::1/128']);
    const endpointText = () =>
      random() < 0.2 ? null : random() < 0.8 ? `198.51.100.${Math.floor(random() * 4)}:${4000 + Math.floor(random() * 3)}` : pick(random, ['[2001:db8::1]:51820', '[::ffff:198.51.100.1]:4000']);
    const handshake = () => pick(random, [0, NOW_SECONDS - 10, NOW_SECONDS - 179, NOW_SECONDS - 181, NOW_SECONDS - 5000, NOW_SECONDS + 5]);

    const keys = Array.from({ length: 8 }, () => randomKey(random));
    const self = randomKey(random);
    const fang = randomKey(random);
    const localPeers: PeerSpec[] = [];
    if (random() < 0.9) localPeers.push({ publicKey: fang, endpoint: '192.0.2.1:51820', allowedIps: fangRanges, latestHandshake: handshake() });
    for (const k of keys) {
      if (random() < 0.4) {
        const count = Math.floor(random() * 3);
        localPeers.push({
          publicKey: k,
          endpoint: endpointText(),
          allowedIps: Array.from({ length: count }, host),
          latestHandshake: handshake(),
          persistentKeepalive: random() < 0.5 ? null : 25,
          rxBytes: Math.floor(random() * 1000),
        });
      }
    }
    // Shuffle so the fang peer is not always first.
    for (let j = localPeers.length - 1; j > 0; j--) {
      const k = Math.floor(random() * (j + 1));
      [localPeers[j], localPeers[k]] = [localPeers[k]!, localPeers[j]!];
    }
    const current = device(random() < 0.95 ? self : null, localPeers);
    // Two local peers may not hold the exact same prefix (WireGuard keeps each once).
    const seen = new Set<string>();
    const dedup: DeviceState = {
      ...current,
      peers: current.peers.map((p) => ({
        ...p,
        allowedIps: p.allowedIps.filter((a) => {
          const text = formatPrefix(a);
          if (seen.has(text)) return false;
          seen.add(text);
          return true;
        }),
      })),
    };

    const candidates = [...keys, self, fang];
    const listed = new Set<string>();
    const entries: PeerListEntry[] = [];
    const count = Math.floor(random() * 8);
    for (let i = 0; i < count; i++) {
      const k = pick(random, candidates);
      if (listed.has(k)) continue; // parsePeerList never yields duplicates
      listed.add(k);
      const e = endpointText();
      entries.push({ publicKey: k, endpoint: e === null ? null : endpoint(e), allowedIps: Array.from({ length: Math.floor(random() * 4) }, () => prefix(host())), latestHandshake: handshake() });
    }
    const activity: Activity | undefined = random() < 0.5 ? undefined : new Map(keys.map((k) => [k, handshake()]));
    const silent = random() < 0.7 ? undefined : new Set([...keys, fang].filter(() => random() < 0.5));
    const policy: Policy = { fangPublicKey: fang, serverAddress: ip(server), keepaliveSeconds: 25, flowingWithinSeconds: 180 };
    return { current: dedup, list: { version: 1 as const, fang: { publicKey: fang }, you: { publicKey: self, endpoint: null }, peers: entries }, policy, activity, silent };
  }

  test(`${ITERATIONS} random cases: apply, plan again, nothing left; the fang peer untouched; no route stolen`, () => {
    const random = seededRandom(20240601);
    let totalChanges = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const { current, list: peerList, policy, activity, silent } = randomCase(random);
      const context = () => `case ${i}: ${stringify({ current, peerList, policy, silent: silent && [...silent] })}`;
      const plan = planPeerChanges(current, peerList, policy, NOW, { activity, silent });
      totalChanges += plan.changes.length;
      const fangBefore = current.peers.find((p) => p.publicKey === policy.fangPublicKey);
      const fangRange = fangBefore?.allowedIps ?? [];

      for (const change of plan.changes) {
        assert.notEqual(change.publicKey, policy.fangPublicKey, context());
        assert.notEqual(change.publicKey, current.publicKey, context());
        assert.equal(change.remove, undefined, context());
        for (const a of change.allowedIps ?? []) {
          assert.ok(!prefixContainsIp(a, policy.serverAddress), `route to the server given away; ${context()}`);
          assert.ok(fangRange.some((outer) => prefixCovers(outer, a) && outer.length < a.length), `route outside the fang range; ${context()}`);
        }
      }
      assert.equal(new Set(plan.changes.map((c) => c.publicKey)).size, plan.changes.length, `one change per peer; ${context()}`);

      const after = applyToDevice(current, plan.changes);
      assert.equal(stringify(after.peers.find((p) => p.publicKey === policy.fangPublicKey)), stringify(fangBefore), `fang peer changed; ${context()}`);
      for (const before of current.peers) {
        const now = after.peers.find((p) => p.publicKey === before.publicKey);
        assert.ok(now, `peer removed; ${context()}`);
        assert.equal(stringify(now.allowedIps), stringify(before.allowedIps), `allowed IPs of an existing peer changed; ${context()}`);
      }
      for (const c of plan.contested) assert.ok(!plan.changes.some((change) => change.publicKey === c.publicKey), `contested and changed; ${context()}`);
      assert.ok(!plan.contested.some((c) => c.publicKey === policy.fangPublicKey), `fang contested; ${context()}`);
      const again = planPeerChanges(after, peerList, policy, NOW, { activity, silent });
      assert.deepEqual(describePlan(again).changes, [], `not converged; ${context()}`);
    }
    assert.ok(totalChanges > ITERATIONS / 2, `the generator should produce changes (got ${totalChanges})`);
  });

  test(`${ITERATIONS} random cases with relaying, LAN candidates and tracker-like observations: apply, plan again, nothing left`, () => {
    const random = seededRandom(20240602);
    const extra = seededRandom(31337);
    const kinds = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const base = randomCase(random);
      const policy: Policy = { ...base.policy, relayAfterSeconds: pick(extra, [0, 30, 120]), localNetworks: extra() < 0.5 ? [prefix('192.168.1.0/24')] : [] };
      const peers = base.list.peers.map((entry) => (extra() < 0.5 ? { ...entry, candidates: [endpoint(pick(extra, ['192.168.1.7:51820', '10.99.0.7:51820']))] } : entry));
      // The generator's endpoints are 198.51.100.0-3: "you" often shares one with a listed peer.
      const you = { ...base.list.you, endpoint: extra() < 0.6 ? endpoint(`198.51.100.${Math.floor(extra() * 4)}:40000`) : null };
      const peerList: PeerList = { ...base.list, you, peers };
      // Half the listed peers already sit where the plan points them, so the relay rules come into play.
      const current: DeviceState = {
        ...base.current,
        peers: base.current.peers.map((local) => {
          const entry = peers.find((e) => e.publicKey === local.publicKey);
          const target = entry && local.publicKey !== base.policy.fangPublicKey ? chooseEndpoint(entry, you, policy.localNetworks ?? []).endpoint : null;
          return target && extra() < 0.5 ? { ...local, endpoint: target } : local;
        }),
      };
      // As PeerTracker keeps them: punching only towards a peer that routes something and is already
      // pointed where the plan points it (a re-point starts the punching over); every peer that routes
      // nothing is relayed, and one pointed elsewhere has had no handshake since.
      const tryingSince = new Map<WireGuardKey, number>();
      const relayedSince = new Map<WireGuardKey, number>();
      for (const local of current.peers) {
        if (local.publicKey === policy.fangPublicKey) continue;
        const entry = peers.find((e) => e.publicKey === local.publicKey);
        const target = entry ? chooseEndpoint(entry, you, policy.localNetworks ?? []).endpoint : null;
        const pointed = target !== null && endpointEquals(local.endpoint, target);
        if (local.allowedIps.length > 0 && pointed && extra() < 0.8) tryingSince.set(local.publicKey, NOW_SECONDS - pick(extra, [0, 10, 30, 119, 120, 5000]));
        if (local.allowedIps.length === 0) {
          // Pointed elsewhere, a handshake since the relay began counts only while it is fresh and answered
          // (WireGuard roamed the peer); a stale one would have been through an endpoint we re-point away from,
          // and a re-point starts the relay clock over.
          const fresh = NOW_SECONDS - local.latestHandshake <= 180 && !(base.silent?.has(local.publicKey) ?? false);
          relayedSince.set(local.publicKey, pointed || (fresh && extra() < 0.5) ? NOW_SECONDS - pick(extra, [0, 5, 30, 5000]) : local.latestHandshake + 1);
        }
      }
      const observations: PlanObservations = { activity: base.activity, silent: base.silent, tryingSince, relayedSince };
      const context = () => `case ${i}: ${stringify({ current: current, peerList, policy, observations: { tryingSince: [...tryingSince], relayedSince: [...relayedSince] } })}`;

      const plan = planPeerChanges(current, peerList, policy, NOW, observations);
      const fangBefore = current.peers.find((p) => p.publicKey === policy.fangPublicKey);
      const fangRange = fangBefore?.allowedIps ?? [];
      for (const change of plan.changes) {
        kinds.set(change.kind, (kinds.get(change.kind) ?? 0) + 1);
        assert.notEqual(change.publicKey, policy.fangPublicKey, context());
        for (const a of change.allowedIps ?? []) {
          assert.ok(!prefixContainsIp(a, policy.serverAddress), `route to the server given away; ${context()}`);
          assert.ok(fangRange.some((outer) => prefixCovers(outer, a) && outer.length < a.length), `route outside the fang range; ${context()}`);
        }
        const local = current.peers.find((p) => p.publicKey === change.publicKey);
        if (change.kind === 'relay') assert.ok(local && local.allowedIps.length > 0 && change.allowedIps?.length === 0, `relay of a peer routing nothing; ${context()}`);
        if (change.kind === 'direct-again') assert.ok(local && local.allowedIps.length === 0 && (change.allowedIps?.length ?? 0) > 0, `direct-again of a routed peer; ${context()}`);
        if (change.kind === 'add-peer') assert.deepEqual(change.allowedIps, [], `relaying is on: new peers start relayed; ${context()}`);
      }
      assert.equal(new Set(plan.changes.map((c) => c.publicKey)).size, plan.changes.length, `one change per peer; ${context()}`);
      const after = applyToDevice(current, plan.changes);
      assert.equal(stringify(after.peers.find((p) => p.publicKey === policy.fangPublicKey)), stringify(fangBefore), `fang peer changed; ${context()}`);
      assert.deepEqual(describePlan(planPeerChanges(after, peerList, policy, NOW, observations)).changes, [], `not converged; ${context()}`);
    }
    for (const kind of ['add-peer', 'set-endpoint', 'relay', 'direct-again']) assert.ok((kinds.get(kind) ?? 0) > 0, `the generator should produce ${kind} (got ${stringify([...kinds])})`);
  });

  test('planning is deterministic: the same input gives the same plan', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 50; i++) {
      const { current, list: peerList, policy, activity, silent } = randomCase(random);
      assert.equal(stringify(planPeerChanges(current, peerList, policy, NOW, { activity, silent })), stringify(planPeerChanges(current, peerList, policy, NOW, { activity, silent })));
    }
  });
});

describe('planPeerChanges: relaying through the fang', () => {
  const RELAY_AFTER = 30;
  const RELAYING: Policy = { ...POLICY, relayAfterSeconds: RELAY_AFTER };
  const AT_OLD = '198.51.100.3:51820'; // where baseDevice() already points OLD
  const since = (entries: [WireGuardKey, number][]) => new Map(entries);

  interface RelayRow {
    name: string;
    current: DeviceState;
    list: PeerList;
    policy: Policy;
    observations?: PlanObservations;
    want: ReturnType<typeof describePlan>;
    /** Decision and refusal codes the plan must contain (see whyCodes). */
    whys?: string[];
  }

  const relayChange = { kind: 'relay' as const, publicKey: OLD, endpoint: undefined, allowedIps: [], previousEndpoint: AT_OLD, probeAddress: null, refused: [] };
  const directAgain = (allowedIps: string[], refused: string[] = []) => ({
    kind: 'direct-again' as const,
    publicKey: OLD,
    endpoint: undefined,
    allowedIps,
    previousEndpoint: AT_OLD,
    probeAddress: null,
    refused,
  });
  const relayedOld = (latestHandshake: number) => baseDevice([], { allowedIps: [], latestHandshake });
  // OLD relayed, and meanwhile another peer took 10.10.10.0/30, which holds OLD's 10.10.10.3.
  const TAKER = key(0x40);
  const relayedOldAndTaker = device(SELF, [
    FANG_PEER,
    { publicKey: OLD, endpoint: AT_OLD, allowedIps: [], latestHandshake: NOW_SECONDS - 5, persistentKeepalive: 25 },
    { publicKey: TAKER, endpoint: null, allowedIps: ['10.10.10.0/30'] },
  ]);

  const rows: RelayRow[] = [
    // A new peer: relayed first when relaying is on, direct at once without it (the --once path).
    {
      name: 'relaying on: a new peer is added without allowed IPs or probe, and its reason names the allowed IPs it will get',
      current: baseDevice(),
      list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32', 'fd00::5/128'])]),
      policy: RELAYING,
      want: {
        changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: [], persistentKeepalive: 25, previousEndpoint: null, probeAddress: null, refused: [] }],
        skipped: [],
      },
      whys: ['add-relay-first'],
    },
    {
      name: 'relaying on: a new peer names only the allowed IPs it will get; the refused ones are refused as before',
      current: baseDevice(),
      list: list([listEntry(NEW, '198.51.100.5:4000', ['0.0.0.0/0', '10.10.10.5/32'])]),
      policy: RELAYING,
      want: {
        changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: [], persistentKeepalive: 25, previousEndpoint: null, probeAddress: null, refused: ['0.0.0.0/0'] }],
        skipped: [],
      },
      whys: ['add-relay-first', 'outside-fang-range'],
    },
    {
      name: 'relaying on: a new peer with no acceptable allowed IP is still refused',
      current: baseDevice(),
      list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.3/32'])]),
      policy: RELAYING,
      want: { changes: [], skipped: [{ publicKey: NEW, severity: 'refused' }] },
      whys: ['no-acceptable-allowed-ip', `overlaps:${OLD}`],
    },
    {
      name: 'relaying off (--once): a new peer is added with its accepted allowed IPs and a probe address',
      current: baseDevice(),
      list: list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32', 'fd00::5/128'])]),
      policy: POLICY,
      want: {
        changes: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32', 'fd00::5/128'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
        skipped: [],
      },
      whys: ['add'],
    },

    // An existing peer punched without a handshake for relayAfterSeconds: relayed.
    {
      name: 'punched for exactly relayAfterSeconds without a handshake: relayed (allowed IPs taken off)',
      current: baseDevice(),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - RELAY_AFTER]]) },
      want: { changes: [relayChange], skipped: [] },
      whys: ['relay:30s'],
    },
    {
      name: 'punched for longer, never a handshake: relayed',
      current: baseDevice([], { latestHandshake: 0 }),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - 100]]) },
      want: { changes: [relayChange], skipped: [] },
      whys: ['relay:100s'],
    },
    {
      name: 'punched for one second less than relayAfterSeconds: not yet',
      current: baseDevice(),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - RELAY_AFTER + 1]]) },
      want: { changes: [], skipped: [] },
    },
    {
      name: 'a handshake after punching began: not relayed',
      current: baseDevice([], { latestHandshake: NOW_SECONDS - 50 }),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - 60]]) },
      want: { changes: [], skipped: [] },
    },
    {
      name: 'a handshake in the very second punching began counts: not relayed',
      current: baseDevice([], { latestHandshake: NOW_SECONDS - 60 }),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - 60]]) },
      want: { changes: [], skipped: [] },
    },
    {
      name: 'relaying off: never relayed, however long the punching',
      current: baseDevice([], { latestHandshake: 0 }),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: POLICY,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - 100_000]]) },
      want: { changes: [], skipped: [] },
    },
    {
      name: 'not being punched (no tryingSince): not relayed',
      current: baseDevice([], { latestHandshake: 0 }),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { tryingSince: since([[NEW, NOW_SECONDS - 100]]) },
      want: { changes: [], skipped: [] },
    },
    {
      name: 'the fang lists no allowed IPs for it: never relayed (the fang could not carry its traffic)',
      current: baseDevice([], { latestHandshake: 0 }),
      list: list([listEntry(OLD, AT_OLD, [])]),
      policy: RELAYING,
      observations: { tryingSince: since([[OLD, NOW_SECONDS - 100]]) },
      want: { changes: [], skipped: [] },
    },
    // A relayed peer: back to direct after a handshake since the relay began.
    {
      name: 'relayed, a handshake since the relay began: direct again with the allowed IPs the fang lists',
      current: relayedOld(NOW_SECONDS - 5),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32', 'fd00::3/128'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [directAgain(['10.10.10.3/32', 'fd00::3/128'])], skipped: [] },
      whys: ['direct-again'],
    },
    {
      name: 'relayed, a handshake in the very second the relay began: direct again',
      current: relayedOld(NOW_SECONDS - 20),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [directAgain(['10.10.10.3/32'])], skipped: [] },
    },
    {
      name: 'relayed, only an older handshake: stays relayed, kept',
      current: relayedOld(NOW_SECONDS - 100),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
      whys: ['relayed:20s'],
    },
    {
      name: 'relayed, never a handshake: stays relayed, kept',
      current: relayedOld(0),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
      whys: ['relayed:20s'],
    },
    {
      name: 'relayed by an earlier run (no relayedSince): a handshake within relayAfterSeconds brings it back',
      current: relayedOld(NOW_SECONDS - 10),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      want: { changes: [directAgain(['10.10.10.3/32'])], skipped: [] },
    },
    {
      name: 'relayed by an earlier run (no relayedSince), an older handshake: kept',
      current: relayedOld(NOW_SECONDS - 100),
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      want: { changes: [], skipped: [{ publicKey: OLD, severity: 'kept' }] },
      whys: ['relayed:30s'],
    },
    {
      name: 'relayed: an allowed IP another peer took meanwhile is refused, the rest given back',
      current: relayedOldAndTaker,
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32', '10.10.10.33/32'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [directAgain(['10.10.10.33/32'], ['10.10.10.3/32'])], skipped: [] },
      whys: ['direct-again', `overlaps:${TAKER}`],
    },
    {
      name: 'relayed: every allowed IP now overlaps another peer, so it stays relayed, refused',
      current: relayedOldAndTaker,
      list: list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]),
      policy: RELAYING,
      observations: { relayedSince: since([[OLD, NOW_SECONDS - 20]]) },
      want: { changes: [], skipped: [{ publicKey: OLD, severity: 'refused' }] },
      whys: ['relayed-allowed-ips-taken', `overlaps:${TAKER}`],
    },
  ];

  for (const row of rows) {
    test(row.name, () => {
      const before = stringify(row.current);
      const plan = planPeerChanges(row.current, row.list, row.policy, NOW, row.observations);
      assert.deepEqual(describePlan(plan), row.want);
      assert.equal(stringify(row.current), before, 'planning does not mutate the device');
      const codes = whyCodes(plan);
      for (const code of row.whys ?? []) assert.ok(codes.includes(code), `no ${code} in ${stringify(codes)}`);
      for (const change of plan.changes) assert.ok(change.reason.length > 0, 'every change says why');

      const after = applyToDevice(row.current, plan.changes);
      assert.deepEqual(describePlan(planPeerChanges(after, row.list, row.policy, NOW, row.observations)).changes, [], 'planning again after applying gives nothing');
    });
  }

  test('listed at another endpoint: re-pointed, not relayed; relayed only once punching the new one fails', () => {
    const peerList = list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]);
    const current = baseDevice([], { latestHandshake: 0 });
    const plan = planPeerChanges(current, peerList, RELAYING, NOW, { tryingSince: since([[OLD, NOW_SECONDS - 100]]) });
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.endpoint && formatEndpoint(c.endpoint)]), [['rebuild-peer', '203.0.113.3:6000']]);
    // The re-point starts the punching over (PeerTracker.record sets tryingSince to now).
    const after = applyToDevice(current, plan.changes);
    const restarted = { tryingSince: since([[OLD, NOW_SECONDS]]) };
    assert.deepEqual(planPeerChanges(after, peerList, RELAYING, NOW, restarted).changes, []);
    const later = new Date((NOW_SECONDS + RELAY_AFTER) * 1000);
    assert.deepEqual(planPeerChanges(after, peerList, RELAYING, later, restarted).changes.map((c) => c.kind), ['relay']);
  });

  test('a relayed peer re-pointed with its keepalive on gets it kicked, so a handshake starts at once', () => {
    const peerList = list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]);
    const kicked = planPeerChanges(relayedOld(NOW_SECONDS - 1000), peerList, RELAYING, NOW);
    assert.deepEqual(kicked.changes.map((c) => [c.kind, c.kickKeepalive, c.probeAddress]), [['set-endpoint', 25, null]]);
    const noKeepalive = planPeerChanges(baseDevice([], { allowedIps: [], latestHandshake: NOW_SECONDS - 1000, persistentKeepalive: null }), peerList, RELAYING, NOW);
    assert.deepEqual(noKeepalive.changes.map((c) => [c.kind, c.kickKeepalive, c.persistentKeepalive]), [['set-endpoint', undefined, 25]]);
    const routed = planPeerChanges(baseDevice([], { latestHandshake: NOW_SECONDS - 1000 }), peerList, RELAYING, NOW);
    assert.deepEqual(routed.changes.map((c) => [c.kind, c.kickKeepalive]), [['set-endpoint', undefined]], 'a peer with allowed IPs is punched through the tunnel instead');
    const never = planPeerChanges(relayedOld(0), peerList, RELAYING, NOW);
    assert.deepEqual(never.changes.map((c) => [c.kind, c.recreate, c.persistentKeepalive, c.allowedIps?.length]), [['rebuild-peer', true, 25, 0]], 'never a handshake: re-created, still routing nothing');
  });

  test('a never-handshaken peer with a preshared key is re-created keeping it; one that moved or was silent is only re-pointed', () => {
    const peerList = list([listEntry(OLD, '203.0.113.3:6000', ['10.10.10.3/32'])]);
    const psk = planPeerChanges(baseDevice([], { endpoint: null, latestHandshake: 0, hasPresharedKey: true, persistentKeepalive: 5 }), peerList, POLICY, NOW);
    assert.deepEqual(psk.changes.map((c) => [c.kind, c.keepPresharedKey, c.persistentKeepalive]), [['rebuild-peer', true, 5]]);
    const noPsk = planPeerChanges(baseDevice([], { endpoint: null, latestHandshake: 0 }), peerList, POLICY, NOW);
    assert.equal(noPsk.changes[0]?.keepPresharedKey, undefined);
    const moved = planPeerChanges(baseDevice([], { latestHandshake: 0 }), peerList, POLICY, NOW, { listedBefore: new Map([[OLD, endpoint('198.51.100.3:51820')]]) });
    assert.deepEqual(whyCodes(moved), ['repoint-moved']);
    const silent = planPeerChanges(baseDevice([], { latestHandshake: 0 }), peerList, POLICY, NOW, { silent: new Set([OLD]) });
    assert.deepEqual(whyCodes(silent), ['repoint-silent']);
  });

  describe('a relayed peer WireGuard roamed to another port than the fang lists (a NAT with a mapping per destination)', () => {
    const ROAMED = '198.51.100.3:40999';
    const peerList = list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]);
    const roamed = (latestHandshake: number) => baseDevice([], { endpoint: ROAMED, allowedIps: [], latestHandshake });
    const relayed20s = { relayedSince: since([[OLD, NOW_SECONDS - 20]]) };

    test('a fresh handshake since the relay began: direct again where it answers, not re-pointed', () => {
      const plan = planPeerChanges(roamed(NOW_SECONDS - 3), peerList, RELAYING, NOW, relayed20s);
      assert.deepEqual(describePlan(plan).changes, [{ ...directAgain(['10.10.10.3/32']), previousEndpoint: ROAMED }]);
      assert.deepEqual(whyCodes(plan), ['direct-again']);
      const after = applyToDevice(roamed(NOW_SECONDS - 3), plan.changes);
      const again = planPeerChanges(after, peerList, RELAYING, NOW, relayed20s);
      assert.deepEqual(again.changes, [], 'then it is a flowing peer like any other');
      assert.deepEqual(again.contested.map((c) => c.publicKey), [OLD]);
    });

    test('a handshake from before the relay: kept as flowing, still relayed', () => {
      const plan = planPeerChanges(roamed(NOW_SECONDS - 30), peerList, RELAYING, NOW, relayed20s);
      assert.deepEqual(plan.changes, []);
      assert.deepEqual(whyCodes(plan), ['contest:30s']);
    });

    test('silent to a probe: re-pointed to where the fang sees it; seen leaving that endpoint alone is not enough', () => {
      const silent = planPeerChanges(roamed(NOW_SECONDS - 3), peerList, RELAYING, NOW, { ...relayed20s, silent: new Set([OLD]) });
      assert.deepEqual(silent.changes.map((c) => [c.kind, c.endpoint && formatEndpoint(c.endpoint)]), [['set-endpoint', AT_OLD]]);
      const moved = planPeerChanges(roamed(NOW_SECONDS - 3), peerList, RELAYING, NOW, { ...relayed20s, listedBefore: new Map([[OLD, endpoint(ROAMED)]]) });
      assert.deepEqual(moved.changes, []);
    });

    test('relaying off (--once): left as it is', () => {
      assert.deepEqual(planPeerChanges(roamed(NOW_SECONDS - 3), peerList, POLICY, NOW, relayed20s).changes, []);
    });
  });

  test("a relayed peer's listed allowed IPs stay its own: a new peer may not take them meanwhile", () => {
    const taker = listEntry(NEW, '198.51.100.5:4000', ['10.10.10.2/31', '10.10.10.5/32']);
    for (const policy of [RELAYING, POLICY]) {
      const plan = planPeerChanges(relayedOld(0), list([listEntry(OLD, AT_OLD, ['10.10.10.3/32']), taker]), policy, NOW);
      const added = plan.changes.find((c) => c.publicKey === NEW);
      assert.deepEqual(added?.refusedAllowedIps.map((r) => r.prefix), ['10.10.10.2/31']);
      assert.deepEqual(added?.decision.kind === 'add' && added.decision.refused.map((r) => r.why), [{ code: 'overlaps', prefix: prefix('10.10.10.3/32'), owner: OLD }]);
    }
  });

  test('two new peers listing overlapping prefixes, relayed first: the first listed keeps them across rounds', () => {
    const peerList = list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.4/30']), listEntry(NEW2, '198.51.100.6:4000', ['10.10.10.6/32'])]);
    const first = planPeerChanges(baseDevice(), peerList, RELAYING, NOW);
    assert.deepEqual(first.changes.map((c) => c.publicKey), [NEW]);
    assert.deepEqual(first.skipped.map((s) => [s.publicKey, s.severity]), [[NEW2, 'refused']]);
    const after = applyToDevice(baseDevice(), first.changes);
    const second = planPeerChanges(after, peerList, RELAYING, NOW);
    assert.deepEqual(second.changes, [], 'the refused peer is not added once the first routes nothing locally');
    assert.deepEqual(second.skipped.map((s) => [s.publicKey, s.severity]), [[NEW, 'kept'], [NEW2, 'refused']]);
    // And when the first goes direct, it gets them back.
    const handshook: DeviceState = { ...after, peers: after.peers.map((p) => (p.publicKey === NEW ? { ...p, latestHandshake: NOW_SECONDS } : p)) };
    const direct = planPeerChanges(handshook, peerList, RELAYING, NOW, { relayedSince: since([[NEW, NOW_SECONDS - 5]]) });
    assert.deepEqual(direct.changes.map((c) => [c.kind, c.publicKey, c.allowedIps?.map(formatPrefix)]), [['direct-again', NEW, ['10.10.10.4/30']]]);
  });

  test('a relayed peer keeps its endpoint and keepalive: relay and direct-again change allowed IPs only', () => {
    const relay = planPeerChanges(baseDevice(), list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]), RELAYING, NOW, { tryingSince: since([[OLD, NOW_SECONDS - 60]]) });
    const back = planPeerChanges(relayedOld(NOW_SECONDS - 1), list([listEntry(OLD, AT_OLD, ['10.10.10.3/32'])]), RELAYING, NOW, { relayedSince: since([[OLD, NOW_SECONDS - 20]]) });
    for (const change of [...relay.changes, ...back.changes]) {
      assert.equal(change.endpoint, undefined, change.kind);
      assert.equal(change.persistentKeepalive, undefined, change.kind);
      assert.equal(change.remove, undefined, change.kind);
    }
    assert.deepEqual([...relay.changes, ...back.changes].map((c) => c.kind), ['relay', 'direct-again']);
  });

  test('a whole life: added relayed, still relayed, direct after a handshake, relayed again when punching fails, each step converging', () => {
    const peerList = list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32'])]);
    const kinds = (plan: Plan) => plan.changes.map((c) => c.kind);
    const at = (seconds: number) => new Date(seconds * 1000);
    const withHandshake = (state: DeviceState, seconds: number): DeviceState => ({
      ...state,
      peers: state.peers.map((p) => (p.publicKey === NEW ? { ...p, latestHandshake: seconds } : p)),
    });
    const step = (state: DeviceState, when: number, observations: PlanObservations, want: string[]) => {
      const plan = planPeerChanges(state, peerList, RELAYING, at(when), observations);
      assert.deepEqual(kinds(plan), want, `at +${when - NOW_SECONDS}s`);
      const after = applyToDevice(state, plan.changes);
      assert.deepEqual(planPeerChanges(after, peerList, RELAYING, at(when), observations).changes, [], `converged at +${when - NOW_SECONDS}s`);
      return after;
    };

    let state = step(baseDevice(), NOW_SECONDS, {}, ['add-peer']);
    assert.deepEqual(state.peers.find((p) => p.publicKey === NEW)?.allowedIps, []);
    const relayedSince = since([[NEW, NOW_SECONDS]]);
    state = step(state, NOW_SECONDS + 10, { relayedSince }, []);
    state = step(withHandshake(state, NOW_SECONDS + 12), NOW_SECONDS + 12, { relayedSince }, ['direct-again']);
    assert.deepEqual(state.peers.find((p) => p.publicKey === NEW)?.allowedIps.map(formatPrefix), ['10.10.10.5/32']);
    // Much later the session is gone and punching starts over, without success.
    const tryingSince = since([[NEW, NOW_SECONDS + 1000]]);
    state = step(state, NOW_SECONDS + 1000 + RELAY_AFTER - 1, { tryingSince }, []);
    state = step(state, NOW_SECONDS + 1000 + RELAY_AFTER, { tryingSince }, ['relay']);
    assert.deepEqual(state.peers.find((p) => p.publicKey === NEW)?.allowedIps, []);
    assert.deepEqual(state.peers.find((p) => p.publicKey === FANG), peer(FANG_PEER), 'the fang peer is never touched');
  });
});

describe('planPeerChanges: peers behind the same NAT, over the LAN', () => {
  const LAN: Policy = { ...POLICY, localNetworks: [prefix('192.168.1.0/24')] };
  // list() says the fang sees us at 203.0.113.1:40000; this peer is behind the same address.
  const neighbour = (candidates: string[], endpointText = '203.0.113.1:40001'): PeerListEntry => ({
    ...listEntry(NEW, endpointText, ['10.10.10.5/32']),
    candidates: candidates.map(endpoint),
  });

  const rows: { name: string; current: DeviceState; entry: PeerListEntry; policy: Policy; want: ReturnType<typeof describePlan>['changes']; whys: string[] }[] = [
    {
      name: 'a new peer behind our public address is added at its LAN candidate',
      current: baseDevice(),
      entry: neighbour(['10.99.0.5:51820', '192.168.1.5:51820']),
      policy: LAN,
      want: [{ kind: 'add-peer', publicKey: NEW, endpoint: '192.168.1.5:51820', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
      whys: ['add', 'via-lan'],
    },
    {
      name: 'relaying on: added at its LAN candidate, relayed first, both said',
      current: baseDevice(),
      entry: neighbour(['192.168.1.5:51820']),
      policy: { ...LAN, relayAfterSeconds: 30 },
      want: [{ kind: 'add-peer', publicKey: NEW, endpoint: '192.168.1.5:51820', allowedIps: [], persistentKeepalive: 25, previousEndpoint: null, probeAddress: null, refused: [] }],
      whys: ['add-relay-first', 'via-lan'],
    },
    {
      name: 'an existing peer pointed at the shared public address is re-pointed to the LAN',
      current: baseDevice([{ publicKey: NEW, endpoint: '203.0.113.1:40001', allowedIps: ['10.10.10.5/32'], latestHandshake: NOW_SECONDS - 1000, persistentKeepalive: 25 }]),
      entry: neighbour(['192.168.1.5:51820']),
      policy: LAN,
      want: [{ kind: 'set-endpoint', publicKey: NEW, endpoint: '192.168.1.5:51820', previousEndpoint: '203.0.113.1:40001', probeAddress: '10.10.10.5', refused: [] }],
      whys: ['repoint-stale', 'via-lan'],
    },
    {
      name: 'no local networks in the policy: the public endpoint',
      current: baseDevice(),
      entry: neighbour(['192.168.1.5:51820']),
      policy: POLICY,
      want: [{ kind: 'add-peer', publicKey: NEW, endpoint: '203.0.113.1:40001', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
      whys: ['add'],
    },
    {
      name: 'another public address: the public endpoint, though a candidate is on our LAN',
      current: baseDevice(),
      entry: neighbour(['192.168.1.5:51820'], '198.51.100.5:4000'),
      policy: LAN,
      want: [{ kind: 'add-peer', publicKey: NEW, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 25, previousEndpoint: null, probeAddress: '10.10.10.5', refused: [] }],
      whys: ['add'],
    },
  ];
  test('a peer behind our public address that has not reported candidates yet: kept, waiting for them', () => {
    const waiting: PeerListEntry = listEntry(NEW, '203.0.113.1:40001', ['10.10.10.5/32']);
    for (const current of [baseDevice(), baseDevice([{ publicKey: NEW, endpoint: '203.0.113.1:40001', allowedIps: ['10.10.10.5/32'], latestHandshake: 0 }])]) {
      const plan = planPeerChanges(current, list([waiting]), LAN, NOW);
      assert.deepEqual(plan.changes, []);
      assert.deepEqual(plan.skipped.map((s) => [s.publicKey, s.severity]), [[NEW, 'kept']]);
      assert.deepEqual(whyCodes(plan), ['same-nat-waiting']);
    }
  });

  for (const row of rows) {
    test(row.name, () => {
      const peerList = list([row.entry]);
      const plan = planPeerChanges(row.current, peerList, row.policy, NOW);
      assert.deepEqual(describePlan(plan).changes, row.want);
      assert.deepEqual(whyCodes(plan), row.whys);
      const after = applyToDevice(row.current, plan.changes);
      assert.deepEqual(planPeerChanges(after, peerList, row.policy, NOW).changes, [], 'planning again after applying gives nothing');
    });
  }
});

describe('findFangPeer', () => {
  const wide = { publicKey: key(0x10), endpoint: '192.0.2.1:51820', allowedIps: ['10.0.0.0/8'] };
  const narrow = { publicKey: key(0x11), endpoint: '192.0.2.2:51820', allowedIps: ['172.16.0.0/12', '10.10.10.0/24'] };
  const host = { publicKey: key(0x12), endpoint: null, allowedIps: ['10.10.10.7/32'] };

  const rows = [
    { name: 'the longest match wins', peers: [wide, narrow, host], server: '10.10.10.1', want: narrow.publicKey },
    { name: 'order does not matter', peers: [host, narrow, wide], server: '10.10.10.1', want: narrow.publicKey },
    { name: 'a host route beats a range', peers: [wide, narrow, host], server: '10.10.10.7', want: host.publicKey },
    { name: 'only the wide range matches', peers: [wide, narrow, host], server: '10.20.0.1', want: wide.publicKey },
    { name: 'IPv6', peers: [wide, { publicKey: key(0x13), endpoint: null, allowedIps: ['fd00::/64'] }], server: 'fd00::1', want: key(0x13) },
    { name: 'a default route', peers: [{ publicKey: key(0x14), endpoint: null, allowedIps: ['0.0.0.0/0'] }, narrow], server: '203.0.113.1', want: key(0x14) },
  ];
  for (const { name, peers, server, want } of rows) {
    test(name, () => assert.equal(findFangPeer(device(SELF, peers), ip(server)).publicKey, want));
  }

  test('no peer routes the server address: SB_NO_FANG_PEER, naming both', () => {
    assert.throws(
      () => findFangPeer(device(SELF, [narrow, host], 'wg5'), ip('192.168.7.1')),
      (error: unknown) => {
        assert.ok(isSnakebiteError(error, 'SB_NO_FANG_PEER'));
        assert.match(error.message, /wg5/);
        assert.match(error.message, /192\.168\.7\.1/);
        assert.match(error.hint ?? '', /AllowedIPs contain 192\.168\.7\.1/);
        return true;
      },
    );
  });

  test('no peers at all: SB_NO_FANG_PEER', () => {
    assert.throws(() => findFangPeer(device(SELF, []), ip('10.10.10.1')), (error: unknown) => isSnakebiteError(error, 'SB_NO_FANG_PEER'));
  });

  test('a peer record is returned as it is', () => {
    const state = device(SELF, [wide]);
    assert.equal(findFangPeer(state, ip('10.1.1.1')), state.peers[0]);
    assert.deepEqual(findFangPeer(state, ip('10.1.1.1')), peer(wide));
  });
});

describe('planPeerChanges: removing peers the fang no longer lists', () => {
  const entryOld = listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32']);
  const removed = (plan: Plan) => plan.changes.filter((c) => c.kind === 'remove-peer').map((c) => c.publicKey);
  test('a peer this client added and the fang dropped is removed', () => {
    const plan = planPeerChanges(baseDevice(), list([]), POLICY, NOW, { addedByUs: new Set([OLD]) });
    assert.deepEqual(removed(plan), [OLD]);
    assert.equal(plan.changes[0]!.remove, true);
    assert.deepEqual(whyCodes(plan), ['remove']);
  });
  test('a peer the user configured (not added by us) is never removed', () => {
    assert.deepEqual(removed(planPeerChanges(baseDevice(), list([]), POLICY, NOW, { addedByUs: new Set() })), []);
    assert.deepEqual(removed(planPeerChanges(baseDevice(), list([]), POLICY, NOW)), []);
  });
  test('a listed peer is not removed', () => {
    assert.deepEqual(removed(planPeerChanges(baseDevice(), list([entryOld]), POLICY, NOW, { addedByUs: new Set([OLD]) })), []);
  });
  test('the fang peer is never removed, even if claimed as added', () => {
    assert.deepEqual(removed(planPeerChanges(baseDevice(), list([]), POLICY, NOW, { addedByUs: new Set([FANG, OLD]) })), [OLD]);
  });
  test('after the removal, planning again gives nothing', () => {
    const plan = planPeerChanges(baseDevice(), list([]), POLICY, NOW, { addedByUs: new Set([OLD]) });
    const after = applyToDevice(baseDevice(), plan.changes);
    assert.deepEqual(planPeerChanges(after, list([]), POLICY, NOW, { addedByUs: new Set([OLD]) }).changes, []);
  });
});

describe('planPeerChanges: a peer the user configured with an endpoint and no allowed IPs (issue 8)', () => {
  const USERS = baseDevice([], { allowedIps: [], latestHandshake: NOW_SECONDS - 5, persistentKeepalive: null });
  const rows: { name: string; policy: Policy; observations: PlanObservations; want: string[] }[] = [
    { name: 'daemon: not taken for a relayed peer (no allowed IPs added, no keepalive)', policy: { ...POLICY, relayAfterSeconds: 8 }, observations: { addedByUs: new Set() }, want: ['routes-nothing'] },
    { name: '--once: the same', policy: POLICY, observations: { addedByUs: new Set() }, want: ['routes-nothing'] },
    { name: 'one this client relays is still relayed, and goes direct after a handshake', policy: { ...POLICY, relayAfterSeconds: 8 }, observations: { addedByUs: new Set(), relayedSince: new Map([[OLD, NOW_SECONDS - 20]]) }, want: ['direct-again'] },
    { name: 'one this client added is relayed, and goes direct after a handshake', policy: { ...POLICY, relayAfterSeconds: 8 }, observations: { addedByUs: new Set([OLD]) }, want: ['direct-again'] },
  ];
  for (const row of rows) {
    test(row.name, () => {
      for (const listed of ['198.51.100.3:51820', '203.0.113.3:6000']) {
        const plan = planPeerChanges(USERS, list([listEntry(OLD, listed, ['10.10.10.3/32'])]), row.policy, NOW, row.observations);
        assert.deepEqual(whyCodes(plan), row.want, listed);
      }
    });
  }
});

describe('planPeerChanges: hostile lists (issue 8)', () => {
  const OWN: Policy = { ...POLICY, ownAddresses: [ip('10.10.10.2')] };
  const rows: { name: string; entry: PeerListEntry; current?: DeviceState; policy?: Policy; want: string[] }[] = [
    { name: "a new peer whose allowed IPs contain our own overlay address: that prefix refused", entry: listEntry(NEW, '198.51.100.5:4000', ['10.10.10.2/31']), want: ['no-acceptable-allowed-ip', 'contains-own-address'] },
    { name: 'our own address next to a good one: only the bad prefix refused', entry: listEntry(NEW, '198.51.100.5:4000', ['10.10.10.2/32', '10.10.10.5/32']), want: ['add', 'contains-own-address'] },
    { name: 'a new peer at an endpoint inside the overlay range: refused', entry: listEntry(NEW, '10.10.10.77:51820', ['10.10.10.5/32']), want: ['endpoint-not-public'] },
    { name: 'a new peer at an IPv4 link-local endpoint: refused', entry: listEntry(NEW, '169.254.1.1:51820', ['10.10.10.5/32']), want: ['endpoint-not-public'] },
    { name: 'a new peer at an IPv6 link-local endpoint: refused', entry: listEntry(NEW, '[fe80::1]:51820', ['10.10.10.5/32']), want: ['endpoint-not-public'] },
    { name: 'an existing peer re-pointed into the overlay: refused, endpoint kept', entry: listEntry(OLD, '10.10.10.9:51820', ['10.10.10.3/32']), want: ['endpoint-not-public'] },
    { name: 'an endpoint on a network we are on, inside a wide overlay, is a LAN: accepted', entry: listEntry(NEW, '10.10.10.77:51820', ['10.10.10.5/32']), policy: { ...OWN, localNetworks: [prefix('10.10.10.64/26')] }, want: ['add'] },
    { name: 'a full-tunnel fang (0.0.0.0/0) does not make every endpoint "inside"', entry: listEntry(NEW, '198.51.100.5:4000', ['10.10.10.5/32']), current: device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['0.0.0.0/0'] }]), want: ['add'] },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const plan = planPeerChanges(row.current ?? baseDevice(), list([row.entry]), row.policy ?? OWN, NOW);
      assert.deepEqual(whyCodes(plan), row.want);
      if (row.want[0] === 'endpoint-not-public') assert.deepEqual(plan.changes, []);
    });
  }
});

describe('planPeerChanges: relaying peers the user configured (S2, S3)', () => {
  const RELAYING: Policy = { ...POLICY, relayAfterSeconds: 8 };
  const USERS = { addedByUs: new Set<WireGuardKey>() };
  // S3: the fang peer routes only its own address; the user lists OLD with its /32.
  const S3_FANG: PeerSpec = { ...FANG_PEER, allowedIps: ['10.10.10.1/32'] };
  const s3 = (old: Partial<PeerSpec> = {}) => device(SELF, [S3_FANG, { publicKey: OLD, endpoint: '198.51.100.3:51820', allowedIps: ['10.10.10.3/32'], latestHandshake: 0, persistentKeepalive: 5, ...old }]);
  const listed = list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]);
  const trying = (since: number) => ({ ...USERS, tryingSince: new Map([[OLD, since]]) });

  test('S3: a listed peer routing its own /32 is managed: it gets its endpoint (re-created, never had a handshake)', () => {
    const plan = planPeerChanges(s3({ endpoint: null }), listed, POLICY, NOW, USERS);
    assert.deepEqual(whyCodes(plan), ['rebuild']);
    assert.deepEqual(plan.changes[0]?.allowedIps?.map(formatPrefix), ['10.10.10.3/32']);
  });

  test('S3, daemon: re-created relayed first, its /32 on the fang peer until a direct handshake, then exactly back', () => {
    const plan = planPeerChanges(s3({ endpoint: null }), listed, RELAYING, NOW, USERS);
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.publicKey, c.allowedIps?.map(formatPrefix), c.probeAddress]), [
      ['rebuild-peer', OLD, [], null],
      ['fang-routes', FANG, ['10.10.10.1/32', '10.10.10.3/32'], null],
    ]);
    const after = applyToDevice(s3({ endpoint: null }), plan.changes);
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: true }]]);
    const relayedSince = new Map([[OLD, NOW_SECONDS]]);
    assert.deepEqual(planPeerChanges(after, listed, RELAYING, NOW, { ...USERS, changed, relayedSince }).changes, [], 'converged');
    const handshook: DeviceState = { ...after, peers: after.peers.map((p) => (p.publicKey === OLD ? { ...p, latestHandshake: NOW_SECONDS } : p)) };
    const back = planPeerChanges(handshook, listed, RELAYING, NOW, { ...USERS, changed, relayedSince });
    assert.deepEqual(whyCodes(back), ['direct-again']);
    assert.deepEqual(applyToDevice(handshook, back.changes).peers.map((p) => [p.publicKey, p.allowedIps.map(formatPrefix)]), [[FANG, ['10.10.10.1/32']], [OLD, ['10.10.10.3/32']]]);
  });

  test('S2, daemon: re-created relayed first (allowed IPs off), the fang peer untouched', () => {
    const current = baseDevice([], { endpoint: null, latestHandshake: 0, persistentKeepalive: 5 });
    const plan = planPeerChanges(current, list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]), RELAYING, NOW, USERS);
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.allowedIps?.length, c.persistentKeepalive]), [['rebuild-peer', 0, 5]]);
    const d = plan.decisions[0]!;
    assert.ok(d.kind === 'rebuild' && d.relayFirst && !d.viaFang);
    assert.deepEqual(d.allowedIps.map(formatPrefix), ['10.10.10.3/32']);
  });

  test('S3: a peer routing more than the fang routes to it (a site) stays the user\'s', () => {
    const plan = planPeerChanges(s3({ endpoint: null, allowedIps: ['10.10.10.3/32', '192.168.50.0/24'] }), listed, RELAYING, NOW, USERS);
    assert.deepEqual(whyCodes(plan), ['routes-outside']);
  });

  test('S3: the fang listing 0.0.0.0/0 for it does not make a site peer ours', () => {
    const plan = planPeerChanges(s3({ endpoint: null, allowedIps: ['192.168.50.0/24'] }), list([listEntry(OLD, '198.51.100.3:51820', ['0.0.0.0/0'])]), RELAYING, NOW, USERS);
    assert.deepEqual(whyCodes(plan), ['routes-outside']);
  });

  test('S2: punched without a handshake: its allowed IPs are taken off, the originals carried in the decision', () => {
    const plan = planPeerChanges(baseDevice([], { latestHandshake: 0 }), list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]), RELAYING, NOW, trying(NOW_SECONDS - 8));
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.publicKey, c.allowedIps?.length]), [['relay', OLD, 0]]);
    const d = plan.decisions[0]!;
    assert.ok(d.kind === 'relay' && d.origin === 'users' && !d.viaFang);
    assert.deepEqual(d.original.map(formatPrefix), ['10.10.10.3/32']);
  });

  test('S3: punched without a handshake: its allowed IPs move onto the fang peer (one change for the fang, its own kept)', () => {
    const plan = planPeerChanges(s3(), listed, RELAYING, NOW, trying(NOW_SECONDS - 8));
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.publicKey, c.allowedIps?.map(formatPrefix)]), [['relay', OLD, []], ['fang-routes', FANG, ['10.10.10.1/32', '10.10.10.3/32']]]);
    const after = applyToDevice(s3(), plan.changes);
    assert.deepEqual(after.peers.find((p) => p.publicKey === OLD)?.allowedIps, []);
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: true }]]);
    const relayedSince = new Map([[OLD, NOW_SECONDS]]);
    assert.deepEqual(planPeerChanges(after, listed, RELAYING, NOW, { ...USERS, changed, relayedSince }).changes, [], 'converged');
    // A direct handshake: its own /32 comes back, and WireGuard takes it off the fang peer.
    const handshook: DeviceState = { ...after, peers: after.peers.map((p) => (p.publicKey === OLD ? { ...p, latestHandshake: NOW_SECONDS + 2 } : p)) };
    const back = planPeerChanges(handshook, listed, RELAYING, new Date((NOW_SECONDS + 2) * 1000), { ...USERS, changed, relayedSince });
    assert.deepEqual(whyCodes(back), ['direct-again']);
    const restored = applyToDevice(handshook, back.changes);
    assert.deepEqual(restored.peers.map((p) => [p.publicKey, p.allowedIps.map(formatPrefix)]), [[FANG, ['10.10.10.1/32']], [OLD, ['10.10.10.3/32']]], 'both exactly as the user configured them');
  });

  test('S3: two peers relayed in one round: one fang change carrying both', () => {
    const current = device(SELF, [S3_FANG, { publicKey: OLD, endpoint: '198.51.100.3:51820', allowedIps: ['10.10.10.3/32'], persistentKeepalive: 5 }, { publicKey: NEW, endpoint: '198.51.100.5:51820', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 5 }]);
    const both = list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32']), listEntry(NEW, '198.51.100.5:51820', ['10.10.10.5/32'])]);
    const plan = planPeerChanges(current, both, RELAYING, NOW, { ...USERS, tryingSince: new Map([[OLD, NOW_SECONDS - 9], [NEW, NOW_SECONDS - 9]]) });
    assert.deepEqual(plan.changes.filter((c) => c.kind === 'fang-routes').map((c) => c.allowedIps?.map(formatPrefix)), [['10.10.10.1/32', '10.10.10.3/32', '10.10.10.5/32']]);
  });

  test('S3: one peer leaves the relay while another enters it: the fang change does not take the first one\'s /32 back', () => {
    // OLD is relayed (its /32 on the fang peer) and just had a direct handshake; NEW's punch failed.
    const current = device(SELF, [
      { ...S3_FANG, allowedIps: ['10.10.10.1/32', '10.10.10.3/32'] },
      { publicKey: OLD, endpoint: '198.51.100.3:51820', allowedIps: [], latestHandshake: NOW_SECONDS - 1, persistentKeepalive: 5 },
      { publicKey: NEW, endpoint: '198.51.100.5:51820', allowedIps: ['10.10.10.5/32'], persistentKeepalive: 5 },
    ]);
    const both = list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32']), listEntry(NEW, '198.51.100.5:51820', ['10.10.10.5/32'])]);
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: true }]]);
    const plan = planPeerChanges(current, both, RELAYING, NOW, { ...USERS, changed, relayedSince: new Map([[OLD, NOW_SECONDS - 20]]), tryingSince: new Map([[NEW, NOW_SECONDS - 9]]) });
    assert.deepEqual(plan.decisions.map((d) => d.kind), ['direct-again', 'relay']);
    const after = applyToDevice(current, plan.changes);
    assert.deepEqual(after.peers.map((p) => [p.publicKey, p.allowedIps.map(formatPrefix)]), [
      [FANG, ['10.10.10.1/32', '10.10.10.5/32']],
      [OLD, ['10.10.10.3/32']],
      [NEW, []],
    ]);
  });

  test('S2: direct again restores the user\'s own allowed IPs, not the fang\'s list', () => {
    const relayed = baseDevice([], { allowedIps: [], latestHandshake: NOW_SECONDS - 1 });
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32'), prefix('10.10.10.33/32')], viaFang: false }]]);
    const plan = planPeerChanges(relayed, list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]), RELAYING, NOW, { ...USERS, changed, relayedSince: new Map([[OLD, NOW_SECONDS - 20]]) });
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.allowedIps?.map(formatPrefix)]), [['direct-again', ['10.10.10.3/32', '10.10.10.33/32']]]);
  });

  test('S2: a relayed peer of the user\'s that the fang now lists without allowed IPs still gets its own back at a direct handshake', () => {
    const relayed = baseDevice([], { allowedIps: [], latestHandshake: NOW_SECONDS - 1 });
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: false }]]);
    const plan = planPeerChanges(relayed, list([listEntry(OLD, '198.51.100.3:51820', [])]), RELAYING, NOW, { ...USERS, changed, relayedSince: new Map([[OLD, NOW_SECONDS - 20]]) });
    assert.deepEqual(plan.changes.map((c) => [c.kind, c.allowedIps?.map(formatPrefix)]), [['direct-again', ['10.10.10.3/32']]]);
  });

  test('a flowing user peer is never relayed nor touched', () => {
    const plan = planPeerChanges(baseDevice([], { latestHandshake: NOW_SECONDS - 3 }), list([listEntry(OLD, '198.51.100.3:51820', ['10.10.10.3/32'])]), RELAYING, NOW, trying(NOW_SECONDS - 100));
    assert.deepEqual(plan.changes, []);
  });

  test('while S3 prefixes sit on the fang peer, the fang range is its own: a new peer may not take them', () => {
    const current = device(SELF, [{ ...S3_FANG, allowedIps: ['10.10.0.0/16', '10.10.10.3/32'] }, { publicKey: OLD, endpoint: '198.51.100.3:51820', allowedIps: [] }]);
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: true }]]);
    const plan = planPeerChanges(current, list([listEntry(NEW, '198.51.100.5:4000', ['10.10.10.3/32', '10.10.10.5/32'])]), RELAYING, NOW, { ...USERS, changed, relayedSince: new Map([[OLD, NOW_SECONDS]]) });
    assert.deepEqual(whyCodes(plan), ['add-relay-first', `overlaps:${OLD}`]);
  });
});

describe("planPeerChanges: a listed peer of the user's behind our own NAT", () => {
  const LAN: Policy = { ...POLICY, relayAfterSeconds: 8, localNetworks: [prefix('192.168.1.0/24')] };
  const USERS = { addedByUs: new Set<WireGuardKey>() };
  const waiting = listEntry(OLD, '203.0.113.1:40001', ['10.10.10.3/32']);
  const ready: PeerListEntry = { ...waiting, candidates: [endpoint('192.168.1.3:51820')] };
  const start = baseDevice([], { endpoint: null, latestHandshake: 0, persistentKeepalive: 5 });

  test('relayed while it has not reported its LAN candidates, re-created at its LAN candidate still relayed, then exactly back', () => {
    const first = planPeerChanges(start, list([waiting]), LAN, NOW, USERS);
    assert.deepEqual(first.changes.map((c) => [c.kind, c.allowedIps?.length]), [['relay', 0]]);
    let state = applyToDevice(start, first.changes);
    const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: false }]]);
    const relayedSince = new Map([[OLD, NOW_SECONDS]]);
    assert.deepEqual(planPeerChanges(state, list([waiting]), LAN, NOW, { ...USERS, changed, relayedSince }).changes, [], 'converged while waiting');
    const second = planPeerChanges(state, list([ready]), LAN, NOW, { ...USERS, changed, relayedSince });
    assert.deepEqual(whyCodes(second), ['rebuild', 'via-lan']);
    const d = second.decisions[0]!;
    assert.ok(d.kind === 'rebuild' && d.relayFirst);
    assert.deepEqual(d.allowedIps.map(formatPrefix), ['10.10.10.3/32'], 'its own allowed IPs, kept while it was relayed');
    assert.deepEqual(second.changes[0]?.allowedIps, [], 'still relayed until a direct handshake');
    state = applyToDevice(state, second.changes);
    state = { ...state, peers: state.peers.map((p) => (p.publicKey === OLD ? { ...p, latestHandshake: NOW_SECONDS } : p)) };
    const third = planPeerChanges(state, list([ready]), LAN, NOW, { ...USERS, changed, relayedSince });
    assert.deepEqual(third.changes.map((c) => [c.kind, c.allowedIps?.map(formatPrefix)]), [['direct-again', ['10.10.10.3/32']]]);
  });

  test('--once (no relaying) and peers this client added only wait', () => {
    assert.deepEqual(whyCodes(planPeerChanges(start, list([waiting]), { ...LAN, relayAfterSeconds: undefined }, NOW, USERS)), ['same-nat-waiting']);
    assert.deepEqual(whyCodes(planPeerChanges(start, list([waiting]), LAN, NOW, { addedByUs: new Set([OLD]) })), ['same-nat-waiting']);
  });
});

test("a relayed peer of the user's that the fang stops listing gets its own allowed IPs back, and is never removed", () => {
  const relayed = baseDevice([], { allowedIps: [], latestHandshake: 0 });
  const changed = new Map([[OLD, { allowedIps: [prefix('10.10.10.3/32')], viaFang: false }]]);
  const plan = planPeerChanges(relayed, list([]), { ...POLICY, relayAfterSeconds: 8 }, NOW, { addedByUs: new Set(), changed, relayedSince: new Map([[OLD, NOW_SECONDS - 50]]) });
  assert.deepEqual(plan.decisions.map((d) => d.kind), ['restore']);
  assert.deepEqual(plan.changes.map((c) => [c.kind, c.remove, c.allowedIps?.map(formatPrefix)]), [['direct-again', undefined, ['10.10.10.3/32']]]);
  const after = applyToDevice(relayed, plan.changes);
  assert.deepEqual(planPeerChanges(after, list([]), { ...POLICY, relayAfterSeconds: 8 }, NOW, { addedByUs: new Set() }).changes, [], 'and then it is simply the user\'s');
});
