import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { isSnakebiteError } from '../../src/errors';
import type { ConnectionLimits } from '../../src/fang/connection-guard';
import { SharedDeviceView } from '../../src/fang/device-view';
import { addressesOf, assertListenAddressOnInterface } from '../../src/fang/listen-address';
import { buildPeerList, identifyAsker } from '../../src/fang/peer-list-view';
import { startFangServer, type FangServer } from '../../src/fang/server';
import { formatEndpoint } from '../../src/ip/address';
import { silentLogger, type Logger } from '../../src/log/logger';
import { parsePeerList } from '../../src/peer-list/parse';
import { PEER_LIST_LIMITS, type PeerList, type PeerReport } from '../../src/peer-list/peer-list';
import { serializePeerList, serializePeerReport } from '../../src/peer-list/serialize';
import type { DeviceState, PeerChange } from '../../src/wireguard/device-state';
import type { WireGuardDriver } from '../../src/wireguard/driver';
import type { WireGuardKey } from '../../src/wireguard/key';
import { canListenOnIpv6Loopback, captureLogger, device, endpoint, ip, key, prefix, stringify, within } from '../support/fakes';

const FANG = key(0xf0);
const ASKER = key(0x01);
const OTHER = key(0x02);
const SILENT = key(0x03);

/** A fang device: the asker's allowed IPs hold 127.0.0.1 and ::1, so requests over loopback come from it. */
function fangDevice(askerIps = ['10.10.10.2/32', '127.0.0.1/32', '::1/128']): DeviceState {
  return device(FANG, [
    { publicKey: ASKER, endpoint: '203.0.113.2:40000', allowedIps: askerIps, latestHandshake: 1700000000, rxBytes: 111, txBytes: 222, persistentKeepalive: 25, hasPresharedKey: true },
    { publicKey: OTHER, endpoint: '[2001:db8::3]:51820', allowedIps: ['10.10.10.3/32', 'fd00::3/128'], latestHandshake: 1700000100, rxBytes: 333, txBytes: 444, hasPresharedKey: true },
    { publicKey: SILENT, endpoint: null, allowedIps: ['10.10.10.4/32'] },
  ]);
}

/** A fake driver counting reads; `delayMs` keeps a read in flight so concurrent requests can share it. */
class CountingDriver implements WireGuardDriver {
  readonly interfaceName = 'wg0';
  reads = 0;
  applied: PeerChange[][] = [];
  constructor(
    public state: DeviceState | (() => DeviceState),
    private readonly delayMs = 0,
  ) {}
  async readDevice(): Promise<DeviceState> {
    this.reads++;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return typeof this.state === 'function' ? this.state() : this.state;
  }
  async applyPeerChanges(changes: readonly PeerChange[]): Promise<void> {
    this.applied.push([...changes]);
  }
}

