import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { scopePeerList } from '../../src/fang/list-scope';
import { PeerListEncoder } from '../../src/fang/peer-list-encoder';
import { buildPeerList, type PeerListDelta } from '../../src/fang/peer-list-view';
import type { PeerReport } from '../../src/peer-list/peer-list';
import { serializePeerList } from '../../src/peer-list/serialize';
import type { WireGuardKey } from '../../src/wireguard/key';
import { device, endpoint, key, pick, seededRandom, type PeerSpec } from '../support/fakes';

const NOW = 1_700_000_000;
const FANG = key(0xf0);

/** Peers sorted by key: the encoder puts entries made for one asker last. */
function canonical(body: unknown): unknown {
  const doc = body as { peers: { publicKey: string }[] };
  return { ...doc, peers: [...doc.peers].sort((a, b) => a.publicKey.localeCompare(b.publicKey)) };
}

describe('PeerListEncoder', () => {
  test('encodes the same document as scopePeerList(buildPeerList(...)) for every asker, with and without deltas (200 random networks)', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 200; round++) {
      const count = 1 + Math.floor(random() * 6);
      const keys = Array.from({ length: count }, (_, i) => key(i + 1));
      const specs: PeerSpec[] = keys.map((k, i) => ({
        publicKey: k,
        endpoint: random() < 0.8 ? `203.0.113.${i + 1}:${40000 + Math.floor(random() * 1000)}` : null,
        allowedIps: [`10.10.10.${i + 2}/32`],
        latestHandshake: random() < 0.5 ? NOW - Math.floor(random() * 300) : 0,
      }));
      const state = device(FANG, specs);
      const reports = new Map<WireGuardKey, PeerReport>();
      for (const reporter of keys) {
        if (random() < 0.4) continue;
        const others = keys.filter((k) => k !== reporter);
        reports.set(reporter, {
          listenPort: 51820,
          candidates: [endpoint(`192.168.1.${Math.floor(random() * 200) + 2}:51820`)],
          seen: others.filter(() => random() < 0.5).map((k) => ({ publicKey: k, endpoint: endpoint(`203.0.113.99:${1000 + Math.floor(random() * 5)}`) })),
          ...(random() < 0.5 && others.length > 0
            ? { punchRequests: others.filter(() => random() < 0.6).map((k) => ({ publicKey: k, at: NOW - Math.floor(random() * 60) })) }
            : {}),
        });
      }
      const encoder = new PeerListEncoder();
      const delta: PeerListDelta | undefined =
        random() < 0.5 ? undefined : { since: 3, changed: new Set(keys.filter(() => random() < 0.5)), removed: new Set(random() < 0.3 ? [key(99)] : []) };
      for (const asker of state.peers) {
        const want = serializePeerList(scopePeerList(buildPeerList(state, asker, 5, delta, reports), () => true, NOW));
        const got: unknown = JSON.parse(encoder.encode(state, asker, 5, delta, reports, NOW).toString('utf8'));
        assert.deepEqual(canonical(got), canonical(JSON.parse(JSON.stringify(want))), `round ${round}, asker ${pick(random, [asker.publicKey])}`);
      }
    }
  });

  test('a punch request reaches only the peer it names', () => {
    const [A, B, C] = [key(1), key(2), key(3)];
    const state = device(FANG, [
      { publicKey: A, endpoint: '203.0.113.1:1', allowedIps: ['10.10.10.2/32'] },
      { publicKey: B, endpoint: '203.0.113.2:1', allowedIps: ['10.10.10.3/32'] },
      { publicKey: C, endpoint: '203.0.113.3:1', allowedIps: ['10.10.10.4/32'] },
    ]);
    const reports = new Map<WireGuardKey, PeerReport>([[A, { listenPort: 51820, candidates: [], seen: [], punchRequests: [{ publicKey: B, at: NOW }] }]]);
    const encoder = new PeerListEncoder();
    const requestsSeenBy = (asker: number) => {
      const body = JSON.parse(encoder.encode(state, state.peers[asker]!, 1, undefined, reports, NOW).toString('utf8')) as { peers: { publicKey: string; punchRequests?: unknown[] }[] };
      return body.peers.filter((p) => p.punchRequests).map((p) => p.publicKey);
    };
    assert.deepEqual(requestsSeenBy(1), [A]);
    assert.deepEqual(requestsSeenBy(2), []);
    // Expired after the fang's TTL.
    const late = JSON.parse(encoder.encode(state, state.peers[1]!, 1, undefined, reports, NOW + 31).toString('utf8')) as { peers: { punchRequests?: unknown[] }[] };
    assert.ok(late.peers.every((p) => !p.punchRequests));
  });
});
