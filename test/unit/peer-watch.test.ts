import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedDeviceView } from '../../src/fang/device-view';
import { diffPeers, peerFingerprint } from '../../src/fang/peer-diff';
import { PeerWatch } from '../../src/fang/peer-watch';
import { device, FakeDriver, key, peer, within, type PeerSpec } from '../support/fakes';

const FANG = key(0xf0);
const A = key(1);
const B = key(2);
const C = key(3);

const spec = (publicKey: string, extra: Partial<PeerSpec> = {}): PeerSpec => ({ publicKey, endpoint: '198.51.100.1:1', allowedIps: ['10.10.10.1/32'], ...extra });

describe('diffPeers / peerFingerprint', () => {
  test('the fingerprint is the endpoint and allowed IPs only', () => {
    const base = peer(spec(A));
    assert.equal(peerFingerprint(base), '198.51.100.1:1 10.10.10.1/32');
    assert.equal(peerFingerprint({ ...base, latestHandshake: 5, rxBytes: 9, txBytes: 9, persistentKeepalive: 25 }), peerFingerprint(base));
    assert.equal(peerFingerprint(peer(spec(A, { endpoint: null, allowedIps: [] }))), '- ');
  });

  const rows: { name: string; before: PeerSpec[]; after: PeerSpec[]; changed: string[]; removed: string[] }[] = [
    { name: 'from nothing, every peer is changed', before: [], after: [spec(A), spec(B)], changed: [A, B], removed: [] },
    { name: 'no difference', before: [spec(A), spec(B)], after: [spec(A), spec(B)], changed: [], removed: [] },
    { name: 'counters and handshakes do not count', before: [spec(A)], after: [spec(A, { latestHandshake: 99, rxBytes: 5 })], changed: [], removed: [] },
    { name: 'an endpoint moved', before: [spec(A), spec(B)], after: [spec(A), spec(B, { endpoint: '198.51.100.1:2' })], changed: [B], removed: [] },
    { name: 'allowed IPs changed', before: [spec(A)], after: [spec(A, { allowedIps: ['10.10.10.1/32', '10.10.10.2/32'] })], changed: [A], removed: [] },
    { name: 'a peer left and one came', before: [spec(A), spec(B)], after: [spec(A), spec(C)], changed: [C], removed: [B] },
    { name: 'everyone left', before: [spec(A), spec(B)], after: [], changed: [], removed: [A, B] },
  ];
  for (const { name, before, after, changed, removed } of rows) {
    test(name, () => {
      const previous = diffPeers(new Map(), device(FANG, before)).fingerprints;
      const diff = diffPeers(previous, device(FANG, after));
      assert.deepEqual(diff.changed, changed);
      assert.deepEqual(diff.removed, removed);
      assert.equal(diff.fingerprints.size, after.length);
    });
  }
});

