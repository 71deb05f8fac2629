/**
 * Exhaustion attacks of issue 8 at full size (1,100 connections, 1,025 peers,
 * 3,000 requests): slower than a unit test, so they run with the attack suite
 * (`node --test dist/test/attack/`). test/unit/connection-guard.test.ts has
 * the same rules at small size. Each test failed on the code before the fix.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePeerList } from '../../src/peer-list/parse';
import { captureLogger } from '../support/fakes';
import { ask, fangWith, loopbackPeers, MutableDriver, openIdle, peerSource, startTestFang } from '../support/fang-harness';

const STRANGER = '127.9.9.9';

async function revisionOf(port: number, from: string): Promise<number> {
  const reply = await ask(port, { from });
  assert.equal(reply.status, 200, reply.body);
  return parsePeerList(JSON.parse(reply.body)).list.revision!;
}

describe('attack: connection exhaustion', () => {
  for (const attacker of [
    { name: 'a peer', from: peerSource(0), event: 'connection-limit' },
    { name: 'a stranger (or a host on the fang\'s LAN routing the overlay through it)', from: STRANGER, event: 'request-refused' },
  ]) {
    test(`${attacker.name} opens 1,100 idle connections: every other peer is still served, and it is logged once`, async (t) => {
      const { logger, lines } = captureLogger();
      const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(3))), { logger });
      await openIdle(t, server.port, attacker.from, 1100);
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(server.port, { from: peerSource(1 + (i % 2)), timeoutMs: 3000 })));
      assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200));
      const warnings = lines.filter((l) => l.event === attacker.event && l.level === 'warn');
      assert.equal(warnings.length, 1, 'one line; the rest are counted for the next');
    });
  }

  test('1,024 honest peers each holding a long poll: the 1,025th is still served', async (t) => {
    const peers = loopbackPeers(1025);
    const server = await startTestFang(t, new MutableDriver(fangWith(peers)));
    const revision = await revisionOf(server.port, peerSource(0));
    const polls = new AbortController();
    t.after(() => polls.abort());
    const held = Array.from({ length: 1024 }, (_, n) =>
      ask(server.port, { from: peerSource(n), path: `/v1/peers?since=${revision}&wait=30`, timeoutMs: 20_000, signal: polls.signal }),
    );
    // Every poll is in (held by the watch) before the last peer asks.
    for (let i = 0; i < 200 && server.watch.waiting < 1024; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.equal(server.watch.waiting, 1024);
    const last = await ask(server.port, { from: peerSource(1024), timeoutMs: 3000 });
    assert.equal(last.status, 200, last.body);
    polls.abort();
    await Promise.all(held);
  });
});

describe('attack: a stranger floods the fang with requests', () => {
  test('3,000 requests in a second make one log line, and the count of the rest follows', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(2))), { logger });
    for (let i = 0; i < 3000; i += 300) await Promise.all(Array.from({ length: 300 }, () => ask(server.port, { from: STRANGER, timeoutMs: 3000 })));
    const refused = lines.filter((l) => l.event === 'request-refused');
    assert.equal(refused.length, 1);
    assert.ok(lines.length < 10, `${lines.length} lines`);
  });
});

