import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildReport, postReport } from '../../src/client/report';
import { isSnakebiteError } from '../../src/errors';
import { startFangServer } from '../../src/fang/server';
import { formatEndpoint } from '../../src/ip/address';
import { silentLogger } from '../../src/log/logger';
import { parsePeerReport } from '../../src/peer-list/parse';
import type { PeerReport } from '../../src/peer-list/peer-list';
import { device, endpoint, FakeDriver, ip, key, type PeerSpec } from '../support/fakes';

const SELF = key(0x01);
const FANG = key(0xf0);
const NOW = 1_700_000_000;

describe('buildReport', () => {
  const at = (n: number, extra: Partial<PeerSpec>): PeerSpec => ({ publicKey: key(n), endpoint: `198.51.100.${n}:${4000 + n}`, allowedIps: [`10.10.10.${n}/32`], latestHandshake: NOW - 10, ...extra });
  const rows: { name: string; peer: PeerSpec; seen: boolean }[] = [
    { name: 'a recent handshake and an endpoint', peer: at(2, {}), seen: true },
    { name: 'an IPv6 endpoint', peer: at(3, { endpoint: '[2001:db8::3]:51820' }), seen: true },
    { name: 'a handshake exactly a session ago', peer: at(4, { latestHandshake: NOW - 180 }), seen: true },
    { name: 'a handshake just over a session ago', peer: at(5, { latestHandshake: NOW - 181 }), seen: false },
    { name: 'never a handshake', peer: at(6, { latestHandshake: 0 }), seen: false },
    { name: 'no endpoint', peer: at(7, { endpoint: null }), seen: false },
    { name: 'relayed (no allowed IPs) but a direct handshake', peer: at(8, { allowedIps: [] }), seen: true },
    { name: 'a handshake in the future (clock step)', peer: at(9, { latestHandshake: NOW + 30 }), seen: true },
  ];
  for (const row of rows) {
    test(`${row.seen ? 'seen' : 'not seen'}: ${row.name}`, () => {
      const report = buildReport(device(SELF, [row.peer]), FANG, [], NOW);
      assert.deepEqual(report.seen.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), row.seen ? [[row.peer.publicKey, row.peer.endpoint!]] : []);
    });
  }

  test('the fang is never in seen, however fresh; listenPort and candidates are passed on', () => {
    const state = { ...device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW - 1 }, at(2, {})]), listenPort: 40000 };
    const candidates = [endpoint('192.168.1.2:40000')];
    const report = buildReport(state, FANG, candidates, NOW);
    assert.equal(report.listenPort, 40000);
    assert.equal(report.candidates, candidates);
    assert.deepEqual(report.seen.map((s) => s.publicKey), [key(2)]);
  });
});

describe('postReport', () => {
  const REPORT: PeerReport = { listenPort: 51820, candidates: [endpoint('192.168.1.2:51820')], seen: [{ publicKey: key(2), endpoint: endpoint('198.51.100.2:4002') }] };

  /** A plain HTTP server on 127.0.0.1 that answers each request with `handler`. */
  async function fake(t: TestContext, handler: (request: IncomingMessage, body: string, response: ServerResponse) => void): Promise<number> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => handler(request, Buffer.concat(chunks).toString('utf8'), response));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
    return (server.address() as AddressInfo).port;
  }

  test('POSTs the report as JSON to /v1/report and resolves on 204', async (t) => {
    let seen: { method?: string; url?: string; type?: string; body?: string } = {};
    const port = await fake(t, (request, body, response) => {
      seen = { method: request.method, url: request.url, type: request.headers['content-type'], body };
      response.writeHead(204).end();
    });
    await postReport(ip('127.0.0.1'), port, REPORT, 2000);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/v1/report');
    assert.equal(seen.type, 'application/json');
    assert.deepEqual(parsePeerReport(JSON.parse(seen.body ?? '')), REPORT);
  });

  const failures: { name: string; status: number; code: string; message: RegExp }[] = [
    { name: 'an older fang (404)', status: 404, code: 'SB_FETCH_FAILED', message: /does not take reports/ },
    { name: 'a refused report (400)', status: 400, code: 'SB_FETCH_FAILED', message: /HTTP 400/ },
    { name: 'a 200 is not a 204', status: 200, code: 'SB_FETCH_FAILED', message: /HTTP 200/ },
  ];
  for (const { name, status, code, message } of failures) {
    test(`${name}: ${code}`, async (t) => {
      const port = await fake(t, (_request, _body, response) => response.writeHead(status).end('nope'));
      await assert.rejects(postReport(ip('127.0.0.1'), port, REPORT, 2000), (error: unknown) => isSnakebiteError(error, code as 'SB_FETCH_FAILED') && message.test(error.message));
    });
  }

  test('no answer in time: SB_FETCH_TIMEOUT', async (t) => {
    const port = await fake(t, () => {
      /* never answers */
    });
    await assert.rejects(postReport(ip('127.0.0.1'), port, REPORT, 100), (error: unknown) => isSnakebiteError(error, 'SB_FETCH_TIMEOUT') && /within 100 ms/.test(error.message));
  });

  test('nothing listening: SB_FETCH_FAILED', async () => {
    // A port that was free a moment ago is the likeliest to stay closed.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const free = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(postReport(ip('127.0.0.1'), free, REPORT, 2000), (error: unknown) => isSnakebiteError(error, 'SB_FETCH_FAILED') && /report to the fang failed/.test(error.message));
  });

  test('the real fang server takes what buildReport makes', async (t) => {
    const fangState = device(FANG, [
      { publicKey: SELF, endpoint: '203.0.113.1:51820', allowedIps: ['10.10.10.2/32', '127.0.0.1/32'] },
      { publicKey: key(2), endpoint: '198.51.100.2:4002', allowedIps: ['10.10.10.3/32'] },
    ]);
    const server = await startFangServer({ driver: new FakeDriver(fangState), listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger });
    t.after(() => server.close());
    const ours = device(SELF, [{ publicKey: FANG, endpoint: '192.0.2.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW - 1 }, { publicKey: key(2), endpoint: '198.51.100.2:4002', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW - 5 }]);
    const before = server.watch.revision;
    await postReport(ip('127.0.0.1'), server.port, buildReport(ours, FANG, [endpoint('192.168.1.2:51820')], NOW), 2000);
    assert.ok(server.watch.revision > before, 'the fang took it as a change');
  });
});
