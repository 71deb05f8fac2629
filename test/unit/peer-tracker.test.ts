import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerTracker } from '../../src/client/peer-tracker';
import type { ChangeKind, Plan, PlannedChange } from '../../src/plan/plan';
import type { DeviceState } from '../../src/wireguard/device-state';
import type { WireGuardKey } from '../../src/wireguard/key';
import { device, key, prefix, type PeerSpec } from '../support/fakes';

const SELF = key(0x01);
const FANG = key(0xf0);
const A = key(0x0a);
const B = key(0x0b);
const T = 1_700_000_000;

const FANG_PEER: PeerSpec = { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: 0 };

function change(kind: ChangeKind, publicKey: WireGuardKey, allowedIps?: string[]): PlannedChange {
  return {
    kind,
    publicKey,
    ...(allowedIps ? { allowedIps: allowedIps.map(prefix) } : {}),
    previousEndpoint: null,
    probeAddress: null,
    refusedAllowedIps: [],
    reason: 'test',
    // The tracker reads the change, not the decision behind it.
    decision: { kind: 'keep', publicKey, why: { code: 'in-place' } },
  };
}

function plan(...changes: PlannedChange[]): Plan {
  return { changes, skipped: [], contested: [], decisions: [] };
}

/** The device as the daemon read it before the plan: the fang plus `peers`. */
function before(...peers: PeerSpec[]): DeviceState {
  return device(SELF, [FANG_PEER, ...peers]);
}

const routed = (publicKey: WireGuardKey, extra: Partial<PeerSpec> = {}): PeerSpec => ({
  publicKey,
  endpoint: '198.51.100.10:51820',
  allowedIps: ['10.10.10.10/32'],
  latestHandshake: T - 5,
  persistentKeepalive: 25,
  ...extra,
});
const relayedPeer = (publicKey: WireGuardKey, extra: Partial<PeerSpec> = {}): PeerSpec => routed(publicKey, { allowedIps: [], ...extra });

function observed(tracker: PeerTracker) {
  const { tryingSince, relayedSince } = tracker.observations();
  return { trying: Object.fromEntries(tryingSince ?? []), relayed: Object.fromEntries(relayedSince ?? []) };
}

