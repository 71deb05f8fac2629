import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AskerIndex } from '../../src/fang/asker-index';
import { diffPeers, diffStates } from '../../src/fang/peer-diff';
import { scopePeerList } from '../../src/fang/list-scope';
import { PeerListEncoder } from '../../src/fang/peer-list-encoder';
import { buildPeerList, gatherSeenBy, SEEN_BY_LIMIT } from '../../src/fang/peer-list-view';
import { longestMatch, parseIp, type IpAddress } from '../../src/ip/address';
import type { PeerReport } from '../../src/peer-list/peer-list';
import { serializePeerList } from '../../src/peer-list/serialize';
import type { DeviceState, PeerChange, PeerState } from '../../src/wireguard/device-state';
import { DumpParser, parseDump } from '../../src/wireguard/dump-parser';
import type { WireGuardKey } from '../../src/wireguard/key';
import { addconfText, runCommand, wgInvocations, wgSetArguments } from '../../src/wireguard/wg-command-driver';
import { device, endpoint, key, peer, pick, prefix, randomKey, seededRandom, type PeerSpec } from '../support/fakes';

const FANG = key(0xf0);
const NOW = 1_700_000_000;

/** Peers sorted by key: the encoder puts entries made for one asker last. */
function canonical(body: unknown): unknown {
  const doc = body as { peers: { publicKey: string }[] };
  return { ...doc, peers: [...doc.peers].sort((a, b) => a.publicKey.localeCompare(b.publicKey)) };
}

function dumpOf(lines: readonly string[]): string {
  return `${['(none)', FANG, '51820', 'off'].join('\t')}\n${lines.map((l) => `${l}\n`).join('')}`;
}

function line(n: number, endpointText: string, allowed: string, rx = 0): string {
  return [key(n), '(none)', endpointText, allowed, '0', String(rx), '0', 'off'].join('\t');
}

describe('DumpParser: successive reads reuse what did not change', () => {
  const first = dumpOf([line(1, '198.51.100.1:1', '10.10.10.1/32'), line(2, '198.51.100.2:2', '10.10.10.2/32,fd00::2/128'), line(3, '(none)', '(none)')]);

  test('the same dump gives the same peer objects, and the same state as parseDump', () => {
    const parser = new DumpParser('wg0');
    const a = parser.parse(first);
    const b = parser.parse(first);
    a.peers.forEach((p, i) => assert.equal(b.peers[i], p));
    assert.deepEqual(b, parseDump('wg0', first));
  });

  const rows: { name: string; next: string[]; newPeer: boolean[]; sameEndpoint: boolean[]; sameAllowed: boolean[] }[] = [
    {
      name: 'counters moved: new peer object, same endpoint and allowed IPs objects',
      next: [line(1, '198.51.100.1:1', '10.10.10.1/32', 500), line(2, '198.51.100.2:2', '10.10.10.2/32,fd00::2/128'), line(3, '(none)', '(none)')],
      newPeer: [true, false, false],
      sameEndpoint: [true, true, true],
      sameAllowed: [true, true, true],
    },
    {
      name: 'an endpoint moved: only that field is new',
      next: [line(1, '198.51.100.1:1', '10.10.10.1/32'), line(2, '198.51.100.9:9', '10.10.10.2/32,fd00::2/128'), line(3, '(none)', '(none)')],
      newPeer: [false, true, false],
      sameEndpoint: [true, false, true],
      sameAllowed: [true, true, true],
    },
    {
      name: 'allowed IPs changed and lines reordered',
      next: [line(3, '(none)', '10.10.10.3/32'), line(1, '198.51.100.1:1', '10.10.10.1/32'), line(2, '198.51.100.2:2', '10.10.10.2/32,fd00::2/128')],
      newPeer: [true, false, false],
      sameEndpoint: [true, true, true],
      sameAllowed: [false, true, true],
    },
  ];
  for (const { name, next, newPeer, sameEndpoint, sameAllowed } of rows) {
    test(name, () => {
      const parser = new DumpParser('wg0');
      const before = new Map(parser.parse(first).peers.map((p) => [p.publicKey, p]));
      const after = parser.parse(dumpOf(next));
      assert.deepEqual(after, parseDump('wg0', dumpOf(next)));
      assert.deepEqual(after.peers.map((p) => p !== before.get(p.publicKey)), newPeer);
      assert.deepEqual(after.peers.map((p) => p.endpoint === before.get(p.publicKey)!.endpoint), sameEndpoint);
      assert.deepEqual(after.peers.map((p) => p.allowedIps === before.get(p.publicKey)!.allowedIps), sameAllowed);
    });
  }

  test('a malformed line after a good read still throws SB_DUMP_MALFORMED', () => {
    const parser = new DumpParser('wg0');
    parser.parse(first);
    assert.throws(() => parser.parse(dumpOf([line(1, '198.51.100.1:99999', '10.10.10.1/32')])), /line 2: endpoint/);
  });
});

