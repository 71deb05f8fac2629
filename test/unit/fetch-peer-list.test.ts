import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { fetchPeerList, MAX_REPLY_BYTES, type FetchOptions } from '../../src/client/fetch-peer-list';
import { isSnakebiteError, type ErrorCode } from '../../src/errors';
import { parseIp } from '../../src/ip/address';
import { canListenOnIpv6Loopback, within } from '../support/fakes';

const LOOPBACK = parseIp('127.0.0.1')!;

async function httpServer(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void, host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port };
}

function options(port: number, extra: Partial<FetchOptions> = {}): FetchOptions {
  return { server: LOOPBACK, port, timeoutMs: 2000, maxBytes: MAX_REPLY_BYTES, ...extra };
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(within(3000, promise, 'fetchPeerList'), (error: unknown) => {
    assert.ok(isSnakebiteError(error, code), `want ${code}, got ${String(error)}`);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('fetchPeerList', () => {
  test('good JSON: one GET of /v1/peers, decoded', async (t) => {
    const seen: { method?: string; url?: string; accept?: string }[] = [];
    const { port } = await httpServer(t, (req, res) => {
      seen.push({ method: req.method, url: req.url, accept: req.headers.accept });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":1,"peers":[]}\n');
    });
    assert.deepEqual(await fetchPeerList(options(port)), { version: 1, peers: [] });
    assert.deepEqual(seen, [{ method: 'GET', url: '/v1/peers', accept: 'application/json' }]);
  });

  test('since and waitSeconds become the query', async (t) => {
    const urls: (string | undefined)[] = [];
    const { port } = await httpServer(t, (req, res) => {
      urls.push(req.url);
      res.writeHead(200).end('{}');
    });
    await fetchPeerList(options(port, { since: 42 }));
    await fetchPeerList(options(port, { since: 43, waitSeconds: 25 }));
    await fetchPeerList(options(port, { waitSeconds: 25 }));
    assert.deepEqual(urls, ['/v1/peers?since=42', '/v1/peers?since=43&wait=25', '/v1/peers']);
  });

  test('a body of exactly maxBytes is accepted, chunked', async (t) => {
    const body = `[${'0,'.repeat(49)}0]`; // 101 bytes
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < body.length; i += 10) res.write(body.slice(i, i + 10));
      res.end();
    });
    const value = await fetchPeerList(options(port, { maxBytes: Buffer.byteLength(body) }));
    assert.equal((value as unknown[]).length, 50);
  });

  test('not JSON: SB_REPLY_MALFORMED', async (t) => {
    const { port } = await httpServer(t, (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>'));
    await rejectsWith(fetchPeerList(options(port)), 'SB_REPLY_MALFORMED', new RegExp(`http://127\\.0\\.0\\.1:${port}/v1/peers sent a body that is not JSON`));
  });

  test('an empty 200 body: SB_REPLY_MALFORMED', async (t) => {
    const { port } = await httpServer(t, (_req, res) => res.writeHead(200).end());
    await rejectsWith(fetchPeerList(options(port)), 'SB_REPLY_MALFORMED');
  });

  test('a declared content-length over maxBytes: SB_REPLY_TOO_LARGE before reading it', async (t) => {
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200, { 'content-length': 5000 });
      res.write('x'.repeat(100)); // and never the rest
    });
    await rejectsWith(fetchPeerList(options(port, { maxBytes: 1000 })), 'SB_REPLY_TOO_LARGE', /announced 5000 bytes, more than the limit of 1000/);
  });

  test('a chunked body growing past maxBytes: SB_REPLY_TOO_LARGE', async (t) => {
    let timer: NodeJS.Timeout | undefined;
    t.after(() => clearInterval(timer));
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      // An endless stream: only the client's limit can stop it.
      timer = setInterval(() => res.write(`${'1,'.repeat(500)}`), 1);
    });
    await rejectsWith(fetchPeerList(options(port, { maxBytes: 10_000 })), 'SB_REPLY_TOO_LARGE', /sent more than the limit of 10000 bytes/);
  });

  test('a body larger than its content-length claims is still cut at maxBytes', async (t) => {
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200);
      res.end(' '.repeat(4096));
    });
    await rejectsWith(fetchPeerList(options(port, { maxBytes: 1000 })), 'SB_REPLY_TOO_LARGE');
  });

  test('a server that accepts and never answers: SB_FETCH_TIMEOUT, on time', async (t) => {
    const sockets: Socket[] = [];
    const server = createNetServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as { port: number }).port;
    const started = Date.now();
    await rejectsWith(fetchPeerList(options(port, { timeoutMs: 200 })), 'SB_FETCH_TIMEOUT', /did not answer within 200 ms/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 190 && elapsed < 2000, `took ${elapsed} ms`);
  });

  test('a server that trickles bytes: the deadline covers the whole body', async (t) => {
    let timer: NodeJS.Timeout | undefined;
    t.after(() => clearInterval(timer));
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      timer = setInterval(() => res.write(' '), 20);
    });
    const started = Date.now();
    await rejectsWith(fetchPeerList(options(port, { timeoutMs: 200 })), 'SB_FETCH_TIMEOUT');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 190 && elapsed < 2000, `took ${elapsed} ms`);
  });

  test('a server that sends headers slowly: timeout too', async (t) => {
    const sockets: Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    const server = createNetServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      timers.push(setInterval(() => socket.write('X-Slow: 1\r\n'), 20));
      socket.write('HTTP/1.1 200 OK\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    await rejectsWith(fetchPeerList(options((server.address() as { port: number }).port, { timeoutMs: 200 })), 'SB_FETCH_TIMEOUT');
  });

  test('403: SB_SERVER_REFUSED', async (t) => {
    const { port } = await httpServer(t, (_req, res) => res.writeHead(403).end('this service answers WireGuard peers of the fang only\n'));
    await assert.rejects(fetchPeerList(options(port)), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_SERVER_REFUSED'));
      assert.match(error.message, /answered 403/);
      assert.match(error.hint ?? '', /AllowedIPs/);
      return true;
    });
  });

  for (const status of [404, 500, 503]) {
    test(`${status}: SB_FETCH_FAILED naming the status`, async (t) => {
      const { port } = await httpServer(t, (_req, res) => res.writeHead(status).end('no'));
      await rejectsWith(fetchPeerList(options(port)), 'SB_FETCH_FAILED', new RegExp(`answered HTTP ${status}`));
      // The fang's machine answered: the tunnel works, so the daemon retries within a second.
      await assert.rejects(fetchPeerList(options(port)), (error: unknown) => isSnakebiteError(error) && error.fangAnswered);
    });
  }

  test('connection refused: SB_FETCH_FAILED with a hint to start the server', async () => {
    const server = createNetServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(within(3000, fetchPeerList(options(port))), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_FETCH_FAILED'));
      assert.match(error.message, /ECONNREFUSED/);
      assert.match(error.hint ?? '', /nothing listens there: start snakebite server on the fang with --listen 127\.0\.0\.1/);
      assert.equal(error.fangAnswered, true);
      return true;
    });
  });

  test('the connection dropped mid-body: fails at once, not at the deadline', async (t) => {
    const { port } = await httpServer(t, (_req, res) => {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('{"version":');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const started = Date.now();
    await assert.rejects(within(6000, fetchPeerList(options(port, { timeoutMs: 5000 }))), (error: unknown) => isSnakebiteError(error, 'SB_FETCH_FAILED'));
    assert.ok(Date.now() - started < 2500, 'should not wait for the timeout');
  });

  test('an aborted signal stops the request', async (t) => {
    const sockets: Socket[] = [];
    const server = createNetServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const controller = new AbortController();
    const pending = fetchPeerList(options((server.address() as { port: number }).port, { timeoutMs: 5000, signal: controller.signal }));
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    await assert.rejects(within(2000, pending), (error: unknown) => isSnakebiteError(error, 'SB_FETCH_FAILED'));
    assert.ok(Date.now() - started < 2500);
  });

  test('IPv6: brackets in the URL of messages', async (t) => {
    if (!(await canListenOnIpv6Loopback())) return t.skip('no ::1 on this machine');
    const { port } = await httpServer(t, (_req, res) => res.writeHead(200).end('nope'), '::1');
    await rejectsWith(fetchPeerList({ ...options(port), server: parseIp('::1')! }), 'SB_REPLY_MALFORMED', new RegExp(`http://\\[::1\\]:${port}/v1/peers`));
    const good = await httpServer(t, (_req, res) => res.writeHead(200).end('{"ok":true}'), '::1');
    assert.deepEqual(await fetchPeerList({ ...options(good.port), server: parseIp('::1')! }), { ok: true });
  });
});
