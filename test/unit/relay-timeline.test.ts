/**
 * Relay and repunch timing on a fake clock (issue 7 item 9): the planner, the
 * tracker and the repunch schedule driven round by round, as the daemon's
 * local check drives them every 2 s, against an in-memory interface. No
 * sleeping: time is a number the test advances.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { repunchChanges } from '../../src/client/daemon';
import { PeerTracker } from '../../src/client/peer-tracker';
import { formatPrefix } from '../../src/ip/address';
import type { PeerList } from '../../src/peer-list/peer-list';
import { planPeerChanges, type Policy } from '../../src/plan/plan';
import type { DeviceState } from '../../src/wireguard/device-state';
import { applyToDevice, device, endpoint, ip, key, prefix, type PeerSpec } from '../support/fakes';

const SELF = key(0x01);
const FANG = key(0xf0);
const PEER = key(0x03);
const T0 = 1_700_000_000;
const RELAY_AFTER = 8;
const POLICY: Policy = { fangPublicKey: FANG, serverAddress: ip('10.10.10.1'), keepaliveSeconds: 25, flowingWithinSeconds: 180, relayAfterSeconds: RELAY_AFTER };
const LIST: PeerList = {
  version: 1,
  fang: { publicKey: FANG },
  you: { publicKey: SELF, endpoint: endpoint('203.0.113.10:51820') },
  peers: [{ publicKey: PEER, endpoint: endpoint('203.0.113.20:51820'), allowedIps: [prefix('10.10.10.3/32')], latestHandshake: T0 }],
};

interface Event {
  readonly at: number;
  readonly what: string;
}

/**
 * Runs rounds every `stepSeconds` from T0 to T0 + `seconds`. `handshakeAt`
 * says when WireGuard completes a direct handshake with PEER (a function of
 * the clock and of whether a punch was just made), or never.
 */
function run(start: DeviceState, seconds: number, options: { stepSeconds?: number; handshakeAt?: (now: number, punched: boolean) => boolean; addedBefore?: string[] } = {}): { events: Event[]; state: DeviceState } {
  const tracker = new PeerTracker(options.addedBefore ?? []);
  let state = start;
  const events: Event[] = [];
  const step = options.stepSeconds ?? 2;
  for (let now = T0; now <= T0 + seconds; now += step) {
    const plan = planPeerChanges(state, LIST, POLICY, new Date(now * 1000), tracker.observations());
    tracker.record(state, plan, FANG, now);
    state = applyToDevice(state, plan.changes);
    for (const change of plan.changes) events.push({ at: now - T0, what: change.kind });
    const due = tracker.takeRepunches(now);
    const kicks = repunchChanges(state, due, POLICY.keepaliveSeconds);
    state = applyToDevice(state, kicks);
    for (const key of due) events.push({ at: now - T0, what: key === PEER ? 'repunch' : `repunch ${key}` });
    const punched = plan.changes.length > 0 || due.length > 0;
    if (options.handshakeAt?.(now, punched)) state = { ...state, peers: state.peers.map((p) => (p.publicKey === PEER ? { ...p, latestHandshake: now } : p)) };
  }
  return { events, state };
}

const FANG_PEER: PeerSpec = { publicKey: FANG, endpoint: '203.0.113.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: T0 - 1, persistentKeepalive: 25 };

describe('relay timeline on a fake clock', () => {
  test('a peer the client adds: relayed first, repunched at 5, 15, 35, 75, 155 s while punching fails', () => {
    const { events, state } = run(device(SELF, [FANG_PEER]), 200, { stepSeconds: 1 });
    assert.deepEqual(events, [
      { at: 0, what: 'add-peer' },
      { at: 5, what: 'repunch' },
      { at: 15, what: 'repunch' },
      { at: 35, what: 'repunch' },
      { at: 75, what: 'repunch' },
      { at: 155, what: 'repunch' },
    ]);
    assert.deepEqual(state.peers.find((p) => p.publicKey === PEER)?.allowedIps, [], 'still relayed');
  });

  test('a peer the client adds goes direct in the round after its first handshake, and is not repunched after', () => {
    const { events, state } = run(device(SELF, [FANG_PEER]), 60, { stepSeconds: 1, handshakeAt: (now) => now === T0 + 16 });
    assert.deepEqual(events, [
      { at: 0, what: 'add-peer' },
      { at: 5, what: 'repunch' },
      { at: 15, what: 'repunch' },
      { at: 17, what: 'direct-again' },
    ]);
    assert.deepEqual(state.peers.find((p) => p.publicKey === PEER)?.allowedIps.map(formatPrefix), ['10.10.10.3/32']);
  });

  test('a routed peer whose session died: punched, relayed exactly relay-after later, repunched on schedule', () => {
    const start = device(SELF, [FANG_PEER, { publicKey: PEER, endpoint: '203.0.113.20:51820', allowedIps: ['10.10.10.3/32'], latestHandshake: T0 - 1000, persistentKeepalive: 25 }]);
    const { events } = run(start, 40, { stepSeconds: 1, addedBefore: [PEER] });
    assert.deepEqual(events, [
      { at: RELAY_AFTER, what: 'relay' },
      { at: RELAY_AFTER + 5, what: 'repunch' },
      { at: RELAY_AFTER + 15, what: 'repunch' },
      { at: RELAY_AFTER + 35, what: 'repunch' },
    ].filter((e) => e.at <= 40));
  });

  test("a listed peer of the user's (S2), never handshaken: re-created relayed first, its own allowed IPs back at the handshake", () => {
    const start = device(SELF, [FANG_PEER, { publicKey: PEER, endpoint: null, allowedIps: ['10.10.10.3/32'], latestHandshake: 0, persistentKeepalive: 5 }]);
    const { events, state } = run(start, 20, { stepSeconds: 2, handshakeAt: (now) => now === T0 + 2 });
    assert.deepEqual(events, [
      { at: 0, what: 'rebuild-peer' },
      { at: 4, what: 'direct-again' },
    ]);
    const entry = state.peers.find((p) => p.publicKey === PEER)!;
    assert.deepEqual([entry.allowedIps.map(formatPrefix), entry.persistentKeepalive], [['10.10.10.3/32'], 5], 'exactly as configured');
  });

  test("a listed peer of the user's behind a NAT that defeats the punch stays relayed, on the repunch schedule, its originals kept", () => {
    const start = device(SELF, [FANG_PEER, { publicKey: PEER, endpoint: null, allowedIps: ['10.10.10.3/32'], latestHandshake: 0, persistentKeepalive: 5 }]);
    const { events, state } = run(start, 40, { stepSeconds: 1 });
    assert.deepEqual(events, [
      { at: 0, what: 'rebuild-peer' },
      { at: 5, what: 'repunch' },
      { at: 15, what: 'repunch' },
      { at: 35, what: 'repunch' },
    ]);
    const entry = state.peers.find((p) => p.publicKey === PEER)!;
    assert.deepEqual([entry.allowedIps, entry.persistentKeepalive], [[], 5], 'relayed; the repunches leave its keepalive as it was');
  });
});
