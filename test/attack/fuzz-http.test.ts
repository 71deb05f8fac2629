/**
 * Fuzz of the fang's HTTP surface: thousands of generated malformed and
 * hostile requests from peers and strangers, while an honest peer keeps
 * polling. Nothing may crash the server, nothing may get a 5xx, memory stays
 * bounded, and the honest peer is served every time, within its usual time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { captureLogger, key, pick, seededRandom } from '../support/fakes';
import { ask, fangWith, loopbackPeers, MutableDriver, peerKey, peerSource, startTestFang } from '../support/fang-harness';

const REQUESTS = Number(process.env.SB_FUZZ_REQUESTS ?? 3000);
const CONCURRENCY = 20;
const DEEP = '['.repeat(100_000) + ']'.repeat(100_000);
const HUGE = 'x'.repeat(300 * 1024);

/** Sends raw bytes, returns the status codes of every response seen (0 when none came). */
function raw(port: number, from: string, chunks: readonly Buffer[], pauseMs: number): Promise<number[]> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve([...received.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1])));
    };
    const timer = setTimeout(done, 1500);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('close', done);
    socket.on('error', done);
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
      socket.end();
    });
  });
}

function generate(random: () => number, now: number): { from: 'peer' | 'stranger'; chunks: Buffer[]; pauseMs: number; kind: string } {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const junk = (n: number) => Array.from({ length: n }, () => pick(random, ['a', '%', '/', '.', '\u0000', '\r', '\n', ' ', '?', '&', '=', 'é', '\u202e', '9'])).join('');
  const method = pick(random, ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PATCH', 'BREW', 'G\u0000T', 'get', '']);
  const path = pick(random, [
    '/v1/peers', '/v1/peers.txt', '/v1/report', '/', '/mesh', '/v1/mesh.json', '/mesh?x=<script>', '/v1/peers/../../etc/passwd', `/${junk(20)}`, `/v1/peers?since=${junk(8)}`,
    `/v1/peers?since=${Math.floor(random() * 2 ** 60)}&wait=${Math.floor(random() * 100) - 20}`, '/v1/peers?since=1&wait=1', `/v1/peers?${'a=1&'.repeat(500)}`,
    `/${'x'.repeat(Math.floor(random() * 20000))}`, '*', 'http://evil.example/v1/peers', '/v1/peers?since=-1', '/v1/peers?wait=1e3', '/v1/peers?since=0x10',
  ]);
  const version = pick(random, ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', '', 'HTTP/1.1 extra']);
  const report = () =>
    JSON.stringify(
      pick(random, [
        { listenPort: 51820, candidates: ['192.168.1.2:51820'], seen: [{ publicKey: peerKey(1), endpoint: '198.51.100.2:10001' }] },
        { listenPort: 51820, punchRequests: Array.from({ length: 3200 }, () => ({ publicKey: peerKey(1), at: now })) },
        { listenPort: 70000 },
        { listenPort: 1, candidates: Array.from({ length: 100 }, () => '127.0.0.1:1') },
        { listenPort: 1, seen: Array.from({ length: 5000 }, (_, i) => ({ publicKey: key(i), endpoint: '198.51.100.1:1' })) },
        { listenPort: 1, seen: [{ publicKey: peerKey(3), endpoint: 'not an endpoint' }] },
        { listenPort: 1, punchRequests: [{ publicKey: peerKey(2), at: Number.MAX_SAFE_INTEGER }] },
        null,
        [],
        '{"listenPort":',
      ]),
    );
  const bodyKind = pick(random, ['none', 'report', 'deep', 'binary', 'huge', 'chunked', 'lying-length']);
  let body = '';
  const headers: string[] = [];
  switch (bodyKind) {
    case 'report':
      body = report();
      headers.push(`content-length: ${Buffer.byteLength(body)}`);
      break;
    case 'deep':
      body = DEEP;
      headers.push(`content-length: ${body.length}`);
      break;
    case 'binary':
      body = bytes(512).toString('latin1');
      headers.push(`content-length: ${body.length}`);
      break;
    case 'huge':
      body = HUGE;
      headers.push(`content-length: ${body.length}`);
      break;
    case 'chunked':
      headers.push('transfer-encoding: chunked');
      body = `${pick(random, ['5\r\nhello\r\n0\r\n\r\n', 'zz\r\nhello\r\n', 'ffffffffffff\r\n', '5\r\nhel'])}`;
      break;
    case 'lying-length':
      headers.push(pick(random, ['content-length: 100000', 'content-length: -1', 'content-length: 1\r\ncontent-length: 2', 'content-length: abc']));
      body = 'short';
      break;
  }
  for (let i = Math.floor(random() * 4); i > 0; i--) {
    headers.push(pick(random, [`x-junk: ${junk(50)}`, `host: ${junk(10)}`, `${'h'.repeat(100)}: v`, `x-big: ${'v'.repeat(20_000)}`, 'expect: 100-continue', 'connection: keep-alive', 'upgrade: websocket', 'bad header line', `cookie: ${'a'.repeat(9000)}`]));
  }
  if (random() < 0.1) for (let i = 0; i < 100; i++) headers.push(`x-many-${i}: 1`);
  const head = `${method} ${path} ${version}\r\n${headers.join('\r\n')}${headers.length ? '\r\n' : ''}\r\n`;
  let text = random() < 0.05 ? bytes(200).toString('latin1') : head + body;
  if (random() < 0.1) text = text + text; // pipelined
  const all = Buffer.from(text, 'latin1');
  const split = random() < 0.15;
  const chunks = split ? Array.from({ length: Math.ceil(all.length / 7) }, (_, i) => all.subarray(i * 7, i * 7 + 7)).slice(0, 40) : [all];
  return { from: random() < 0.7 ? 'peer' : 'stranger', chunks, pauseMs: split ? 5 : 0, kind: `${method} ${bodyKind}` };
}

describe('attack: fuzz of the fang\'s HTTP surface', () => {
  test(`${REQUESTS} generated requests: no crash, no 5xx, memory bounded, an honest peer served as usual`, { timeout: 120_000 }, async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(20))), { logger });
    const honest = peerSource(19);
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push((await ask(server.port, { from: honest })).ms);
    const usual = baseline.sort((a, b) => a - b)[Math.floor(baseline.length / 2)]!;
    const rssBefore = process.memoryUsage().rss;

    let stop = false;
    const honestLatencies: number[] = [];
    const honestFailures: string[] = [];
    const poller = (async () => {
      while (!stop) {
        const reply = await ask(server.port, { from: honest, timeoutMs: 5000 });
        if (reply.status === 200) honestLatencies.push(reply.ms);
        else honestFailures.push(`${reply.status} ${reply.body.slice(0, 40)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const random = seededRandom(8);
    const now = Math.floor(Date.now() / 1000);
    const statuses = new Map<number, number>();
    let next = 0;
    let rssPeak = rssBefore;
    const worker = async () => {
      while (next < REQUESTS) {
        const n = next++;
        const request = generate(random, now);
        const from = request.from === 'peer' ? peerSource(n % 19) : `127.2.${(n >> 8) & 255}.${n & 255}`;
        for (const status of await raw(server.port, from, request.chunks, request.pauseMs)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (n % 200 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    stop = true;
    await poller;

    const fivexx = [...statuses].filter(([status]) => status >= 500);
    assert.deepEqual(fivexx, [], `5xx answers: ${JSON.stringify(fivexx)}`);
    assert.deepEqual(honestFailures, []);
    assert.ok(honestLatencies.length >= 10, `the honest peer got ${honestLatencies.length} answers`);
    const sorted = [...honestLatencies].sort((a, b) => a - b);
    const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
    // "Its usual time" on a shared 2-core machine: within 1 s, and never a timeout.
    assert.ok(p95 < Math.max(1000, usual * 20), `honest p95 ${p95} ms, usual ${usual} ms`);
    assert.ok(rssPeak - rssBefore < 300 * 1024 * 1024, `rss grew by ${Math.round((rssPeak - rssBefore) / 1048576)} MiB`);
    assert.equal(lines.filter((l) => l.event === 'request-failed').length, 0, 'no request reached the 500 path');
    assert.equal((await ask(server.port, { from: honest })).status, 200, 'still serving');
    t.diagnostic(JSON.stringify({ requests: REQUESTS, statuses: Object.fromEntries(statuses), honest: { answers: honestLatencies.length, usualMs: usual, p95Ms: p95, maxMs: sorted.at(-1) }, rssGrowthMiB: Math.round((rssPeak - rssBefore) / 1048576) }));
  });
});
