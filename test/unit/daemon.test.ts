import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ActivityTracker, repunchChanges, retryDelayMs, runClientDaemon, sleep, warnsAfter, type DaemonOptions } from '../../src/client/daemon';
import type { PeerListRequest, SyncDeps } from '../../src/client/sync';
import { formatIp, formatPrefix } from '../../src/ip/address';
import { SnakebiteError } from '../../src/errors';
import type { DeviceState, PeerChange } from '../../src/wireguard/device-state';
import type { WireGuardDriver } from '../../src/wireguard/driver';
import { captureLogger, device, FakeDriver, ip, key, within } from '../support/fakes';

describe('retryDelayMs', () => {
  const rows = [
    { name: 'first failure, lowest jitter', failures: 1, interval: 30_000, random: 0, want: 500 },
    { name: 'first failure, highest jitter', failures: 1, interval: 30_000, random: 1, want: 1000 },
    { name: 'doubling', failures: 3, interval: 30_000, random: 1, want: 4000 },
    { name: 'capped at the interval', failures: 10, interval: 30_000, random: 1, want: 30_000 },
    { name: 'capped at the interval, low jitter', failures: 10, interval: 30_000, random: 0, want: 15_000 },
    { name: 'a short interval caps the first retry', failures: 1, interval: 50, random: 1, want: 50 },
    { name: 'very many failures stay finite', failures: 10_000, interval: 3_600_000, random: 1, want: 3_600_000 },
    { name: 'the exponent stops at 2^16', failures: 100, interval: Number.MAX_SAFE_INTEGER, random: 1, want: 1000 * 2 ** 16 },
  ];
  for (const { name, failures, interval, random, want } of rows) {
    test(name, () => assert.equal(retryDelayMs(failures, interval, () => random), want));
  }

  test('while the fang machine answers, never above a second however many failures', () => {
    for (const failures of [1, 5, 40]) assert.equal(retryDelayMs(failures, 30_000, () => 1, true), 1000);
    assert.equal(retryDelayMs(3, 200, () => 1, true), 200);
  });

  test('always within [base/2, base] and never above the interval', () => {
    for (let failures = 1; failures < 40; failures++) {
      for (const r of [0, 0.25, 0.5, 0.999]) {
        const delay = retryDelayMs(failures, 60_000, () => r);
        const base = Math.min(60_000, 1000 * 2 ** (failures - 1));
        assert.ok(delay >= base / 2 && delay <= base && delay <= 60_000, `${failures} failures, random ${r}: ${delay}`);
      }
    }
  });
});

describe('warnsAfter', () => {
  test('the first failure and then powers of two', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17].map(warnsAfter), [true, true, false, true, false, false, false, true, false, true, false]);
  });
});

describe('ActivityTracker', () => {
  const A = key(1);
  const B = key(2);
  const at = (rxA: number, rxB?: number) =>
    device(key(9), [{ publicKey: A, rxBytes: rxA, allowedIps: ['10.0.0.1/32'] }, ...(rxB === undefined ? [] : [{ publicKey: B, rxBytes: rxB, allowedIps: ['10.0.0.2/32'] }])]);

  test('the first observation is not a sign of life', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(500), 100);
    assert.deepEqual(tracker.snapshot(), new Map([[A, 0]]));
  });

  test('growth of the rx counter is', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(500), 100);
    tracker.observe(at(600), 130);
    assert.equal(tracker.snapshot().get(A), 130);
  });

  test('no growth keeps the last time heard', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(500), 100);
    tracker.observe(at(600), 130);
    tracker.observe(at(600), 160);
    assert.equal(tracker.snapshot().get(A), 130);
  });

  test('a counter reset (interface recreated) is not a sign of life, and growth after it is', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(500), 100);
    tracker.observe(at(600), 130);
    tracker.observe(at(10), 160);
    assert.equal(tracker.snapshot().get(A), 130);
    tracker.observe(at(20), 190);
    assert.equal(tracker.snapshot().get(A), 190);
  });

  test('a peer that appears later starts at 0', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(500), 100);
    tracker.observe(at(600, 7), 130);
    assert.deepEqual(tracker.snapshot(), new Map([[A, 130], [B, 0]]));
  });

  test('snapshot is a copy', () => {
    const tracker = new ActivityTracker();
    tracker.observe(at(1), 1);
    tracker.snapshot().set(A, 999);
    assert.equal(tracker.snapshot().get(A), 0);
  });
});