describe('PeerTracker.record', () => {
  const rows: { name: string; device: DeviceState; plan: Plan; want: ReturnType<typeof observed> }[] = [
    {
      name: 'add-peer with allowed IPs: punching since now',
      device: before(),
      plan: plan(change('add-peer', A, ['10.10.10.10/32'])),
      want: { trying: { [A]: T }, relayed: {} },
    },
    {
      name: 'set-endpoint: punching since now',
      device: before(routed(A)),
      plan: plan(change('set-endpoint', A)),
      want: { trying: { [A]: T }, relayed: {} },
    },
    {
      name: 'add-peer without allowed IPs (relayed first): relayed since now, though the device read before the plan lacks it',
      device: before(),
      plan: plan(change('add-peer', A, [])),
      want: { trying: {}, relayed: { [A]: T } },
    },
    {
      name: 'relay: relayed since now, no longer punching',
      device: before(routed(A, { latestHandshake: T - 1000 })),
      plan: plan(change('relay', A, [])),
      want: { trying: {}, relayed: { [A]: T } },
    },
    {
      name: 'a peer the user configured with an endpoint and no allowed IPs is not taken for a relayed one',
      device: before(relayedPeer(A)),
      plan: plan(),
      want: { trying: {}, relayed: {} },
    },
    {
      name: 'direct-again: a peer leaving the relay in this plan is not registered as relayed',
      device: before(relayedPeer(A)),
      plan: plan(change('direct-again', A, ['10.10.10.10/32'])),
      want: { trying: {}, relayed: {} },
    },
    {
      name: 'a peer with neither endpoint nor allowed IPs is not relayed',
      device: before(relayedPeer(A, { endpoint: null })),
      plan: plan(),
      want: { trying: {}, relayed: {} },
    },
    {
      name: 'a routed peer never heard from, or silent for longer than a session, is being punched',
      device: before(routed(A, { latestHandshake: 0 }), routed(B, { allowedIps: ['10.10.10.11/32'], latestHandshake: T - 181 })),
      plan: plan(),
      want: { trying: { [A]: T, [B]: T }, relayed: {} },
    },
    {
      name: 'a routed peer with a live session, or without an endpoint, is not being punched',
      device: before(routed(A, { latestHandshake: T - 180 }), routed(B, { allowedIps: ['10.10.10.11/32'], endpoint: null, latestHandshake: 0 })),
      plan: plan(),
      want: { trying: {}, relayed: {} },
    },
    {
      name: 'the fang peer is never tracked, whatever the device or plan says',
      device: device(SELF, [{ ...FANG_PEER, allowedIps: [], latestHandshake: 0 }]),
      plan: plan(),
      want: { trying: {}, relayed: {} },
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const tracker = new PeerTracker();
      tracker.record(row.device, row.plan, FANG, T);
      assert.deepEqual(observed(tracker), row.want);
    });
  }

  test('a peer of ours left relayed by an earlier run (endpoint, no allowed IPs) is relayed since now', () => {
    const tracker = new PeerTracker([A]);
    tracker.record(before(relayedPeer(A)), plan(), FANG, T);
    assert.deepEqual(observed(tracker), { trying: {}, relayed: { [A]: T } });
    assert.equal(tracker.get(A)?.origin, 'ours');
  });

  for (const row of rows) {
    test(`${row.name} (relayed views agree)`, () => {
      const tracker = new PeerTracker();
      tracker.record(row.device, row.plan, FANG, T);
      assert.deepEqual(observed(tracker), row.want);
      assert.equal(tracker.relayedCount, Object.keys(row.want.relayed).length);
      assert.deepEqual(Object.fromEntries(tracker.relayedPeers()), row.want.relayed);
    });
  }

  test('punching ends with a handshake at or after it began, not with an older one', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: T - 1000 })), plan(change('set-endpoint', A)), FANG, T);
    tracker.record(before(routed(A, { latestHandshake: T - 1000 })), plan(), FANG, T + 3);
    assert.deepEqual(observed(tracker).trying, { [A]: T }, 'still punching since the first round');
    tracker.record(before(routed(A, { latestHandshake: T })), plan(), FANG, T + 6);
    assert.deepEqual(observed(tracker).trying, {}, 'a handshake in the very second it began counts');
  });

  test('a peer re-pointed while its session lives is direct as soon as a packet comes back, without a new handshake', () => {
    // WireGuard rekeys only every two minutes: waiting for a handshake here would relay a
    // peer whose other side reaches us directly, and break the pair.
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 1000 })), plan(change('set-endpoint', A)), FANG, T);
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 1000 })), plan(), FANG, T + 1);
    assert.deepEqual(observed(tracker).trying, { [A]: T }, 'nothing came back yet');
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 1032 })), plan(), FANG, T + 2);
    assert.deepEqual(observed(tracker).trying, {}, 'a packet came back through the new endpoint');
  });

  test('bytes received before the punch do not count as its answer', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 500 })), plan(), FANG, T - 1);
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 1000 })), plan(change('set-endpoint', A)), FANG, T);
    tracker.record(before(routed(A, { latestHandshake: T - 30, rxBytes: 1000 })), plan(), FANG, T + 9);
    assert.deepEqual(observed(tracker).trying, { [A]: T });
  });

  test('a peer punched again after a handshake starts a new punching time', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(), FANG, T);
    tracker.record(before(routed(A, { latestHandshake: T + 1 })), plan(), FANG, T + 2);
    assert.deepEqual(observed(tracker).trying, {});
    tracker.record(before(routed(A, { latestHandshake: T + 1 })), plan(change('set-endpoint', A)), FANG, T + 500);
    assert.deepEqual(observed(tracker).trying, { [A]: T + 500 });
  });

  test('a relayed peer keeps the time its relay began across rounds, and is forgotten once it leaves the interface', () => {
    const tracker = new PeerTracker();
    tracker.record(before(), plan(change('add-peer', A, [])), FANG, T);
    tracker.record(before(relayedPeer(A)), plan(), FANG, T + 10);
    assert.deepEqual(observed(tracker).relayed, { [A]: T });
    tracker.record(before(), plan(), FANG, T + 20);
    assert.deepEqual(observed(tracker).relayed, {});
  });

  test('direct-again ends the relay; a later relay starts a new one', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(change('relay', A, [])), FANG, T);
    tracker.record(before(relayedPeer(A, { latestHandshake: T + 4 })), plan(change('direct-again', A, ['10.10.10.10/32'])), FANG, T + 5);
    assert.deepEqual(observed(tracker).relayed, {});
    tracker.record(before(routed(A, { latestHandshake: T + 4 })), plan(), FANG, T + 6);
    assert.deepEqual(observed(tracker).relayed, {}, 'the routed peer is not relayed');
    tracker.record(before(routed(A, { latestHandshake: T + 4 })), plan(change('relay', A, [])), FANG, T + 400);
    assert.deepEqual(observed(tracker).relayed, { [A]: T + 400 });
  });

  test('activity: the time the rx counter last grew, 0 until it does', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { rxBytes: 100 })), plan(), FANG, T);
    assert.deepEqual(Object.fromEntries(tracker.observations().activity ?? []), { [A]: 0 });
    tracker.record(before(routed(A, { rxBytes: 150 })), plan(), FANG, T + 7);
    tracker.record(before(routed(A, { rxBytes: 150 })), plan(), FANG, T + 9);
    assert.deepEqual(Object.fromEntries(tracker.observations().activity ?? []), { [A]: T + 7 });
  });

  test('observations are copies', () => {
    const tracker = new PeerTracker([A]);
    tracker.record(before(relayedPeer(A), routed(B, { latestHandshake: T - 1000 })), plan(change('set-endpoint', B)), FANG, T);
    const first = tracker.observations();
    (first.relayedSince as Map<WireGuardKey, number>).clear();
    (first.tryingSince as Map<WireGuardKey, number>).clear();
    assert.deepEqual(observed(tracker), { trying: { [B]: T }, relayed: { [A]: T } });
  });
});

