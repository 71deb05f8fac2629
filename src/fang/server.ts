import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { formatIp, parseIp, unmapIpv4, type IpAddress } from '../ip/address';
import { describeError, SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';
import { formatPeerListText, serializePeerList } from '../peer-list/serialize';
import type { WireGuardDriver } from '../wireguard/driver';
import { SharedDeviceView } from './device-view';
import { buildPeerList, identifyAsker } from './peer-list-view';

/** TCP port of the peer-list service when `--listen` gives none. */
export const DEFAULT_SERVER_PORT = 51821;

export interface FangServerOptions {
  readonly driver: WireGuardDriver;
  readonly listenAddress: IpAddress;
  readonly port: number;
  readonly logger: Logger;
  /** How long one interface read is shared between requests, in milliseconds. */
  readonly deviceMaxAgeMs?: number;
}

export interface FangServer {
  readonly port: number;
  readonly view: SharedDeviceView;
  close(): Promise<void>;
}

const ROUTES = new Set(['/v1/peers', '/v1/peers.txt']);

/**
 * Serves the peer list over HTTP on `listenAddress` only. The asker is the peer
 * whose allowed IPs contain the request's source address; anyone else gets 403.
 */
export async function startFangServer(options: FangServerOptions): Promise<FangServer> {
  const { driver, logger } = options;
  const view = new SharedDeviceView(driver, options.deviceMaxAgeMs ?? 500);

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const sourceText = request.socket.remoteAddress ?? '';
    const source = parseIp(sourceText);
    const path = (request.url ?? '').split('?')[0] ?? '';
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

    let device;
    try {
      device = await view.read();
    } catch (error) {
      logger.error('interface-read-failed', { error: describeError(error) });
      return reply(503, 'the fang cannot read its WireGuard interface right now\n');
    }
    const asker = source ? identifyAsker(device, unmapIpv4(source)) : undefined;
    if (!asker) {
      logger.warn('request-refused', { source: sourceText, path, reason: "source is in no peer's allowed IPs" });
      return reply(403, 'this service answers WireGuard peers of the fang only, through the tunnel\n');
    }
    const list = buildPeerList(device, asker);
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
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