describe('repunchChanges', () => {
  const A = key(1);
  const B = key(2);
  const C = key(3);
  const state = device(key(9), [
    { publicKey: A, endpoint: '198.51.100.1:51820', allowedIps: [], persistentKeepalive: 25 },
    { publicKey: B, endpoint: '[2001:db8::2]:51820', allowedIps: [], persistentKeepalive: null },
    { publicKey: C, endpoint: null, allowedIps: [], persistentKeepalive: 25 },
  ]);
  const rows: { name: string; keys: string[]; want: PeerChange[] }[] = [
    { name: 'keepalive off, then back to its own keepalive', keys: [A], want: [{ publicKey: A, persistentKeepalive: 0 }, { publicKey: A, persistentKeepalive: 25 }] },
    { name: 'a peer without keepalive gets the default', keys: [B], want: [{ publicKey: B, persistentKeepalive: 0 }, { publicKey: B, persistentKeepalive: 21 }] },
    { name: 'a peer without an endpoint cannot be punched: nothing', keys: [C], want: [] },
    { name: 'a key the interface does not have: nothing', keys: [key(7)], want: [] },
    { name: 'no keys: nothing', keys: [], want: [] },
    {
      name: 'two changes per due peer, in the order given',
      keys: [B, C, A],
      want: [
        { publicKey: B, persistentKeepalive: 0 },
        { publicKey: B, persistentKeepalive: 21 },
        { publicKey: A, persistentKeepalive: 0 },
        { publicKey: A, persistentKeepalive: 25 },
      ],
    },
  ];
  for (const { name, keys, want } of rows) {
    test(name, () => assert.deepEqual(repunchChanges(state, keys, 21), want));
  }

  test('applied, the keepalive ends where it was (or at the default) and nothing else changes', async () => {
    const driver = new FakeDriver(state);
    await driver.applyPeerChanges(repunchChanges(state, [A, B, C], 21));
    assert.deepEqual(driver.batches.length, 1, 'one batch');
    assert.deepEqual(driver.state.peers.map((p) => [p.publicKey, p.persistentKeepalive, p.allowedIps.length, p.endpoint !== null]), [
      [A, 25, 0, true],
      [B, 21, 0, true],
      [C, 25, 0, false],
    ]);
  });
});

describe('sleep', () => {
  test('resolves at once when already aborted', async () => {
    const started = Date.now();
    // Far below the 10 s asked for, with room for a loaded machine.
    await within(5000, sleep(10_000, AbortSignal.abort()));
    assert.ok(Date.now() - started < 5000);
  });

  test('resolves early on abort', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    await within(5000, sleep(10_000, controller.signal));
    assert.ok(Date.now() - started < 5000);
  });

  test('resolves after the time otherwise', async () => {
    const started = Date.now();
    await sleep(30, new AbortController().signal);
    assert.ok(Date.now() - started >= 25);
  });
});