describe('PeerTracker.takeRepunches', () => {
  test('a relayed peer is due 5 s after the relay, then 10, 20, 40, 80 s later, then every 120 s', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(change('relay', A, [])), FANG, T);
    const due: number[] = [];
    for (let now = T; now <= T + 400; now++) if (tracker.takeRepunches(now).includes(A)) due.push(now - T);
    assert.deepEqual(due, [5, 15, 35, 75, 155, 275, 395]);
  });

  test('each relayed peer on its own schedule; taking marks them, so asking twice gives nothing', () => {
    const tracker = new PeerTracker([A]);
    tracker.record(before(relayedPeer(A)), plan(), FANG, T);
    tracker.record(before(relayedPeer(A)), plan(change('add-peer', B, [])), FANG, T + 3);
    assert.deepEqual(tracker.takeRepunches(T + 4), []);
    assert.deepEqual(tracker.takeRepunches(T + 5), [A]);
    assert.deepEqual(tracker.takeRepunches(T + 5), []);
    assert.deepEqual(tracker.takeRepunches(T + 8), [B]);
    assert.deepEqual(tracker.takeRepunches(T + 15), [A]);
  });

  test('a peer that is no longer relayed is not punched', () => {
    const tracker = new PeerTracker();
    tracker.record(before(relayedPeer(A)), plan(change('direct-again', A, ['10.10.10.10/32'])), FANG, T);
    assert.deepEqual(tracker.takeRepunches(T + 1000), []);
  });
});

describe('PeerTracker.readyForDirect', () => {
  const rows = [
    { name: 'a handshake after the relay began', handshake: T + 3, want: [A] },
    { name: 'a handshake in the very second it began', handshake: T, want: [A] },
    { name: 'only a handshake from before', handshake: T - 1, want: [] },
    { name: 'never a handshake', handshake: 0, want: [] },
  ];
  for (const { name, handshake, want } of rows) {
    test(name, () => {
      const tracker = new PeerTracker();
      tracker.record(before(routed(A, { latestHandshake: 0 })), plan(change('relay', A, [])), FANG, T);
      assert.deepEqual(tracker.readyForDirect(before(relayedPeer(A, { latestHandshake: handshake }))), want);
    });
  }

  test('peers that are not relayed are never ready, whatever their handshake', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(B)), plan(), FANG, T);
    assert.deepEqual(tracker.readyForDirect(before(routed(B, { latestHandshake: T + 10 }))), []);
  });
});

