import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { formatIp, parseIp, unmapIpv4, type IpAddress } from '../ip/address';
import { describeError, SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';
import { formatPeerListText, serializePeerList } from '../peer-list/serialize';
import type { WireGuardDriver } from '../wireguard/driver';
import { SharedDeviceView } from './device-view';
import { buildPeerList, identifyAsker } from './peer-list-view';
import { PeerWatch } from './peer-watch';

/** TCP port of the peer-list service when `--listen` gives none. */
export const DEFAULT_SERVER_PORT = 51821;

export interface FangServerOptions {
  readonly driver: WireGuardDriver;
  readonly listenAddress: IpAddress;
  readonly port: number;
  readonly logger: Logger;
  /** How long one interface read is shared between requests, in milliseconds. */
  readonly deviceMaxAgeMs?: number;
  /** How often the interface is read while clients wait for a change, in milliseconds. */
  readonly watchIntervalMs?: number;
}

/** Longest `wait` a client may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 60;

export interface FangServer {
  readonly port: number;
  readonly view: SharedDeviceView;
  readonly watch: PeerWatch;
  close(): Promise<void>;
}

const ROUTES = new Set(['/v1/peers', '/v1/peers.txt']);

/** undefined when absent, null when malformed or out of range. */
function optionalInteger(text: string | null, min: number, max: number): number | undefined | null {
  if (text === null) return undefined;
  if (!/^[0-9]{1,16}$/.test(text)) return null;
  const value = Number(text);
  return value >= min && value <= max ? value : null;
}

/**
 * Serves the peer list over HTTP on `listenAddress` only. The asker is the peer
 * whose allowed IPs contain the request's source address; anyone else gets 403.
 */
export async function startFangServer(options: FangServerOptions): Promise<FangServer> {
  const { driver, logger } = options;
  const view = new SharedDeviceView(driver, options.deviceMaxAgeMs ?? 200);
  const watch = new PeerWatch(view, options.watchIntervalMs ?? 250, (error) =>
    logger.error('interface-read-failed', { error: describeError(error) }),
  );

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const sourceText = request.socket.remoteAddress ?? '';
    const source = parseIp(sourceText);
    const [path = '', query = ''] = (request.url ?? '').split('?', 2);
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      response.writeHead(status, {
        'content-type': type,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        ...(status === 405 ? { allow: 'GET, HEAD' } : {}),
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    // GET carries no body; drain anything sent so the socket stays usable.
    request.resume();

    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'only GET is served\n');
    if (!ROUTES.has(path)) return reply(404, 'not found; the peer list is at /v1/peers and /v1/peers.txt\n');

    const params = new URLSearchParams(query);
    const since = optionalInteger(params.get('since'), 0, Number.MAX_SAFE_INTEGER);
    const wait = optionalInteger(params.get('wait'), 0, MAX_WAIT_SECONDS);
    if (since === null || wait === null) return reply(400, `since must be a revision and wait 0 to ${MAX_WAIT_SECONDS} seconds\n`);

    let current;
    try {
      current = await watch.refresh();
    } catch (error) {
      logger.error('interface-read-failed', { error: describeError(error) });
      return reply(503, 'the fang cannot read its WireGuard interface right now\n');
    }
    let asker = source ? identifyAsker(current.device, unmapIpv4(source)) : undefined;
    if (!asker) {
      logger.warn('request-refused', { source: sourceText, path, reason: "source is in no peer's allowed IPs" });
      return reply(403, 'this service answers WireGuard peers of the fang only, through the tunnel\n');
    }
    if (since !== undefined && wait) {
      // Long poll: hold the request until a peer changes, the wait ends or the asker hangs up.
      const hangUp = new AbortController();
      response.on('close', () => hangUp.abort());
      await watch.waitForChange(since, wait * 1000, hangUp.signal);
      if (hangUp.signal.aborted) return;
      current = await watch.refresh();
      // The asker itself may have moved while it waited: report its endpoint as it is now.
      asker = identifyAsker(current.device, unmapIpv4(source!)) ?? asker;
    }
    const changes = since === undefined ? undefined : watch.changesSince(since);
    const list = buildPeerList(current.device, asker, current.revision, changes && since !== undefined ? { since, ...changes } : undefined);
    logger.debug('request-served', { peer: asker.publicKey, source: formatIp(unmapIpv4(source!)), path, peers: list.peers.length });
    if (path === '/v1/peers.txt') return reply(200, formatPeerListText(list));
    return reply(200, `${JSON.stringify(serializePeerList(list))}\n`, 'application/json');
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error('request-failed', { error: describeError(error) });
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
    });
  });
  // Bounds on what one client can hold open; the replies are small and fast.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;
  server.maxConnections = 1024;
  server.on('clientError', (error, socket) => {
    logger.debug('request-malformed', { error: error.message });
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  const host = formatIp(options.listenAddress);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new SnakebiteError(
          'SB_LISTEN_FAILED',
          `cannot listen on ${host} port ${options.port}: ${error.code ?? error.message}`,
          error.code === 'EADDRINUSE' ? 'another process holds that port; stop it or pick another with --listen IP:PORT' : undefined,
          { cause: error },
        ),
      );
    });
    server.listen({ host, port: options.port, exclusive: true }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info('server-listening', { interface: driver.interfaceName, listen: host, port });

  return {
    port,
    view,
    watch,
    close: () =>
      new Promise<void>((resolve) => {
        watch.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