describe('runClientDaemon', () => {
  const SELF = key(1);
  const FANG = key(0xf0);
  const PEER = key(3);
  const OTHER = key(4);
  const NOW_SECONDS = 1_700_000_000;

  /**
   * A driver whose device never takes the changes (so the plan repeats) and
   * whose rx counter for PEER grows by `rxStep` per read.
   */
  class StubbornDriver implements WireGuardDriver {
    readonly interfaceName = 'wg0';
    reads = 0;
    batches: PeerChange[][] = [];
    constructor(
      private readonly rxStep: number,
      private readonly peerHandshake = NOW_SECONDS - 1000,
    ) {}
    async readDevice(): Promise<DeviceState> {
      this.reads++;
      return device(SELF, [
        { publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW_SECONDS - 5 },
        { publicKey: PEER, endpoint: '198.51.100.3:1', allowedIps: ['10.10.10.3/32'], latestHandshake: this.peerHandshake, rxBytes: this.reads * this.rxStep, persistentKeepalive: 25 },
        { publicKey: OTHER, endpoint: '198.51.100.4:1', allowedIps: ['10.10.10.4/32'], latestHandshake: NOW_SECONDS - 5, persistentKeepalive: 25 },
      ]);
    }
    async applyPeerChanges(changes: readonly PeerChange[]): Promise<void> {
      this.batches.push([...changes]);
    }
  }

  function peerList(extra: Record<string, unknown> = {}) {
    return {
      version: 1,
      fang: { publicKey: FANG },
      you: { publicKey: SELF, endpoint: '203.0.113.1:40000' },
      // listenPort: the peer reports, so it runs a client that answers probes.
      peers: [{ publicKey: PEER, endpoint: '203.0.113.3:2', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW_SECONDS - 1, listenPort: 51820 }],
      ...extra,
    };
  }
  const LIST = peerList();

  function deps(driver: WireGuardDriver, fetch: (request?: PeerListRequest) => Promise<unknown>) {
    const { logger, lines } = captureLogger();
    const punched: string[][] = [];
    const value: SyncDeps = {
      driver,
      fetchPeerList: fetch,
      triggerHandshakes: async (addresses) => {
        punched.push(addresses.map(formatIp));
      },
      logger,
      clock: () => new Date(NOW_SECONDS * 1000),
    };
    return { deps: value, lines, punched };
  }

  const options = (signal: AbortSignal, extra: Partial<DaemonOptions> = {}): DaemonOptions => ({
    serverAddress: ip('10.10.10.1'),
    keepaliveSeconds: 25,
    flowingWithinSeconds: 180,
    dryRun: false,
    intervalMs: 50,
    waitSeconds: 0,
    heartbeatMs: 0,
    probeTimeoutMs: 100,
    minRoundGapMs: 0,
    localCheckMs: 0,
    signal,
    ...extra,
  });

  /** A fetch that never answers until its signal aborts, like a long poll with nothing new. */
  const hanging = (request?: PeerListRequest) =>
    new Promise<unknown>((_resolve, reject) => {
      const signal = request?.signal;
      if (!signal) return reject(new Error('test bug: the daemon should pass a signal'));
      if (signal.aborted) return reject(new Error('aborted'));
      signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });

  /** Answers with `replies` in turn, then aborts the daemon and hangs, so the last reply's round runs in full. */
  function scripted(controller: AbortController, replies: unknown[], requests: (PeerListRequest | undefined)[] = []) {
    return (request?: PeerListRequest) => {
      requests.push(request);
      const next = replies.shift();
      if (next === undefined) {
        controller.abort();
        return hanging(request);
      }
      return Promise.resolve(next);
    };
  }

  test('polls every interval and stops promptly on abort', async () => {
    const controller = new AbortController();
    const driver = new StubbornDriver(0);
    let fetches = 0;
    let abortedAt = 0;
    const { deps: d } = deps(driver, async () => {
      fetches++;
      if (fetches === 3) {
        abortedAt = Date.now();
        controller.abort();
      }
      return LIST;
    });
    await within(2000, runClientDaemon(d, options(controller.signal)), 'the daemon');
    assert.ok(Date.now() - abortedAt < 1000, 'stopped within a round of the abort');
    assert.equal(fetches, 3, 'no new round starts after the abort');
  });

  test('an abort during the wait ends it at once, even with a long interval', async () => {
    const controller = new AbortController();
    const { deps: d } = deps(new StubbornDriver(0), async () => LIST);
    const running = runClientDaemon(d, options(controller.signal, { intervalMs: 60_000 }));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const started = Date.now();
    controller.abort();
    await within(1000, running, 'the daemon');
    assert.ok(Date.now() - started < 1000, 'long before the interval or the wait ran out');
  });

  test('an abort hangs up a long poll in flight', async () => {
    const controller = new AbortController();
    const requests: (PeerListRequest | undefined)[] = [];
    const { deps: d } = deps(new StubbornDriver(0), (request) => {
      requests.push(request);
      return requests.length === 1 ? Promise.resolve(peerList({ revision: 7 })) : hanging(request);
    });
    const running = runClientDaemon(d, options(controller.signal, { waitSeconds: 25, intervalMs: 60_000 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    controller.abort();
    await within(1000, running, 'the daemon');
    assert.ok(Date.now() - started < 1000, 'long before the interval or the wait ran out');
    assert.equal(requests.length, 2);
    assert.equal(requests[1]?.since, 7);
    assert.equal(requests[1]?.waitSeconds, 25);
  });

  test('an already aborted signal runs no round', async () => {
    const driver = new StubbornDriver(0);
    const { deps: d } = deps(driver, async () => LIST);
    await within(500, runClientDaemon(d, options(AbortSignal.abort())));
    assert.equal(driver.reads, 0);
  });

  test('failed rounds are logged with their code and retried; recovery is logged', async () => {
    const controller = new AbortController();
    let fetches = 0;
    const { deps: d, lines } = deps(new StubbornDriver(0), async () => {
      fetches++;
      if (fetches <= 2) throw new SnakebiteError('SB_FETCH_TIMEOUT', 'did not answer within 5000 ms', 'check the tunnel');
      controller.abort();
      return LIST;
    });
    await within(3000, runClientDaemon(d, options(controller.signal)), 'the daemon');
    const failed = lines.filter((l) => l.event === 'sync-failed');
    assert.equal(failed.length, 2);
    assert.ok(failed.every((l) => l.level === 'warn' && l.code === 'SB_FETCH_TIMEOUT' && String(l.error).includes('check the tunnel')));
    assert.ok(failed.every((l) => typeof l.retryInMs === 'number' && (l.retryInMs as number) <= 50));
  });

  test('recovery after failures is logged once', async () => {
    const controller = new AbortController();
    let fetches = 0;
    const { deps: d, lines } = deps(new StubbornDriver(0), async () => {
      fetches++;
      if (fetches <= 2) throw new SnakebiteError('SB_FETCH_FAILED', 'refused');
      if (fetches === 4) controller.abort();
      return LIST;
    });
    await within(3000, runClientDaemon(d, options(controller.signal)));
    assert.deepEqual(lines.filter((l) => l.event === 'sync-recovered').map((l) => l.after), [2]);
  });

  test('a non-Snakebite error does not kill the loop', async () => {
    const controller = new AbortController();
    let fetches = 0;
    const { deps: d, lines } = deps(new StubbornDriver(0), async () => {
      fetches++;
      if (fetches === 1) throw new TypeError('boom');
      controller.abort();
      return LIST;
    });
    await within(3000, runClientDaemon(d, options(controller.signal)));
    assert.equal(lines.filter((l) => l.event === 'sync-failed')[0]?.error, 'boom');
    assert.equal(fetches, 2);
  });

  test('rx growth seen between rounds keeps a peer from being re-pointed', async () => {
    const controller = new AbortController();
    const driver = new StubbornDriver(100);
    let fetches = 0;
    const { deps: d } = deps(driver, async () => {
      fetches++;
      if (fetches === 4) controller.abort();
      return LIST;
    });
    await within(3000, runClientDaemon(d, options(controller.signal)));
    // Round 1: nothing known. Round 2: one observation, no growth yet. From round 3 on, rx grew: flowing.
    assert.equal(driver.batches.length, 2);
  });

  test('a flowing peer that does not answer a probe through its endpoint is re-pointed', async () => {
    const controller = new AbortController();
    const driver = new StubbornDriver(0, NOW_SECONDS - 10);
    const { deps: d, punched, lines } = deps(driver, scripted(controller, [LIST]));
    await within(3000, runClientDaemon(d, options(controller.signal)));
    assert.ok(punched.some((addresses) => addresses.includes('10.10.10.3')), 'probed through the current endpoint');
    assert.equal(driver.batches.length, 1);
    assert.equal(driver.batches[0]?.[0]?.publicKey, PEER);
    assert.match(String(lines.find((l) => l.event === 'endpoint-set')?.reason), /no answer through 198\.51\.100\.3:1/);
  });

  test('a flowing peer that answers the probe keeps its endpoint', async () => {
    const controller = new AbortController();
    const driver = new StubbornDriver(10, NOW_SECONDS - 10);
    const { deps: d, punched } = deps(driver, scripted(controller, [LIST]));
    await within(3000, runClientDaemon(d, options(controller.signal)));
    assert.ok(punched.length > 0, 'it was probed');
    assert.equal(driver.batches.length, 0);
  });

  test('push: a delta is merged into the list held, then the next request waits from its revision', async () => {
    const controller = new AbortController();
    const requests: (PeerListRequest | undefined)[] = [];
    const driver = new StubbornDriver(0);
    const replies: unknown[] = [
      peerList({ revision: 10, peers: [] }),
      peerList({ revision: 11, since: 10, peers: [{ publicKey: key(5), endpoint: '198.51.100.5:5', allowedIps: ['10.10.10.5/32'], latestHandshake: 1 }] }),
    ];
    const { deps: d } = deps(driver, scripted(controller, replies, requests));
    await within(3000, runClientDaemon(d, options(controller.signal, { waitSeconds: 25 })));
    assert.deepEqual(
      requests.map((r) => ({ since: r?.since, waitSeconds: r?.waitSeconds })),
      [
        { since: undefined, waitSeconds: undefined },
        { since: 10, waitSeconds: 25 },
        { since: 11, waitSeconds: 25 },
      ],
    );
    assert.deepEqual(driver.batches.map((b) => b.map((c) => c.publicKey)), [[key(5)]]);
  });

  test('a delta that does not follow the list held makes it ask for the full list again', async () => {
    const controller = new AbortController();
    const requests: (PeerListRequest | undefined)[] = [];
    const replies: unknown[] = [peerList({ revision: 10 }), peerList({ revision: 99, since: 98, peers: [] }), peerList({ revision: 99 })];
    const { deps: d } = deps(new StubbornDriver(0), scripted(controller, replies, requests));
    await within(3000, runClientDaemon(d, options(controller.signal, { waitSeconds: 25 })));
    assert.deepEqual(requests.map((r) => r?.since), [undefined, 10, undefined, 99]);
  });

  test('a fang without revisions: polling, said once', async () => {
    const controller = new AbortController();
    let fetches = 0;
    const { deps: d, lines } = deps(new StubbornDriver(0), async (request) => {
      fetches++;
      assert.equal(request?.since, undefined);
      if (fetches === 3) controller.abort();
      return LIST;
    });
    await within(3000, runClientDaemon(d, options(controller.signal, { waitSeconds: 25 })));
    assert.equal(lines.filter((l) => l.event === 'push-unavailable').length, 1);
  });

  test('a fang that sends revisions again is waited on again (push is not off for good)', async () => {
    const controller = new AbortController();
    const requests: (PeerListRequest | undefined)[] = [];
    const replies: unknown[] = [peerList({ revision: 10 }), peerList({}), peerList({ revision: 12 }), peerList({ revision: 12, since: 12, peers: [] })];
    const { deps: d, lines } = deps(new StubbornDriver(0), scripted(controller, replies, requests));
    await within(3000, runClientDaemon(d, options(controller.signal, { waitSeconds: 25, intervalMs: 20 })));
    assert.deepEqual(lines.filter((l) => l.event === 'push-unavailable' || l.event === 'push-available').map((l) => l.event), ['push-unavailable', 'push-available']);
    assert.equal(requests.at(-1)?.waitSeconds, 25);
  });

  test('while the fang machine answers (server down, tunnel up), retries stay within a second and warn only at powers of two', async () => {
    const controller = new AbortController();
    let fetches = 0;
    const { deps: d, lines } = deps(new StubbornDriver(0), async () => {
      fetches++;
      if (fetches <= 4) throw new SnakebiteError('SB_FETCH_FAILED', 'ECONNREFUSED', undefined, { fangAnswered: true });
      controller.abort();
      return LIST;
    });
    await within(8000, runClientDaemon(d, options(controller.signal, { intervalMs: 30_000 })));
    const failed = lines.filter((l) => l.event === 'sync-failed');
    assert.deepEqual(failed.map((l) => l.failures), [1, 2, 3, 4]);
    assert.ok(failed.every((l) => (l.retryInMs as number) <= 1000), JSON.stringify(failed.map((l) => l.retryInMs)));
    assert.deepEqual(failed.map((l) => l.level), ['warn', 'warn', 'debug', 'warn']);
  });

  test('when the fang sees us at a new endpoint, the other peers are punched again', async () => {
    const controller = new AbortController();
    // The listed endpoint is the one already set: nothing to plan or probe, only the move to react to.
    const peers = [{ publicKey: PEER, endpoint: '198.51.100.3:1', allowedIps: ['10.10.10.3/32'], latestHandshake: 1 }];
    const replies: unknown[] = [peerList({ peers }), peerList({ peers, you: { publicKey: SELF, endpoint: '203.0.113.1:40001' } })];
    const { deps: d, lines, punched } = deps(new StubbornDriver(0, NOW_SECONDS - 10), scripted(controller, replies));
    await within(3000, runClientDaemon(d, options(controller.signal)));
    const moved = lines.filter((l) => l.event === 'endpoint-moved');
    assert.deepEqual(moved.map((l) => [l.previous, l.endpoint]), [['203.0.113.1:40000', '203.0.113.1:40001']]);
    assert.deepEqual(punched, [['10.10.10.3', '10.10.10.4']], 'every peer but the fang');
  });

  test('a recreated interface gets its peers back from the list held, without the fang', async () => {
    const controller = new AbortController();
    const driver = new FakeDriver(
      device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW_SECONDS - 5 }]),
    );
    const bare = driver.state;
    let fetches = 0;
    const { deps: d, lines } = deps(driver, (request) => {
      fetches++;
      return fetches === 1 ? Promise.resolve(peerList({ revision: 3 })) : hanging(request);
    });
    const running = runClientDaemon(d, options(controller.signal, { waitSeconds: 25, localCheckMs: 20 }));
    try {
      const added = () => driver.state.peers.some((p) => p.publicKey === PEER);
      const deadline = Date.now() + 2000;
      while (!added() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(added(), 'added from the first list');
      driver.state = bare; // wg-quick down; wg-quick up
      while (added() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      while (!added() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(added(), 'added again by the local check');
      assert.equal(fetches, 2, 'the fang was not asked again');
      assert.equal(lines.filter((l) => l.event === 'peer-added').length, 2);
    } finally {
      controller.abort();
      await within(1000, running);
    }
  });

  test('relaying on: a new peer is added relayed, and goes direct within a moment of its first handshake', async () => {
    const controller = new AbortController();
    const driver = new FakeDriver(device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW_SECONDS - 5 }]));
    let fetches = 0;
    const { deps: d, lines } = deps(driver, (request) => (++fetches === 1 ? Promise.resolve(peerList({ revision: 3 })) : hanging(request)));
    // No local checks: only the close watch after the punch can notice the handshake.
    const running = runClientDaemon(d, options(controller.signal, { waitSeconds: 25, localCheckMs: 0, relayAfterSeconds: 8 }));
    try {
      const peerState = () => driver.state.peers.find((p) => p.publicKey === PEER);
      const deadline = Date.now() + 2000;
      while (!peerState() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(peerState()?.allowedIps, [], 'added relayed first');
      // The punch works: WireGuard completes a handshake with the peer.
      driver.state = { ...driver.state, peers: driver.state.peers.map((p) => (p.publicKey === PEER ? { ...p, latestHandshake: NOW_SECONDS } : p)) };
      while ((peerState()?.allowedIps.length ?? 0) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(peerState()?.allowedIps.map(formatPrefix), ['10.10.10.3/32'], 'direct again');
      assert.deepEqual(lines.filter((l) => l.event === 'relay-ended').map((l) => l.peer), [PEER]);
      assert.equal(fetches, 2, 'without asking the fang again');
    } finally {
      controller.abort();
      await within(1000, running);
    }
  });

  test('heartbeats go to the server address while running, and stop with it', async () => {
    const controller = new AbortController();
    const { deps: d, punched } = deps(new StubbornDriver(0), hanging);
    const running = runClientDaemon(d, options(controller.signal, { heartbeatMs: 10, waitSeconds: 25 }));
    const started = Date.now();
    while (punched.length < 3 && Date.now() - started < 1000) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    await within(1000, running);
    const count = punched.length;
    assert.ok(count >= 3, `got ${count} heartbeats`);
    assert.ok(punched.every((addresses) => addresses.length === 1 && addresses[0] === '10.10.10.1'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(punched.length, count, 'no heartbeat after the daemon returned');
  });
  test('a stale state file: a peer an earlier run added, which the user re-created with the same key on a re-created interface, is not removed (issue 8)', async () => {
    for (const { identityNow, want } of [
      { identityNow: 2, want: [] as string[] },
      { identityNow: 1, want: [OTHER] },
    ]) {
      const controller = new AbortController();
      const driver = new StubbornDriver(0);
      const { deps: d, lines } = deps(driver, scripted(controller, [LIST]));
      await within(3000, runClientDaemon(d, options(controller.signal, { addedBefore: [OTHER], identityBefore: 1, interfaceIdentity: () => identityNow })), 'the daemon');
      const removed = driver.batches.flat().filter((c) => c.remove).map((c) => c.publicKey);
      assert.deepEqual(removed, want, `interface index 1 -> ${identityNow}`);
      assert.equal(lines.some((l) => l.event === 'interface-recreated'), identityNow !== 1);
    }
  });
  test('a client that may manage none of the listed peers says so once, with the fix (issue 7 item 5)', async () => {
    const controller = new AbortController();
    // The fang peer routes only its own address and the peer is not listed locally: nothing can be added.
    const driver = new FakeDriver(device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.1/32'], latestHandshake: NOW_SECONDS - 5 }]));
    const { deps: d, lines } = deps(driver, scripted(controller, [LIST, LIST, LIST]));
    await within(3000, runClientDaemon(d, options(controller.signal)), 'the daemon');
    const said = lines.filter((l) => l.event === 'nothing-managed');
    assert.equal(said.length, 1, 'once, not every round');
    assert.equal(said[0]?.level, 'warn');
    assert.match(String(said[0]?.hint), /AllowedIPs that cover the overlay/);
    assert.equal(lines.filter((l) => l.event === 'peer-refused').length, 1, 'the refusal itself is said once too');
  });
});

