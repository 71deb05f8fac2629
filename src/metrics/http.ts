/**
 * Serves `GET /metrics` on one address. Refuses to start on an address that is
 * neither on the WireGuard interface nor loopback: metrics stay inside the tunnel.
 */
import { createServer } from 'node:http';
import { formatIp, ipEquals, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export const DEFAULT_METRICS_PORT = 9586;

export function assertMetricsAddress(interfaceName: string, address: IpAddress, interfaceAddresses: readonly IpAddress[]): void {
  const loopback = address.family === 4 ? formatIp(address).startsWith('127.') : formatIp(address) === '::1';
  if (loopback || interfaceAddresses.some((own) => ipEquals(own, address))) return;
  throw new SnakebiteError(
    'SB_LISTEN_NOT_ON_INTERFACE',
    `--metrics ${formatIp(address)} is not an address of ${interfaceName} (nor loopback)`,
    `serve metrics inside the tunnel: --metrics ${interfaceAddresses[0] ? formatIp(interfaceAddresses[0]) : '10.10.10.1'}:${DEFAULT_METRICS_PORT}`,
  );
}

export async function startMetricsServer(address: IpAddress, port: number, render: () => Promise<string>, logger: Logger): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    request.resume();
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics are at /metrics\n');
      return;
    }
    render().then(
      (body) => response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' }).end(request.method === 'HEAD' ? undefined : body),
      (error: unknown) => {
        logger.warn('metrics-failed', { error: error instanceof Error ? error.message : String(error) });
        response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable right now\n');
      },
    );
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 64;
  const host = formatIp(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new SnakebiteError('SB_LISTEN_FAILED', `cannot serve metrics on ${host} port ${port}: ${error.code ?? error.message}`, 'pick another --metrics IP:PORT', { cause: error })),
    );
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  const bound = server.address();
  const actual = typeof bound === 'object' && bound ? bound.port : port;
  logger.info('metrics-listening', { listen: host, port: actual });
  return {
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
