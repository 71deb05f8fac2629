/**
 * The attacks of issue 8 against the fang server, each reproduced against the
 * real HTTP server with a fake interface whose peers sit on loopback addresses.
 * Each test failed on the code before the fix (see docs/attacks.md).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePeerList } from '../../src/peer-list/parse';
import { ask, fangWith, loopbackPeers, MutableDriver, peerKey, peerSource, startTestFang } from '../support/fang-harness';

async function revisionOf(port: number, from: string): Promise<number> {
  const reply = await ask(port, { from });
  assert.equal(reply.status, 200, reply.body);
  return parsePeerList(JSON.parse(reply.body)).list.revision!;
}

describe('attack: punch requests', () => {
  test('3,200 punch requests naming one peer: one request, shown only to that peer, and the lists stay small', async (t) => {
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(4))));
    const now = Math.floor(Date.now() / 1000);
    const punchRequests = Array.from({ length: 3200 }, (_, i) => ({ publicKey: peerKey(1), at: now - (i % 20) }));
    const report = JSON.stringify({ listenPort: 51820, candidates: [], seen: [], punchRequests });
    assert.ok(report.length < 256 * 1024);
    for (let i = 0; i < 3; i++) assert.equal((await ask(server.port, { from: peerSource(0), path: '/v1/report', method: 'POST', body: report })).status, 204);

    const asked = await ask(server.port, { from: peerSource(1) });
    const entry = parsePeerList(JSON.parse(asked.body)).list.peers.find((p) => p.publicKey === peerKey(0))!;
    assert.equal(entry.punchRequests?.length, 1);
    assert.equal(entry.punchRequests[0]!.publicKey, peerKey(1));
    assert.ok(Math.abs(entry.punchRequests[0]!.at - now) <= 2, 'dated by the fang');
    assert.ok(asked.body.length < 2000, `${asked.body.length} bytes`);

    const other = await ask(server.port, { from: peerSource(2) });
    assert.equal(parsePeerList(JSON.parse(other.body)).list.peers.find((p) => p.publicKey === peerKey(0))!.punchRequests, undefined, 'nobody else learns who asked whom');
    assert.ok(other.body.length < 2000, `${other.body.length} bytes`);
  });
});

describe('attack: a removed peer is later "seen" in a report', () => {
  test('the delta names it as removed, and a client merging deltas drops it', async (t) => {
    const peers = loopbackPeers(3);
    const driver = new MutableDriver(fangWith(peers));
    const server = await startTestFang(t, driver, { deviceMaxAgeMs: 0 });
    const seenX = JSON.stringify({ listenPort: 51820, candidates: [], seen: [{ publicKey: peerKey(2), endpoint: '198.51.100.3:10002' }] });
    assert.equal((await ask(server.port, { from: peerSource(1), path: '/v1/report', method: 'POST', body: seenX })).status, 204);
    const r0 = await revisionOf(server.port, peerSource(0));

    driver.state = fangWith(peers.slice(0, 2));
    // The reporter says the same again (its view lags); the fang drops the removed peer from it.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await ask(server.port, { from: peerSource(1), path: '/v1/report', method: 'POST', body: seenX })).status, 204);
    const reply = await ask(server.port, { from: peerSource(0), path: `/v1/peers?since=${r0}` });
    const delta = parsePeerList(JSON.parse(reply.body)).list;
    assert.equal(delta.since, r0);
    assert.ok(delta.removed?.includes(peerKey(2)), `removed: ${JSON.stringify(delta.removed)}`);
    assert.ok(!delta.peers.some((p) => p.publicKey === peerKey(2)));
  });
});

describe('attack: long polls that hang up while the fang reads its interface', () => {
  test('their slots are freed at once: the next poll is held, not answered at once', async (t) => {
    const driver = new MutableDriver(fangWith(loopbackPeers(2)));
    const server = await startTestFang(t, driver, { deviceMaxAgeMs: 0 });
    const revision = await revisionOf(server.port, peerSource(0));
    driver.delayMs = 300;
    const polls = Array.from({ length: 4 }, () => new AbortController());
    const hung = polls.map((c) => ask(server.port, { from: peerSource(0), path: `/v1/peers?since=${revision}&wait=60`, signal: c.signal }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const c of polls) c.abort();
    await Promise.all(hung);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(server.watch.waiting, 0, 'no hung-up poll still holds a slot');
    driver.delayMs = 0;
    const next = await ask(server.port, { from: peerSource(0), path: `/v1/peers?since=${revision}&wait=1`, timeoutMs: 5000 });
    assert.equal(next.status, 200);
    assert.ok(next.ms >= 800, `answered after ${next.ms} ms: it should have been held for its wait`);
  });
});