async function startServer(
  t: TestContext,
  driver: WireGuardDriver,
  options: { logger?: Logger; host?: string; deviceMaxAgeMs?: number; connectionLimits?: ConnectionLimits } = {},
): Promise<FangServer> {
  const server = await startFangServer({
    driver,
    listenAddress: ip(options.host ?? '127.0.0.1'),
    port: 0,
    logger: options.logger ?? silentLogger,
    ...(options.deviceMaxAgeMs !== undefined ? { deviceMaxAgeMs: options.deviceMaxAgeMs } : {}),
    ...(options.connectionLimits ? { connectionLimits: options.connectionLimits } : {}),
  });
  t.after(() => server.close());
  return server;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, method = 'GET', host = '127.0.0.1', body?: string): Promise<Reply> {
  return within(
    3000,
    new Promise<Reply>((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
      const req = request({ host, port, path, method, agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }),
    `${method} ${path}`,
  );
}

describe('fang server', () => {
  test('GET /v1/peers: the asker is "you", excluded from peers, and nothing private leaves', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startServer(t, driver);
    const reply = await get(server.port, '/v1/peers');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.headers['cache-control'], 'no-store');
    assert.equal(Number(reply.headers['content-length']), Buffer.byteLength(reply.body));

    const json: unknown = JSON.parse(reply.body);
    const { list, rejected } = parsePeerList(json);
    assert.deepEqual(rejected, []);
    assert.equal(list.fang.publicKey, FANG);
    assert.equal(list.you.publicKey, ASKER);
    assert.equal(list.you.endpoint && formatEndpoint(list.you.endpoint), '203.0.113.2:40000');
    assert.deepEqual(list.peers.map((p) => p.publicKey), [OTHER, SILENT]);
    assert.deepEqual(list.peers.map((p) => p.endpoint && formatEndpoint(p.endpoint)), ['[2001:db8::3]:51820', null]);

    // Only the documented fields, and nothing that looks like counters, keepalives or preshared keys.
    const record = json as { peers: Record<string, unknown>[] } & Record<string, unknown>;
    const keys = Object.keys(record);
    for (const required of ['version', 'fang', 'you', 'peers']) assert.ok(keys.includes(required), `no ${required}`);
    assert.deepEqual(keys.filter((k) => !['version', 'fang', 'you', 'peers', 'revision', 'since', 'removed'].includes(k)), [], 'only documented fields');
    assert.deepEqual(Object.keys(record.you as object).sort(), ['endpoint', 'publicKey']);
    assert.deepEqual(Object.keys(record.fang as object), ['publicKey']);
    for (const p of record.peers) assert.deepEqual(Object.keys(p).sort(), ['allowedIps', 'endpoint', 'latestHandshake', 'publicKey']);
    for (const word of ['preshared', 'Preshared', 'private', 'Private', 'rxBytes', 'txBytes', 'keepalive', 'Keepalive', '127.0.0.1', '::1/128']) {
      assert.ok(!reply.body.includes(word), `body contains ${word}`);
    }
  });

  test('GET /v1/peers.txt: "<key> <endpoint>" lines for the other peers with endpoints', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const reply = await get(server.port, '/v1/peers.txt');
    assert.equal(reply.status, 200);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    assert.equal(reply.body, `${OTHER} [2001:db8::3]:51820\n`);
  });

  test('a query string is ignored', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    assert.equal((await get(server.port, '/v1/peers?x=1')).status, 200);
  });

  test('HEAD gives the headers and no body', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const reply = await get(server.port, '/v1/peers', 'HEAD');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '');
    assert.ok(Number(reply.headers['content-length']) > 0);
  });

  test('the fang itself (its listen address, in no peer\'s allowed IPs) gets 403, and it is logged', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(fangDevice(['10.10.10.2/32'])), { logger });
    const reply = await get(server.port, '/v1/peers');
    assert.equal(reply.status, 403);
    assert.ok(!reply.body.includes(OTHER), 'a refused asker learns no keys');
    const refused = lines.find((l) => l.event === 'request-refused');
    assert.equal(refused?.level, 'warn');
    assert.equal(refused?.source, '127.0.0.1');
  });

  test('the asker is the longest match: a wide range of another peer does not win', async (t) => {
    const state = device(FANG, [
      { publicKey: OTHER, endpoint: '198.51.100.3:1', allowedIps: ['127.0.0.0/8'] },
      { publicKey: ASKER, endpoint: '198.51.100.2:1', allowedIps: ['127.0.0.1/32'] },
    ]);
    const server = await startServer(t, new CountingDriver(state));
    const { list } = parsePeerList(JSON.parse((await get(server.port, '/v1/peers')).body));
    assert.equal(list.you.publicKey, ASKER);
    assert.deepEqual(list.peers.map((p) => p.publicKey), [OTHER]);
  });

  test('unknown path: 404', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    for (const path of ['/', '/v1/peer', '/v2/peers', '/v1/peers/', '/v1/peers.json', '/../v1/peers']) {
      const reply = await get(server.port, path);
      assert.equal(reply.status, 404, path);
      assert.match(reply.body, /\/v1\/peers/);
    }
  });

  test('POST, PUT and DELETE: 405 with Allow', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startServer(t, driver);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const reply = await get(server.port, '/v1/peers', method, '127.0.0.1', '{"peers":[]}');
      assert.equal(reply.status, 405, method);
      assert.equal(reply.headers.allow, 'GET, HEAD');
    }
    assert.ok(driver.reads <= 1, 'a refused method costs no interface read beyond the one at accept that identifies the peer');
    assert.equal(driver.applied.length, 0);
  });

  test('garbage bytes get 400 (or a closed socket), and the server still serves', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(fangDevice()), { logger });
    const answer = await within(
      3000,
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: server.port });
        let received = '';
        socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
        socket.on('close', () => resolve(received));
        socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve(received) : reject(error)));
        socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x47, 0x45, 0x54, 0x20, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]));
      }),
      'the malformed request',
    );
    assert.ok(answer === '' || answer.startsWith('HTTP/1.1 400'), JSON.stringify(answer));
    assert.ok(lines.some((l) => l.event === 'request-malformed'));
    assert.equal((await get(server.port, '/v1/peers')).status, 200);
  });

  test('a header block that never ends does not stop other requests', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const socket = connect({ host: '127.0.0.1', port: server.port });
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    socket.write('GET /v1/peers HTTP/1.1\r\nhost: x\r\n');
    assert.equal((await get(server.port, '/v1/peers')).status, 200);
  });

  test('50 concurrent requests share one interface read', async (t) => {
    const driver = new CountingDriver(fangDevice(), 100);
    const server = await startServer(t, driver, { connectionLimits: { perPeer: 64, headroom: 64, unknown: 16 } });
    const replies = await Promise.all(Array.from({ length: 50 }, () => get(server.port, '/v1/peers')));
    assert.ok(replies.every((r) => r.status === 200));
    assert.ok(new Set(replies.map((r) => r.body)).size === 1, 'every asker got the same list');
    assert.ok(driver.reads <= 2, `driver read ${driver.reads} times`);
    assert.equal(server.view.reads, driver.reads);
  });

  test('a failed interface read gives 503 and is logged; the next read is tried again', async (t) => {
    const { logger, lines } = captureLogger();
    let fail = true;
    const driver = new CountingDriver(() => {
      if (fail) throw new Error('wg exploded');
      return fangDevice();
    });
    const server = await startServer(t, driver, { logger, deviceMaxAgeMs: 10_000 });
    assert.equal((await get(server.port, '/v1/peers')).status, 503);
    assert.ok(lines.some((l) => l.event === 'interface-read-failed' && l.level === 'error' && String(l.error).includes('wg exploded')));
    fail = false;
    assert.equal((await get(server.port, '/v1/peers')).status, 200);
  });

  test('a fang interface without a key answers 500 without crashing', async (t) => {
    const state = { ...fangDevice(), publicKey: null };
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(state), { logger });
    assert.equal((await get(server.port, '/v1/peers')).status, 500);
    assert.ok(lines.some((l) => l.event === 'request-failed'));
    assert.equal((await get(server.port, '/nope')).status, 404);
  });

  test('a second server on the same port: SB_LISTEN_FAILED with a hint', async (t) => {
    const first = await startServer(t, new CountingDriver(fangDevice()));
    await assert.rejects(
      startFangServer({ driver: new CountingDriver(fangDevice()), listenAddress: ip('127.0.0.1'), port: first.port, logger: silentLogger }),
      (error: unknown) => {
        assert.ok(isSnakebiteError(error, 'SB_LISTEN_FAILED'));
        assert.match(error.message, new RegExp(`127\\.0\\.0\\.1 port ${first.port}: EADDRINUSE`));
        assert.match(error.hint ?? '', /another process/);
        return true;
      },
    );
  });

  test('it logs where it listens', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(fangDevice()), { logger });
    assert.deepEqual(
      lines.filter((l) => l.event === 'server-listening').map((l) => ({ interface: l.interface, listen: l.listen, port: l.port })),
      [{ interface: 'wg0', listen: '127.0.0.1', port: server.port }],
    );
  });

  test('IPv6: serves on ::1 and identifies the asker by ::1/128', async (t) => {
    if (!(await canListenOnIpv6Loopback())) return t.skip('no ::1 on this machine');
    const server = await startServer(t, new CountingDriver(fangDevice(['10.10.10.2/32', '::1/128'])), { host: '::1' });
    const reply = await get(server.port, '/v1/peers', 'GET', '::1');
    assert.equal(reply.status, 200);
    assert.equal(parsePeerList(JSON.parse(reply.body)).list.you.publicKey, ASKER);
  });

  test('close() ends idle keep-alive connections too', async (t) => {
    const server = await startFangServer({ driver: new CountingDriver(fangDevice()), listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger });
    const socket = connect({ host: '127.0.0.1', port: server.port });
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /v1/peers HTTP/1.1\r\nhost: x\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    await within(2000, server.close(), 'close()');
  });
});