describe('PeerTracker.oneWay (we send, it does not answer)', () => {
  /** Feeds the tracker one read per second: our tx and its rx at each second after T. */
  function run(reads: { tx: number; rx: number }[], extra: Partial<PeerSpec> = {}): WireGuardKey[] {
    const tracker = new PeerTracker();
    let last: DeviceState = before();
    reads.forEach((read, i) => {
      last = before(routed(A, { latestHandshake: T - 100, rxBytes: read.rx, txBytes: read.tx, ...extra }));
      tracker.record(last, plan(), FANG, T + i);
    });
    return tracker.oneWay(last, FANG, T + reads.length - 1);
  }
  const rows: { name: string; reads: { tx: number; rx: number }[]; extra?: Partial<PeerSpec>; want: WireGuardKey[] }[] = [
    { name: 'sending for 4 s, nothing heard: one-way', reads: [{ tx: 0, rx: 0 }, { tx: 1, rx: 1 }, { tx: 2, rx: 1 }, { tx: 3, rx: 1 }, { tx: 4, rx: 1 }, { tx: 5, rx: 1 }], want: [A] },
    { name: 'both directions grow: not one-way', reads: [0, 1, 2, 3, 4, 5].map((n) => ({ tx: n, rx: n })), want: [] },
    { name: 'nothing sent: idle, not one-way', reads: [0, 1, 2, 3, 4, 5].map(() => ({ tx: 0, rx: 0 })), want: [] },
    { name: 'silence just began (heard 2 s ago): not yet', reads: [{ tx: 0, rx: 0 }, { tx: 1, rx: 1 }, { tx: 2, rx: 2 }, { tx: 3, rx: 3 }, { tx: 4, rx: 3 }, { tx: 5, rx: 3 }], want: [] },
    { name: 'stopped sending 4 s ago: not one-way', reads: [{ tx: 0, rx: 0 }, { tx: 1, rx: 0 }, { tx: 1, rx: 0 }, { tx: 1, rx: 0 }, { tx: 1, rx: 0 }, { tx: 1, rx: 0 }], want: [] },
    { name: 'a relayed peer (no allowed IPs) is never one-way', reads: [0, 1, 2, 3, 4, 5].map((n) => ({ tx: n, rx: 0 })), extra: { allowedIps: [] }, want: [] },
    { name: 'a fresh handshake counts as hearing from it', reads: [0, 1, 2, 3, 4, 5].map((n) => ({ tx: n, rx: 0 })), extra: { latestHandshake: T + 4 }, want: [] },
  ];
  for (const row of rows) test(row.name, () => assert.deepEqual(run(row.reads, row.extra), row.want));
});

describe('PeerTracker: peers this client added', () => {
  test('added peers are remembered, handed to the planner, and forgotten once removed', () => {
    const tracker = new PeerTracker([B]);
    tracker.record(before(relayedPeer(B)), plan(change('add-peer', A, ['10.10.10.10/32'])), FANG, T);
    assert.deepEqual(tracker.addedPeers().sort(), [A, B].sort());
    assert.deepEqual([...(tracker.observations().addedByUs ?? [])].sort(), [A, B].sort());
    tracker.record(before(routed(A), relayedPeer(B)), plan({ ...change('remove-peer', B), remove: true }), FANG, T + 1);
    assert.deepEqual(tracker.addedPeers(), [A]);
    assert.deepEqual(tracker.takeRepunches(T + 100), [], 'a peer removed this round is never punched (that would re-create it)');
  });
});

test('PeerTracker forgets a peer it added once it is gone from the interface (recreated by the user, it is theirs)', () => {
  const tracker = new PeerTracker([A, B]);
  tracker.record(before(routed(A)), plan(), FANG, T);
  assert.deepEqual(tracker.addedPeers(), [A]);
});