describe('diffStates agrees with diffPeers', () => {
  const A = key(1);
  const B = key(2);
  const C = key(3);
  const spec = (publicKey: string, extra: Partial<PeerSpec> = {}): PeerSpec => ({ publicKey, endpoint: '198.51.100.1:1', allowedIps: ['10.10.10.1/32'], ...extra });
  const rows: { name: string; before: PeerSpec[]; after: PeerSpec[] }[] = [
    { name: 'from nothing', before: [], after: [spec(A), spec(B)] },
    { name: 'no difference (equal values, other objects)', before: [spec(A), spec(B)], after: [spec(A), spec(B)] },
    { name: 'counters only', before: [spec(A)], after: [spec(A, { latestHandshake: 99, rxBytes: 5 })] },
    { name: 'an endpoint moved', before: [spec(A), spec(B)], after: [spec(A), spec(B, { endpoint: '198.51.100.1:2' })] },
    { name: 'allowed IPs changed', before: [spec(A)], after: [spec(A, { allowedIps: ['10.10.10.1/32', '10.10.10.2/32'] })] },
    { name: 'same allowed IPs, other order', before: [spec(A, { allowedIps: ['10.0.0.1/32', '10.0.0.2/32'] })], after: [spec(A, { allowedIps: ['10.0.0.2/32', '10.0.0.1/32'] })] },
    { name: 'a peer left and one came', before: [spec(A), spec(B)], after: [spec(A), spec(C)] },
    { name: 'everyone left', before: [spec(A), spec(B)], after: [] },
  ];
  for (const { name, before, after } of rows) {
    test(name, () => {
      const old = diffPeers(diffPeers(new Map(), device(FANG, before)).fingerprints, device(FANG, after));
      const previous = diffStates(new Map(), device(FANG, before)).byKey;
      const diff = diffStates(previous, device(FANG, after));
      assert.deepEqual({ changed: diff.changed, removed: diff.removed }, { changed: old.changed, removed: old.removed });
    });
  }
});

/** The asker as the seed's code found it: a scan for the longest match. */
function scanForAsker(state: DeviceState, source: IpAddress): PeerState | undefined {
  let best: { peer: PeerState; length: number } | undefined;
  for (const p of state.peers) {
    const match = longestMatch(p.allowedIps, source);
    if (match && (!best || match.length > best.length)) best = { peer: p, length: match.length };
  }
  return best?.peer;
}

describe('AskerIndex finds what a scan finds', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    test(`random prefixes, seed ${seed}`, () => {
      const random = seededRandom(seed);
      const octet = () => Math.floor(random() * 4);
      const peers: PeerSpec[] = [];
      const used = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const allowed: string[] = [];
        for (let j = 0; j < 1 + Math.floor(random() * 3); j++) {
          const v4 = random() < 0.7;
          const length = v4 ? pick(random, [0, 8, 16, 24, 30, 32, 32, 32]) : pick(random, [48, 64, 127, 128, 128]);
          const text = v4 ? `10.${octet()}.${octet()}.${octet()}/${length}` : `fd00::${octet()}:${octet()}/${length}`;
          const canonical = `${prefix(text).address.value}/${length}/${v4}`;
          if (!used.has(canonical)) {
            used.add(canonical);
            allowed.push(text);
          }
        }
        peers.push({ publicKey: randomKey(random), allowedIps: allowed });
      }
      const state = device(FANG, peers);
      const index = new AskerIndex(state.peers);
      for (let i = 0; i < 400; i++) {
        const sourceText = random() < 0.6 ? `10.${octet()}.${octet()}.${octet()}` : random() < 0.5 ? `fd00::${octet()}:${octet()}` : `::ffff:10.${octet()}.${octet()}.${octet()}`;
        const source = parseIp(sourceText)!;
        assert.equal(index.find(source)?.publicKey, scanForAsker(state, source)?.publicKey, sourceText);
      }
    });
  }
});