describe('PeerWatch', () => {
  /** A watch over a fake driver whose device the test swaps; the view never caches. */
  function watchOver(peers: PeerSpec[], pollMs = 10) {
    const driver = new FakeDriver(device(FANG, peers));
    const watch = new PeerWatch(new SharedDeviceView(driver, 0), pollMs);
    const set = (next: PeerSpec[]) => {
      driver.state = device(FANG, next);
    };
    return { driver, watch, set };
  }

  test('the first read sets the baseline; only later changes move the revision', async () => {
    const { watch, set } = watchOver([spec(A)]);
    const start = watch.revision;
    assert.ok(Number.isSafeInteger(start) && start >= 1);
    assert.equal((await watch.refresh()).revision, start);
    set([spec(A)]); // a new read, same peers
    assert.equal((await watch.refresh()).revision, start);
    set([spec(A, { endpoint: '198.51.100.1:9' })]);
    assert.equal((await watch.refresh()).revision, start + 1);
    watch.close();
  });

  test('changesSince gathers every change after a revision; a peer that left and came back is changed', async () => {
    const { watch, set } = watchOver([spec(A), spec(B)]);
    await watch.refresh();
    const r0 = watch.revision;
    set([spec(A, { endpoint: '198.51.100.1:2' }), spec(B)]);
    await watch.refresh();
    set([spec(A, { endpoint: '198.51.100.1:2' })]);
    await watch.refresh();
    set([spec(A, { endpoint: '198.51.100.1:2' }), spec(C)]);
    await watch.refresh();
    assert.equal(watch.revision, r0 + 3);

    const all = watch.changesSince(r0);
    assert.deepEqual([...(all?.changed ?? [])].sort(), [A, C].sort());
    assert.deepEqual([...(all?.removed ?? [])], [B]);
    const last = watch.changesSince(r0 + 2);
    assert.deepEqual([...(last?.changed ?? [])], [C]);
    assert.deepEqual([...(last?.removed ?? [])], []);
    assert.deepEqual(watch.changesSince(watch.revision), { changed: new Set(), removed: new Set() });

    set([spec(A, { endpoint: '198.51.100.1:2' }), spec(B), spec(C)]);
    await watch.refresh();
    const back = watch.changesSince(r0);
    assert.ok(back?.changed.has(B), 'B came back: changed');
    assert.ok(!back?.removed.has(B), 'and no longer removed');
    watch.close();
  });

  test('changesSince is undefined for a revision it does not know', async () => {
    const { watch, set } = watchOver([spec(A)]);
    await watch.refresh();
    assert.equal(watch.changesSince(watch.revision + 1), undefined, 'from the future (another fang)');
    assert.equal(watch.changesSince(watch.revision - 1), undefined, 'older than any history');
    set([spec(B)]);
    await watch.refresh();
    assert.ok(watch.changesSince(watch.revision - 1));
    assert.equal(watch.changesSince(watch.revision - 2), undefined);
    watch.close();
  });

  test('history is bounded; a very old revision gets undefined (the full list)', async () => {
    const { watch, set } = watchOver([spec(A)]);
    await watch.refresh();
    const r0 = watch.revision;
    for (let i = 1; i <= 1100; i++) {
      set([spec(A, { endpoint: `198.51.100.1:${1000 + i}` })]);
      await watch.refresh();
    }
    assert.equal(watch.revision, r0 + 1100);
    assert.equal(watch.changesSince(r0), undefined);
    assert.deepEqual([...(watch.changesSince(watch.revision - 10)?.changed ?? [])], [A]);
    watch.close();
  });

  test('waitForChange returns at once when the caller is behind', async () => {
    const { watch } = watchOver([spec(A)]);
    await watch.refresh();
    await within(100, watch.waitForChange(watch.revision - 1, 10_000, new AbortController().signal));
    assert.equal(watch.waiting, 0);
    watch.close();
  });

  test('waitForChange wakes on a change it polls for, then stops polling', async () => {
    const { driver, watch, set } = watchOver([spec(A)], 10);
    await watch.refresh();
    const waiting = watch.waitForChange(watch.revision, 10_000, new AbortController().signal);
    assert.equal(watch.waiting, 1);
    setTimeout(() => set([spec(A, { endpoint: '198.51.100.1:7' })]), 30);
    await within(2000, waiting, 'the wake-up');
    assert.equal(watch.waiting, 0);
    const reads = driver.reads;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(driver.reads <= reads + 1, 'no polling once nobody waits');
    watch.close();
  });

  test('waitForChange ends after its timeout, or on abort, or on close', async () => {
    const { watch } = watchOver([spec(A)], 10);
    await watch.refresh();
    const started = Date.now();
    await within(1000, watch.waitForChange(watch.revision, 60, new AbortController().signal));
    assert.ok(Date.now() - started >= 50);

    const controller = new AbortController();
    const aborted = watch.waitForChange(watch.revision, 60_000, controller.signal);
    controller.abort();
    await within(200, aborted, 'abort');

    const closing = watch.waitForChange(watch.revision, 60_000, new AbortController().signal);
    watch.close();
    await within(200, closing, 'close');
    assert.equal(watch.waiting, 0);
  });

  test('a failing read while waiting is reported and polling goes on', async () => {
    const errors: unknown[] = [];
    const state = device(FANG, [spec(A)]);
    const moved = device(FANG, [spec(A, { endpoint: '198.51.100.1:3' })]);
    let reads = 0;
    const driver = {
      interfaceName: 'wg0',
      readDevice: async () => {
        reads++;
        if (reads === 1) return state;
        if (reads <= 3) throw new Error('wg gone');
        return moved;
      },
      applyPeerChanges: async () => {},
    };
    const watch = new PeerWatch(new SharedDeviceView(driver, 0), 5, (error) => errors.push(error));
    await watch.refresh();
    await within(2000, watch.waitForChange(watch.revision, 5000, new AbortController().signal), 'wake after errors');
    assert.deepEqual(errors.map((e) => (e as Error).message), ['wg gone', 'wg gone']);
    watch.close();
  });
});