describe("PeerTracker: the user's peers it relays (originals kept for the state file)", () => {
  const relayDecision = (publicKey: WireGuardKey, viaFang: boolean): PlannedChange => ({
    ...change('relay', publicKey, []),
    decision: { kind: 'relay', publicKey, endpoint: { address: { family: 4, value: 0n }, port: 1 }, triedSeconds: 8, previous: null, origin: 'users', original: [prefix('10.10.10.10/32')], viaFang },
  });
  const original = (tracker: PeerTracker) => tracker.changedPeers().map((c) => ({ key: c.publicKey, since: c.since, allowedIps: c.allowedIps.map((p) => `${p.length}`), viaFang: c.viaFang }));

  test('a relay of a user peer keeps its allowed IPs until direct-again', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(relayDecision(A, true)), FANG, T);
    assert.deepEqual(original(tracker), [{ key: A, since: T, allowedIps: ['32'], viaFang: true }]);
    assert.deepEqual([...(tracker.observations().changed ?? new Map()).keys()], [A]);
    tracker.record(before(relayedPeer(A, { latestHandshake: T + 3 })), plan(change('direct-again', A, ['10.10.10.10/32'])), FANG, T + 3);
    assert.deepEqual(original(tracker), []);
  });

  test('after a restart: a peer the state says is relayed and that still routes nothing goes on relayed, with its originals and since', () => {
    const tracker = new PeerTracker([], [{ publicKey: A, since: T - 100, allowedIps: [prefix('10.10.10.10/32')], viaFang: false }]);
    assert.deepEqual(Object.fromEntries(tracker.relayedPeers()), { [A]: T - 100 }, 'known as relayed before the first read');
    tracker.record(before(relayedPeer(A)), plan(), FANG, T);
    assert.deepEqual(original(tracker), [{ key: A, since: T - 100, allowedIps: ['32'], viaFang: false }]);
    assert.equal(tracker.get(A)?.origin, 'users');
    assert.deepEqual(tracker.takeRepunches(T + 5), [A], 'and its direct path is retried');
  });

  test('after a restart: a peer routing again (wg-quick up restored it) has nothing left to undo', () => {
    const tracker = new PeerTracker([], [{ publicKey: A, since: T - 100, allowedIps: [prefix('10.10.10.10/32')], viaFang: false }]);
    tracker.record(before(routed(A)), plan(), FANG, T);
    assert.deepEqual(original(tracker), []);
    assert.equal(tracker.get(A)?.link.kind, 'direct');
  });

  test('an apply that failed half-way: a known peer left routing nothing is relayed with the originals written ahead', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(), FANG, T);
    tracker.applyFailed([{ publicKey: A, since: T + 1, allowedIps: [prefix('10.10.10.10/32')], viaFang: false }]);
    assert.deepEqual(original(tracker), [{ key: A, since: T + 1, allowedIps: ['32'], viaFang: false }], 'kept for the state file meanwhile');
    tracker.record(before(relayedPeer(A)), plan(), FANG, T + 2);
    assert.deepEqual(original(tracker), [{ key: A, since: T + 1, allowedIps: ['32'], viaFang: false }]);
    assert.equal(tracker.get(A)?.link.kind, 'relayed');
  });

  test('an apply that failed before the peer changed: nothing to undo', () => {
    const tracker = new PeerTracker();
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(), FANG, T);
    tracker.applyFailed([{ publicKey: A, since: T + 1, allowedIps: [prefix('10.10.10.10/32')], viaFang: false }]);
    tracker.record(before(routed(A, { latestHandshake: 0 })), plan(), FANG, T + 2);
    assert.deepEqual(original(tracker), []);
  });

  test('after a restart: a peer gone from the interface is forgotten', () => {
    const tracker = new PeerTracker([], [{ publicKey: A, since: T - 100, allowedIps: [prefix('10.10.10.10/32')], viaFang: true }]);
    tracker.record(before(), plan(), FANG, T);
    assert.deepEqual(original(tracker), []);
  });
});