describe('PeerListEncoder gives what serializePeerList(buildPeerList(...)) gives', () => {
  const random = seededRandom(9);
  const keys = Array.from({ length: 6 }, (_, i) => key(i + 1));
  const state = device(
    FANG,
    keys.map((k, i) => ({ publicKey: k, endpoint: i === 2 ? null : `198.51.100.${i + 1}:${4000 + i}`, allowedIps: i === 3 ? [] : [`10.10.10.${i + 1}/32`, `fd00::${i + 1}/128`], latestHandshake: 1000 + i })),
  );
  const reports = new Map<WireGuardKey, PeerReport>([
    [keys[0]!, { listenPort: 51820, candidates: [endpoint('192.168.1.2:51820')], seen: [{ publicKey: keys[1]!, endpoint: endpoint('203.0.113.2:1') }], punchRequests: [{ publicKey: keys[4]!, at: 5 }] }],
    [keys[4]!, { listenPort: 1, candidates: [], seen: [{ publicKey: keys[1]!, endpoint: endpoint('203.0.113.2:2') }, { publicKey: keys[0]!, endpoint: endpoint('[2001:db8::1]:7') }] }],
  ]);
  const reference = (state: DeviceState, asker: PeerState, revision: number, delta?: Parameters<typeof buildPeerList>[3]) =>
    canonical(JSON.parse(JSON.stringify(serializePeerList(scopePeerList(buildPeerList(state, asker, revision, delta, reports), () => true, NOW))))) as unknown;

  test('full list, every asker (first, middle, last)', () => {
    const encoder = new PeerListEncoder();
    for (const asker of state.peers) {
      assert.deepEqual(canonical(JSON.parse(encoder.encode(state, asker, 7, undefined, reports, NOW).toString())), reference(state, asker, 7));
    }
  });

  test('deltas, every asker, including one in the changed set and one removed key', () => {
    const encoder = new PeerListEncoder();
    const delta = { since: 6, changed: new Set([keys[5]!, keys[0]!, keys[2]!]), removed: new Set([key(0x55), keys[3]!]) };
    for (const asker of state.peers) {
      assert.deepEqual(canonical(JSON.parse(encoder.encode(state, asker, 7, delta, reports, NOW).toString())), reference(state, asker, 7, delta));
    }
  });

  test('an interface with one peer, asked by it: no entries', () => {
    const lone = device(FANG, [{ publicKey: keys[0]!, allowedIps: ['10.10.10.1/32'] }]);
    const body = JSON.parse(new PeerListEncoder().encode(lone, lone.peers[0]!, 1, undefined, new Map(), NOW).toString()) as { peers: unknown[] };
    assert.deepEqual(body.peers, []);
  });

  test('a new read with a moved peer is encoded anew; the unchanged entries are the same bytes', () => {
    const encoder = new PeerListEncoder();
    encoder.encode(state, state.peers[0]!, 7, undefined, reports, NOW);
    const moved = { ...state, peers: state.peers.map((p, i) => (i === 1 ? { ...p, endpoint: endpoint(`198.51.100.200:${Math.floor(random() * 1000) + 1}`) } : p)) };
    assert.deepEqual(canonical(JSON.parse(encoder.encode(moved, moved.peers[0]!, 8, undefined, reports, NOW).toString())), reference(moved, moved.peers[0]!, 8));
  });
});