describe('fang server: revisions, deltas and long polls', () => {
  interface Body {
    revision?: number;
    since?: number;
    removed?: string[];
    peers: { publicKey: string; endpoint: string | null }[];
  }
  const json = async (port: number, path: string): Promise<Body> => {
    const reply = await get(port, path);
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as Body;
  };

  test('the full list carries the current revision; since=<current> gives an empty delta', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const full = await json(server.port, '/v1/peers');
    assert.equal(typeof full.revision, 'number');
    const delta = await json(server.port, `/v1/peers?since=${full.revision}`);
    assert.equal(delta.since, full.revision);
    assert.equal(delta.revision, full.revision);
    assert.deepEqual(delta.peers, []);
    assert.deepEqual(delta.removed, []);
  });

  test('after a peer moves, a delta holds only that peer; a removed peer is listed as removed', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startServer(t, driver, { deviceMaxAgeMs: 0 });
    const first = await json(server.port, '/v1/peers');
    const moved = fangDevice();
    driver.state = { ...moved, peers: moved.peers.filter((p) => p.publicKey !== SILENT).map((p) => (p.publicKey === OTHER ? { ...p, endpoint: { ...p.endpoint!, port: 9999 } } : p)) };
    const delta = await json(server.port, `/v1/peers?since=${first.revision}`);
    assert.equal(delta.since, first.revision);
    assert.ok((delta.revision ?? 0) > (first.revision ?? 0));
    assert.deepEqual(delta.peers.map((p) => [p.publicKey, p.endpoint]), [[OTHER, '[2001:db8::3]:9999']]);
    assert.deepEqual(delta.removed, [SILENT]);
    const parsed = parsePeerList(delta);
    assert.deepEqual(parsed.rejected, []);
  });

  test('peers.txt with since is still the whole list (text cannot say "removed")', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startServer(t, driver, { deviceMaxAgeMs: 0 });
    const first = await json(server.port, '/v1/peers');
    const state = fangDevice();
    driver.state = { ...state, peers: state.peers.map((p) => (p.publicKey === SILENT ? { ...p, endpoint: { address: ip('198.51.100.44'), port: 4444 } } : p)) };
    assert.equal((await json(server.port, `/v1/peers?since=${first.revision}`)).peers.length, 1);
    const text = await get(server.port, `/v1/peers.txt?since=${first.revision}`);
    assert.equal(text.status, 200);
    assert.equal(text.body, `${OTHER} [2001:db8::3]:51820\n${SILENT} 198.51.100.44:4444\n`);
  });

  test('a long poll whose interface read fails after the change answers 503, not 500', async (t) => {
    let reads = 0;
    let changedAt = Infinity;
    const driver = new CountingDriver(() => {
      reads++;
      if (reads > changedAt + 1) throw new Error('wg exploded');
      const state = fangDevice();
      return reads > changedAt ? { ...state, peers: state.peers.filter((p) => p.publicKey !== SILENT) } : state;
    });
    const server = await startFangServer({ driver, listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger, deviceMaxAgeMs: 0, watchIntervalMs: 20 });
    t.after(() => server.close());
    const first = await json(server.port, '/v1/peers');
    const pending = get(server.port, `/v1/peers?since=${first.revision}&wait=10`);
    setTimeout(() => (changedAt = reads), 60);
    assert.equal((await within(5000, pending)).status, 503);
  });

  test('an unknown since (another fang, or a restart) gets the full list', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const body = await json(server.port, '/v1/peers?since=1');
    assert.equal(body.since, undefined);
    assert.equal(body.peers.length, 2);
  });

  for (const query of ['since=-1', 'since=abc', 'since=1&wait=61', 'since=1&wait=x', 'since=1.5', `since=${'9'.repeat(17)}`]) {
    test(`a malformed query (${query}): 400`, async (t) => {
      const server = await startServer(t, new CountingDriver(fangDevice()));
      assert.equal((await get(server.port, `/v1/peers?${query}`)).status, 400);
    });
  }

  test('a long poll is answered as soon as a peer changes', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startFangServer({ driver, listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger, deviceMaxAgeMs: 0, watchIntervalMs: 20 });
    t.after(() => server.close());
    const first = await json(server.port, '/v1/peers');
    const started = Date.now();
    const pending = json(server.port, `/v1/peers?since=${first.revision}&wait=10`);
    setTimeout(() => {
      const state = fangDevice();
      driver.state = { ...state, peers: state.peers.map((p) => (p.publicKey === SILENT ? { ...p, endpoint: { address: ip('198.51.100.44'), port: 4444 } } : p)) };
    }, 50);
    const delta = await pending;
    assert.ok(Date.now() - started < 2000, 'answered long before the wait ran out');
    assert.deepEqual(delta.peers.map((p) => [p.publicKey, p.endpoint]), [[SILENT, '198.51.100.44:4444']]);
  });

  test('since with wait=0 answers at once, without waiting', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const first = await json(server.port, '/v1/peers');
    const started = Date.now();
    const delta = await json(server.port, `/v1/peers?since=${first.revision}&wait=0`);
    assert.ok(Date.now() - started < 1500);
    assert.deepEqual(delta.peers, []);
    assert.equal(server.watch.waiting, 0);
  });

  test('a client hanging up ends its long poll; close() ends the rest at once', async (t) => {
    const driver = new CountingDriver(fangDevice());
    const server = await startFangServer({ driver, listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger, watchIntervalMs: 20 });
    let closed = false;
    t.after(() => (closed ? undefined : server.close()));
    const first = await json(server.port, '/v1/peers');
    const path = `/v1/peers?since=${first.revision}&wait=30`;
    const hangUp = connect({ host: '127.0.0.1', port: server.port });
    hangUp.on('error', () => {});
    hangUp.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    const stay = connect({ host: '127.0.0.1', port: server.port });
    stay.on('error', () => {});
    t.after(() => stay.destroy());
    stay.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`);
    const deadline = Date.now() + 2000;
    while (server.watch.waiting < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(server.watch.waiting, 2);
    hangUp.destroy();
    while (server.watch.waiting > 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(server.watch.waiting, 1, 'the hung-up request stopped waiting');
    const started = Date.now();
    await within(2000, server.close(), 'close() with a long poll open');
    closed = true;
    assert.ok(Date.now() - started < 1000);
    assert.equal(server.watch.waiting, 0);
  });
});

describe('SharedDeviceView', () => {
  test('serves one read while fresh and reads again when stale', async () => {
    let now = 1000;
    const driver = new CountingDriver(fangDevice());
    const view = new SharedDeviceView(driver, 500, () => now);
    await view.read();
    now += 499;
    await view.read();
    assert.equal(driver.reads, 1);
    now += 1;
    await view.read();
    assert.equal(driver.reads, 2);
    assert.equal(view.reads, 2);
  });

  test('concurrent reads share the one in flight', async () => {
    const driver = new CountingDriver(fangDevice(), 20);
    const view = new SharedDeviceView(driver, 0);
    const states = await Promise.all([view.read(), view.read(), view.read()]);
    assert.equal(driver.reads, 1);
    assert.ok(states.every((s) => s === states[0]));
  });

  test('a failure is not cached', async () => {
    let fail = true;
    const driver = new CountingDriver(() => {
      if (fail) throw new Error('no');
      return fangDevice();
    });
    const view = new SharedDeviceView(driver, 60_000);
    await assert.rejects(view.read(), /no/);
    fail = false;
    assert.equal((await view.read()).publicKey, FANG);
    assert.equal(driver.reads, 2);
  });
});

describe('identifyAsker / buildPeerList', () => {
  const state = fangDevice();
  const rows = [
    { name: 'overlay address', source: '10.10.10.3', want: OTHER },
    { name: 'IPv6 overlay address', source: 'fd00::3', want: OTHER },
    { name: 'loopback for the tests', source: '127.0.0.1', want: ASKER },
    { name: 'unknown', source: '10.10.10.99', want: undefined },
    { name: 'the fang itself', source: '10.10.10.1', want: undefined },
  ];
  for (const { name, source, want } of rows) {
    test(`identifyAsker: ${name}`, () => assert.equal(identifyAsker(state, ip(source))?.publicKey, want));
  }

  test('buildPeerList keeps only key, endpoint, allowed IPs and handshake', () => {
    const list = buildPeerList(state, state.peers[1]!);
    assert.equal(list.you.publicKey, OTHER);
    assert.deepEqual(list.peers.map((p) => p.publicKey), [ASKER, SILENT]);
    for (const p of list.peers) assert.deepEqual(Object.keys(p).sort(), ['allowedIps', 'endpoint', 'latestHandshake', 'publicKey']);
    assert.ok(!stringify(list).includes('hasPresharedKey'));
  });

  test('buildPeerList refuses a device without a key', () => {
    assert.throws(() => buildPeerList({ ...state, publicKey: null }, state.peers[0]!), /no key/);
  });
});

describe('assertListenAddressOnInterface', () => {
  const table = {
    wg0: [
      { address: '10.10.10.1', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: false, cidr: '10.10.10.1/24' },
      { address: 'fe80::1%wg0', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '00:00:00:00:00:00', internal: false, cidr: 'fe80::1/64', scopeid: 5 },
    ],
  };

  test('an address of the interface passes', () => {
    assert.doesNotThrow(() => assertListenAddressOnInterface('wg0', ip('10.10.10.1'), table));
    assert.doesNotThrow(() => assertListenAddressOnInterface('wg0', ip('fe80::1'), table));
  });

  test('addressesOf drops zones and unknown interfaces are empty', () => {
    assert.deepEqual(addressesOf('wg0', table).map((a) => a.zone), [undefined, undefined]);
    assert.deepEqual(addressesOf('wg9', table), []);
  });

  test('another address: SB_LISTEN_NOT_ON_INTERFACE naming what the interface has', () => {
    assert.throws(
      () => assertListenAddressOnInterface('wg0', ip('0.0.0.0'), table),
      (error: unknown) => {
        assert.ok(isSnakebiteError(error, 'SB_LISTEN_NOT_ON_INTERFACE'));
        assert.match(error.message, /0\.0\.0\.0 is not an address of wg0; wg0 has 10\.10\.10\.1, fe80::1/);
        assert.match(error.hint ?? '', /--listen 10\.10\.10\.1/);
        return true;
      },
    );
  });

  test('a missing interface says so', () => {
    assert.throws(() => assertListenAddressOnInterface('wg9', ip('10.10.10.1'), table), /wg9 has no addresses \(or it does not exist\)/);
  });
});

describe('buildPeerList with reports', () => {
  const state = fangDevice();
  const [asker, other, silent] = state.peers as [DeviceState['peers'][number], DeviceState['peers'][number], DeviceState['peers'][number]];
  const reports = new Map<WireGuardKey, PeerReport>([
    [OTHER, { listenPort: 51820, candidates: [endpoint('192.168.1.3:51820'), endpoint('[fd12::3]:51820')], seen: [{ publicKey: ASKER, endpoint: endpoint('203.0.113.2:40001') }, { publicKey: SILENT, endpoint: endpoint('198.51.100.4:4') }] }],
    [SILENT, { listenPort: 4000, candidates: [], seen: [{ publicKey: OTHER, endpoint: endpoint('[2001:db8::3]:40000') }] }],
    [ASKER, { listenPort: 40000, candidates: [endpoint('192.168.1.2:40000')], seen: [{ publicKey: OTHER, endpoint: endpoint('[2001:db8::3]:51820') }] }],
  ]);
  const show = (list: PeerList) => ({
    you: list.you.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]),
    peers: list.peers.map((p) => ({
      publicKey: p.publicKey,
      listenPort: p.listenPort,
      candidates: p.candidates?.map(formatEndpoint),
      seenBy: p.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]),
    })),
  });

  test("an entry carries its own report's listenPort and candidates, and what other peers saw of it", () => {
    assert.deepEqual(show(buildPeerList(state, asker, 7, undefined, reports)), {
      you: [[OTHER, '203.0.113.2:40001']],
      peers: [
        { publicKey: OTHER, listenPort: 51820, candidates: ['192.168.1.3:51820', '[fd12::3]:51820'], seenBy: [[SILENT, '[2001:db8::3]:40000'], [ASKER, '[2001:db8::3]:51820']] },
        { publicKey: SILENT, listenPort: 4000, candidates: [], seenBy: [[OTHER, '198.51.100.4:4']] },
      ],
    });
  });

  test("another asker sees the first asker's report on its entry", () => {
    const list = buildPeerList(state, other, 7, undefined, reports);
    assert.deepEqual(show(list).you, [[SILENT, '[2001:db8::3]:40000'], [ASKER, '[2001:db8::3]:51820']]);
    assert.deepEqual(show(list).peers[0], { publicKey: ASKER, listenPort: 40000, candidates: ['192.168.1.2:40000'], seenBy: [[OTHER, '203.0.113.2:40001']] });
  });

  test('without reports an entry has none of those fields, and "you" no seenBy', () => {
    const list = buildPeerList(state, silent, 7, undefined, new Map([[OTHER, { listenPort: 1, candidates: [], seen: [] }]]));
    assert.equal('seenBy' in list.you, false);
    assert.deepEqual(Object.keys(list.peers.find((p) => p.publicKey === ASKER)!).sort(), ['allowedIps', 'endpoint', 'latestHandshake', 'publicKey']);
    assert.deepEqual(Object.keys(list.peers.find((p) => p.publicKey === OTHER)!).sort(), ['allowedIps', 'candidates', 'endpoint', 'latestHandshake', 'listenPort', 'publicKey']);
  });

  test('a delta carries the reported fields of the changed entries only', () => {
    const list = buildPeerList(state, asker, 8, { since: 7, changed: new Set([SILENT]), removed: new Set() }, reports);
    assert.deepEqual(show(list).peers, [{ publicKey: SILENT, listenPort: 4000, candidates: [], seenBy: [[OTHER, '198.51.100.4:4']] }]);
  });

  test('the list with reports survives serialize -> JSON -> parse', () => {
    const list = buildPeerList(state, asker, 7, undefined, reports);
    const { list: parsed, rejected } = parsePeerList(JSON.parse(JSON.stringify(serializePeerList(list))));
    assert.deepEqual(rejected, []);
    assert.deepEqual(show(parsed), show(list));
  });
});

describe('fang server: POST /v1/report', () => {
  const REPORT: PeerReport = {
    listenPort: 40000,
    candidates: [endpoint('192.168.1.2:40000')],
    seen: [
      { publicKey: OTHER, endpoint: endpoint('[2001:db8::3]:40404') },
      { publicKey: key(0x77), endpoint: endpoint('198.51.100.77:7') }, // not a peer of this fang: dropped
      { publicKey: ASKER, endpoint: endpoint('203.0.113.2:40000') }, // itself: dropped
    ],
  };
  const post = (port: number, body: string) => get(port, '/v1/report', 'POST', '127.0.0.1', body);
  const reportBody = (report: PeerReport = REPORT) => JSON.stringify(serializePeerReport(report));
  const peersOf = async (port: number, path = '/v1/peers') => {
    const reply = await get(port, path);
    assert.equal(reply.status, 200, reply.body);
    return parsePeerList(JSON.parse(reply.body)).list;
  };

  test('a peer reports: 204, and its observations reach the entries of the peers it saw', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(fangDevice()), { logger });
    const reply = await post(server.port, reportBody());
    assert.equal(reply.status, 204);
    assert.equal(reply.body, '');
    const list = await peersOf(server.port);
    const other = list.peers.find((p) => p.publicKey === OTHER);
    assert.deepEqual(other?.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), [[ASKER, '[2001:db8::3]:40404']]);
    assert.equal(list.peers.find((p) => p.publicKey === SILENT)?.seenBy, undefined);
    assert.ok(lines.some((l) => l.event === 'report-received' && l.peer === ASKER && l.seen === 1), 'only the observation of a known other peer is kept');
  });

  test("another peer's list carries the reporter's listenPort and candidates", async (t) => {
    let owner: 'asker' | 'other' = 'asker';
    // Loopback is the asker's until the test hands 127.0.0.1 to OTHER, to ask as OTHER.
    const driver = new CountingDriver(() => {
      const state = fangDevice(owner === 'asker' ? ['10.10.10.2/32', '127.0.0.1/32'] : ['10.10.10.2/32']);
      return owner === 'asker' ? state : { ...state, peers: state.peers.map((p) => (p.publicKey === OTHER ? { ...p, allowedIps: [...p.allowedIps, prefix('127.0.0.1/32')] } : p)) };
    });
    const server = await startServer(t, driver, { deviceMaxAgeMs: 0 });
    assert.equal((await post(server.port, reportBody())).status, 204);
    owner = 'other';
    const list = await peersOf(server.port);
    assert.equal(list.you.publicKey, OTHER);
    const asker = list.peers.find((p) => p.publicKey === ASKER);
    assert.equal(asker?.listenPort, 40000);
    assert.deepEqual(asker?.candidates?.map(formatEndpoint), ['192.168.1.2:40000']);
    assert.deepEqual(list.you.seenBy?.map((s) => [s.publicKey, formatEndpoint(s.endpoint)]), [[ASKER, '[2001:db8::3]:40404']]);
  });

  test('the fang itself (in no peer\'s allowed IPs): 403, and it is logged', async (t) => {
    const { logger, lines } = captureLogger();
    const server = await startServer(t, new CountingDriver(fangDevice(['10.10.10.2/32'])), { logger });
    const reply = await post(server.port, reportBody());
    assert.equal(reply.status, 403);
    assert.ok(lines.some((l) => l.event === 'request-refused' && l.path === '/v1/report' && l.level === 'warn'));
  });

  const malformed: { name: string; body: string; want: RegExp }[] = [
    { name: 'listenPort out of range', body: JSON.stringify({ listenPort: 0, candidates: [], seen: [] }), want: /listenPort: expected a port from 1 to 65535, got 0/ },
    { name: 'a bad candidate', body: JSON.stringify({ listenPort: 1, candidates: ['127.0.0.1:1'] }), want: /candidates\[0\]: "127\.0\.0\.1:1" is a loopback address/ },
    { name: 'a bad observation', body: JSON.stringify({ listenPort: 1, seen: [{ publicKey: 'x', endpoint: '198.51.100.1:1' }] }), want: /seen\[0\]\.publicKey: expected a WireGuard public key/ },
    { name: 'not JSON', body: '{"listenPort":', want: /JSON/ },
    { name: 'an empty body', body: '', want: /JSON/ },
  ];
  for (const { name, body, want } of malformed) {
    test(`a malformed report (${name}): 400 naming what is wrong`, async (t) => {
      const { logger, lines } = captureLogger();
      const server = await startServer(t, new CountingDriver(fangDevice()), { logger });
      const revision = (await peersOf(server.port)).revision;
      const reply = await post(server.port, body);
      assert.equal(reply.status, 400);
      assert.match(reply.body, want);
      assert.ok(lines.some((l) => l.event === 'report-refused' && l.peer === ASKER));
      assert.equal((await peersOf(server.port)).revision, revision, 'a refused report changes nothing');
    });
  }

  test('a report over the size limit: 413, and the server still serves', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const huge = JSON.stringify({ listenPort: 1, padding: 'x'.repeat(PEER_LIST_LIMITS.maxReportBytes) });
    const reply = await post(server.port, huge);
    assert.equal(reply.status, 413);
    assert.match(reply.body, new RegExp(`at most ${PEER_LIST_LIMITS.maxReportBytes} bytes`));
    assert.equal((await post(server.port, reportBody())).status, 204);
  });

  test('a report just under the limit is read', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const base = reportBody();
    const padded = `${base.slice(0, -1)},"padding":"${'x'.repeat(PEER_LIST_LIMITS.maxReportBytes - base.length - 13)}"}`;
    assert.equal(Buffer.byteLength(padded), PEER_LIST_LIMITS.maxReportBytes);
    assert.equal((await post(server.port, padded)).status, 204);
  });

  for (const method of ['GET', 'PUT', 'DELETE']) {
    test(`${method} /v1/report: 405 with Allow: POST, and no interface read`, async (t) => {
      const driver = new CountingDriver(fangDevice());
      const server = await startServer(t, driver);
      const reply = await get(server.port, '/v1/report', method);
      assert.equal(reply.status, 405);
      assert.equal(reply.headers.allow, 'POST');
      assert.ok(driver.reads <= 1, 'only the read at accept that identifies the peer');
    });
  }

  test('a report bumps the revision only when it says something new', async (t) => {
    const server = await startServer(t, new CountingDriver(fangDevice()));
    const r0 = (await peersOf(server.port)).revision!;
    assert.equal((await post(server.port, reportBody())).status, 204);
    const r1 = (await peersOf(server.port)).revision!;
    assert.ok(r1 > r0);
    assert.deepEqual([...(server.watch.changesSince(r0)?.changed ?? [])].sort(), [ASKER, OTHER].sort(), 'the reporter and the peers it saw');
    assert.equal((await post(server.port, reportBody())).status, 204);
    assert.equal((await peersOf(server.port)).revision, r1, 'the same report again is no change');
    assert.equal((await post(server.port, reportBody({ ...REPORT, seen: [] }))).status, 204);
    // One reporter wakes the others at most once a second: this change lands within it.
    assert.equal(server.watch.revision, r1, 'not at once: the reporter changed something less than a second ago');
    for (let i = 0; i < 60 && server.watch.revision === r1; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual([...(server.watch.changesSince(r1)?.changed ?? [])].sort(), [ASKER, OTHER].sort(), 'a peer no longer seen changes too');
  });

  test('a report wakes a waiting long poll, whose delta carries it', async (t) => {
    const server = await startFangServer({ driver: new CountingDriver(fangDevice()), listenAddress: ip('127.0.0.1'), port: 0, logger: silentLogger, watchIntervalMs: 20 });
    t.after(() => server.close());
    const r0 = (await peersOf(server.port)).revision!;
    const started = Date.now();
    const pending = get(server.port, `/v1/peers?since=${r0}&wait=5`);
    const deadline = Date.now() + 2000;
    while (server.watch.waiting < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(server.watch.waiting, 1);
    assert.equal((await post(server.port, reportBody())).status, 204);
    const reply = await pending;
    assert.ok(Date.now() - started < 2000, 'answered long before the wait ran out');
    const { list: delta } = parsePeerList(JSON.parse(reply.body));
    assert.equal(delta.since, r0);
    assert.ok((delta.revision ?? 0) > r0);
    // Over loopback the long poll comes from the reporter itself, so its delta holds the peer it reported on;
    // the reporter's own entry is in the delta every other peer gets.
    assert.deepEqual(delta.peers.map((p) => [p.publicKey, p.seenBy?.map((s) => s.publicKey)]), [[OTHER, [ASKER]]]);
    assert.ok(server.watch.changesSince(r0)?.changed.has(ASKER));
  });
});
