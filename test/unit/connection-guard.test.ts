import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decideAdmission, type ConnectionSource } from '../../src/fang/connection-guard';
import { PunchRequestBook, punchRequestsFor, MAX_PUNCH_REQUESTS, PUNCH_REQUEST_TTL_SECONDS } from '../../src/fang/punch-requests';
import { RateLimitedLog } from '../../src/fang/rate-limited-log';
import { settleChanges } from '../../src/fang/list-scope';
import { captureLogger, device, key } from '../support/fakes';
import { ask, fangWith, loopbackPeers, MutableDriver, openIdle, peerSource, startTestFang } from '../support/fang-harness';

const LIMITS = { perPeer: 2, headroom: 1, unknown: 1 };
const A = key(1);
const B = key(2);

describe('decideAdmission', () => {
  const rows: { name: string; source: ConnectionSource; total: number; held: Record<string, number>; want: string }[] = [
    { name: 'a stranger', source: { kind: 'not-a-peer', peers: 3 }, total: 0, held: {}, want: 'refuse:not-a-peer' },
    { name: 'a peer with room', source: { kind: 'peer', publicKey: A, peers: 3 }, total: 1, held: { [A]: 1 }, want: 'admit' },
    { name: 'a peer at its limit', source: { kind: 'peer', publicKey: A, peers: 3 }, total: 2, held: { [A]: 2 }, want: 'refuse:peer-limit' },
    { name: 'another peer beside it', source: { kind: 'peer', publicKey: B, peers: 3 }, total: 2, held: { [A]: 2 }, want: 'admit' },
    { name: 'the global limit (peers × perPeer + headroom)', source: { kind: 'peer', publicKey: B, peers: 3 }, total: 7, held: { [A]: 2 }, want: 'refuse:global-limit' },
    { name: 'more peers, a higher global limit', source: { kind: 'peer', publicKey: B, peers: 4 }, total: 7, held: { [A]: 2 }, want: 'admit' },
    { name: 'an unreadable interface, room', source: { kind: 'unknown' }, total: 0, held: {}, want: 'admit' },
    { name: 'an unreadable interface, full', source: { kind: 'unknown' }, total: 1, held: { '?': 1 }, want: 'refuse:unknown-limit' },
    { name: 'the fang itself (doctor on F)', source: { kind: 'local' }, total: 0, held: {}, want: 'admit' },
    { name: 'the fang itself, over its limit', source: { kind: 'local' }, total: 1, held: { local: 1 }, want: 'refuse:local-limit' },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const decision = decideAdmission(row.source, { total: row.total, byOwner: new Map(Object.entries(row.held)) }, LIMITS);
      assert.equal(decision.kind === 'admit' ? 'admit' : `refuse:${decision.why}`, row.want);
    });
  }

  test('at the socket: a peer over its limit is closed, the others are served, connections that close free their place', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(3))), { logger, connectionLimits: { perPeer: 4, headroom: 4, unknown: 2 } });
    const idle = await openIdle(t, server.port, peerSource(0), 30);
    assert.equal((await ask(server.port, { from: peerSource(1) })).status, 200);
    assert.notEqual((await ask(server.port, { from: peerSource(0) })).status, 200, 'the hog is at its limit');
    assert.equal(lines.filter((l) => l.event === 'connection-limit').length, 1);
    for (const socket of idle) socket.destroy();
    for (let i = 0; i < 50; i++) {
      if ((await ask(server.port, { from: peerSource(0) })).status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail('the hog was never served again after closing its connections');
  });
});

describe('RateLimitedLog', () => {
  test('one line per interval; the held-back count rides on the next line', () => {
    const { logger, lines } = captureLogger();
    let now = 0;
    const log = new RateLimitedLog(logger, 10_000, () => now);
    for (let i = 0; i < 3000; i++) log.warn('request-refused', { source: `10.0.0.${i % 250}` });
    assert.equal(lines.length, 1);
    assert.equal(log.dropped('request-refused'), 2999);
    now = 10_000;
    log.warn('request-refused', { source: '10.0.0.1' });
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.dropped, 2999);
    log.warn('connection-limit', { peer: A });
    assert.equal(lines.length, 3, 'events are limited separately');
    log.close();
  });

  test('a burst followed by silence is summed up when the interval ends', async () => {
    const { logger, lines } = captureLogger();
    const log = new RateLimitedLog(logger, 50);
    for (let i = 0; i < 10; i++) log.warn('request-refused', { source: '10.0.0.1' });
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.deepEqual(lines.map((l) => l.dropped), [undefined, 9]);
    log.close();
  });
});

describe('PunchRequestBook', () => {
  const isPeer = (k: string) => k !== key(99);
  test('deduplicated, own key and strangers dropped, dated by the fang', () => {
    const book = new PunchRequestBook();
    const got = book.take(A, [{ publicKey: B, at: 5 }, { publicKey: B, at: 9 }, { publicKey: A, at: 9 }, { publicKey: key(99), at: 9 }], isPeer, 1000);
    assert.deepEqual(got, [{ publicKey: B, at: 1000 }]);
    assert.deepEqual(book.take(A, [{ publicKey: B, at: 9 }], isPeer, 1010), [{ publicKey: B, at: 1000 }], 'the same request keeps its date');
    assert.deepEqual(book.take(A, [{ publicKey: B, at: 20 }], isPeer, 1012), [{ publicKey: B, at: 1012 }], 'a new request gets a new one');
    assert.deepEqual(book.current(A, 1012 + PUNCH_REQUEST_TTL_SECONDS + 1), [], 'it expires by the fang clock');
  });
  test('capped', () => {
    const book = new PunchRequestBook();
    const many = Array.from({ length: 200 }, (_, i) => ({ publicKey: key(i + 100), at: i }));
    assert.equal(book.take(A, many, () => true, 1).length, MAX_PUNCH_REQUESTS);
  });
  test('an asker sees only a request naming it', () => {
    const requests = [{ publicKey: A, at: 100 }, { publicKey: B, at: 100 }];
    assert.deepEqual(punchRequestsFor(requests, B, 110), [{ publicKey: B, at: 100 }]);
    assert.deepEqual(punchRequestsFor(requests, key(5), 110), []);
    assert.deepEqual(punchRequestsFor(requests, B, 100 + PUNCH_REQUEST_TTL_SECONDS + 1), []);
  });
});

describe('settleChanges', () => {
  test('a changed key no longer on the device is a removal; a removed key back on it is not', () => {
    const state = device(key(0xf0), [{ publicKey: A }, { publicKey: B }]);
    const settled = settleChanges({ changed: new Set([A, key(3)]), removed: new Set([B, key(4)]) }, state);
    assert.deepEqual([...settled.changed], [A]);
    assert.deepEqual([...settled.removed].sort(), [key(3), key(4)].sort());
  });
});