describe('the list stays linear in the peers, whatever they report', () => {
  function everyoneSeesEveryone(n: number) {
    const keys = Array.from({ length: n }, (_, i) => {
      const bytes = Buffer.alloc(32, 7);
      bytes.writeUInt32BE(i, 0);
      return bytes.toString('base64');
    });
    const state = device(FANG, keys.map((k, i) => ({ publicKey: k, endpoint: `198.51.100.${(i % 250) + 1}:${1000 + i}`, allowedIps: [`10.20.${i >> 8}.${i & 255}/32`] })));
    const reports = new Map<WireGuardKey, PeerReport>(
      keys.map((k, i) => [k, { listenPort: 51820, candidates: [], seen: keys.filter((other) => other !== k).map((other, j) => ({ publicKey: other, endpoint: endpoint(`203.0.113.${(i + j) % 250}:${2000 + ((i * 7 + j) % 500)}`) })) }]),
    );
    return { state, reports };
  }

  test(`each entry lists at most ${SEEN_BY_LIMIT} observers, at distinct endpoints`, () => {
    const { reports } = everyoneSeesEveryone(60);
    for (const seen of gatherSeenBy(reports).values()) {
      assert.ok(seen.length <= SEEN_BY_LIMIT);
      assert.equal(new Set(seen.map((s) => `${s.endpoint.address.value}:${s.endpoint.port}`)).size, seen.length);
    }
  });

  test('twice the peers, each seeing all the others: about twice the bytes, not four times', () => {
    const size = (n: number) => {
      const { state, reports } = everyoneSeesEveryone(n);
      return new PeerListEncoder().encode(state, state.peers[0]!, 1, undefined, reports, NOW).length;
    };
    const ratio = size(240) / size(120);
    assert.ok(ratio > 1.8 && ratio < 2.3, `ratio ${ratio}`);
  });
});

describe('wgInvocations: large batches never hit the argument limit', () => {
  const change = (i: number, extra: Partial<PeerChange> = {}): PeerChange => ({ publicKey: key(i), endpoint: endpoint(`198.51.100.${(i % 250) + 1}:${1000 + i}`), persistentKeepalive: 25, ...extra });
  const argBytes = (args: readonly string[]) => args.reduce((sum, a) => sum + Buffer.byteLength(a) + 9, 0);

  test('a batch that fits is one wg set, exactly as before', () => {
    const changes = [change(1, { allowedIps: [prefix('10.0.0.1/32')] }), change(2), { publicKey: key(3), remove: true as const }];
    assert.deepEqual(wgInvocations('wg0', changes), [{ args: wgSetArguments('wg0', changes) }]);
  });

  test('an empty batch runs nothing', () => assert.deepEqual(wgInvocations('wg0', []), []));

  test('over the budget: allowed-IP changes in one addconf on stdin, the rest in wg set runs under the budget, in order', () => {
    const changes: PeerChange[] = [];
    for (let i = 0; i < 300; i++) {
      changes.push(i % 3 === 0 ? change(i, { allowedIps: i % 2 ? [] : [prefix(`10.1.${i >> 8}.${i & 255}/32`), prefix('fd00::1/128')] }) : i % 7 === 0 ? { publicKey: key(i), remove: true } : change(i));
    }
    const budget = 4096;
    const runs = wgInvocations('wg0', changes, budget);
    const [config, ...sets] = runs;
    assert.deepEqual(config!.args, ['addconf', 'wg0', 'peers.conf']);
    const viaConfig = changes.filter((c) => !c.remove && c.allowedIps);
    assert.equal(config!.input, addconfText(viaConfig));
    for (const run of sets) {
      assert.equal(run.args[0], 'set');
      assert.equal(run.input, undefined);
      assert.ok(argBytes(run.args) <= budget, `${argBytes(run.args)} bytes`);
    }
    assert.deepEqual(
      sets.flatMap((run) => run.args.slice(2)),
      wgSetArguments('wg0', changes.filter((c) => c.remove || !c.allowedIps)).slice(2),
    );
  });

  test('addconf text: one [Peer] section per change, allowed IPs always written (empty clears them, as wg set does)', () => {
    assert.equal(
      addconfText([
        { publicKey: key(1), endpoint: endpoint('[2001:db8::1]:51820'), persistentKeepalive: 25, allowedIps: [prefix('10.0.0.1/32'), prefix('fd00::1/128')] },
        { publicKey: key(2), allowedIps: [] },
      ]),
      `[Peer]\nPublicKey = ${key(1)}\nEndpoint = [2001:db8::1]:51820\nPersistentKeepalive = 25\nAllowedIPs = 10.0.0.1/32, fd00::1/128\n[Peer]\nPublicKey = ${key(2)}\nAllowedIPs = \n`,
    );
    assert.throws(() => addconfText([{ publicKey: key(1), endpoint: endpoint('192.0.2.1:1') }]), /only changes that set allowed IPs/);
  });

  test('runCommand writes input to stdin', async () => {
    const { stdout } = await runCommand('cat', [], 'hello\n');
    assert.equal(stdout, 'hello\n');
  });
});
