/**
 * Load with one misbehaving peer: 1,000 honest peers keep a long poll open at
 * the fang and poll again whenever it answers, while the interface changes
 * every 2 s and one peer floods the fang (idle connections, oversized
 * reports, bad queries, requests as fast as it can). Every honest poll must
 * succeed. The clients and the server share one process (and, in CI, two
 * cores): what is measured is that nothing fails, not how fast.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePeerList } from '../../src/peer-list/parse';
import { captureLogger } from '../support/fakes';
import { ask, fangWith, loopbackPeers, MutableDriver, openIdle, peerKey, peerSource, startTestFang } from '../support/fang-harness';

const HONEST = Number(process.env.SB_LOAD_PEERS ?? 1000);
const SECONDS = Number(process.env.SB_LOAD_SECONDS ?? 10);

describe('attack: load with one misbehaving peer', () => {
  test(`${HONEST} honest peers polling for ${SECONDS} s see no failure while one peer misbehaves`, { timeout: 120_000 }, async (t) => {
    const { logger, lines } = captureLogger();
    const peers = loopbackPeers(HONEST + 1);
    const driver = new MutableDriver(fangWith(peers));
    const server = await startTestFang(t, driver, { logger });
    const bad = peerSource(HONEST);
    const first = await ask(server.port, { from: peerSource(0) });
    const revision0 = parsePeerList(JSON.parse(first.body)).list.revision!;

    const deadline = Date.now() + SECONDS * 1000;
    const failures: string[] = [];
    let answers = 0;
    const answeredPeers = new Set<number>();
    let slowest = 0;
    const honest = async (n: number) => {
      let revision = revision0;
      while (Date.now() < deadline) {
        const reply = await ask(server.port, { from: peerSource(n), path: `/v1/peers?since=${revision}&wait=5`, timeoutMs: 30_000 });
        if (reply.status !== 200) {
          failures.push(`peer ${n}: ${reply.status} ${reply.body.slice(0, 60)}`);
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        answers++;
        answeredPeers.add(n);
        slowest = Math.max(slowest, reply.ms);
        const list = parsePeerList(JSON.parse(reply.body)).list;
        revision = list.revision ?? revision;
      }
    };

    // The interface changes every 2 s: one peer moves, and every waiting client is woken and polls again.
    let moves = 0;
    const mover = setInterval(() => {
      moves++;
      driver.state = fangWith(peers.map((p, i) => (i === moves % HONEST ? { ...p, endpoint: `198.51.100.200:${20000 + moves}` } : p)));
    }, 2000);
    t.after(() => clearInterval(mover));

    const now = Math.floor(Date.now() / 1000);
    const hostileReport = JSON.stringify({ listenPort: 51820, seen: peers.slice(0, 1000).map((p) => ({ publicKey: p.publicKey, endpoint: '198.51.100.1:1' })), punchRequests: Array.from({ length: 3000 }, (_, i) => ({ publicKey: peerKey(i % 50), at: now })) });
    let hostileRequests = 0;
    const misbehave = async () => {
      if (process.env.SB_LOAD_NO_BAD) return;
      await openIdle(t, server.port, bad, 200);
      await Promise.all(Array.from({ length: 10 }, () => flood()));
    };
    const flood = async () => {
      while (Date.now() < deadline) {
        hostileRequests += 3;
        await Promise.all([
          ask(server.port, { from: bad, path: '/v1/report', method: 'POST', body: hostileReport, timeoutMs: 2000 }),
          ask(server.port, { from: bad, path: '/v1/peers?since=abc&wait=999', timeoutMs: 2000 }),
          ask(server.port, { from: bad, path: `/v1/peers?since=${revision0}&wait=60`, timeoutMs: 300 }),
        ]);
      }
    };

    await Promise.all([misbehave(), ...Array.from({ length: HONEST }, (_, n) => honest(n))]);
    clearInterval(mover);
    const events = new Map<string, number>();
    for (const l of lines) events.set(`${l.event} ${String(l.reason ?? "")}`, (events.get(`${l.event} ${String(l.reason ?? "")}`) ?? 0) + 1 + Number(l.dropped ?? 0));
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} honest failures; log: ${JSON.stringify([...events])}`);
    assert.equal(answeredPeers.size, HONEST, 'every honest peer was answered');
    assert.ok(lines.some((l) => l.event === 'connection-limit'), 'the misbehaving peer hit its limit, and it was logged');
    t.diagnostic(JSON.stringify({ honestPeers: HONEST, seconds: SECONDS, honestAnswers: answers, honestFailures: failures.length, slowestMs: slowest, hostileRequests, moves }));
  });
});
