/**
 * A fang server in the test process with a fake interface whose peers are
 * loopback addresses (127.0.x.y/32), so one test can speak as many peers and
 * as strangers by choosing the local address it connects from.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { ConnectionLimits } from '../../src/fang/connection-guard';
import type { Policy } from '../../src/fang/policy';
import type { RelayFirewallPort } from '../../src/fang/relay-firewall';
import { startFangServer, type FangServer } from '../../src/fang/server';
import { silentLogger, type Logger } from '../../src/log/logger';
import type { DeviceState, PeerChange } from '../../src/wireguard/device-state';
import type { WireGuardDriver } from '../../src/wireguard/driver';
import type { WireGuardKey } from '../../src/wireguard/key';
import { device, ip, key, type PeerSpec } from './fakes';

export const FANG_KEY = key(0xf0);

/** The loopback address that speaks as peer number `n` (0-based): 127.1.x.y. */
export function peerSource(n: number): string {
  return `127.1.${(n >> 8) & 0xff}.${n & 0xff}`;
}

/** A distinct valid key per peer number (beyond the 256 of `key`). */
export function peerKey(n: number): WireGuardKey {
  const bytes = Buffer.alloc(32, 0x11);
  bytes.writeUInt32BE(n + 1, 0);
  return bytes.toString('base64');
}

/** `count` peers, peer n at `peerSource(n)` with endpoint 198.51.100.x:port. */
export function loopbackPeers(count: number): PeerSpec[] {
  return Array.from({ length: count }, (_, n) => ({
    publicKey: peerKey(n),
    endpoint: `198.51.100.${(n % 250) + 1}:${10000 + n}`,
    allowedIps: [`${peerSource(n)}/32`],
    latestHandshake: 1700000000,
  }));
}

/** A driver over a mutable device, optionally slow to read. */
export class MutableDriver implements WireGuardDriver {
  readonly interfaceName = 'wg0';
  reads = 0;
  constructor(
    public state: DeviceState,
    public delayMs = 0,
  ) {}
  async readDevice(): Promise<DeviceState> {
    this.reads++;
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.state;
  }
  async applyPeerChanges(_changes: readonly PeerChange[]): Promise<void> {}
}

export function fangWith(peers: readonly PeerSpec[]): DeviceState {
  return device(FANG_KEY, peers);
}

export async function startTestFang(
  t: TestContext,
  driver: WireGuardDriver,
  options: { logger?: Logger; deviceMaxAgeMs?: number; watchIntervalMs?: number; connectionLimits?: ConnectionLimits; policy?: Policy; relayFirewall?: RelayFirewallPort } = {},
): Promise<FangServer> {
  const server = await startFangServer({
    driver,
    listenAddress: ip('127.0.0.1'),
    port: 0,
    logger: options.logger ?? silentLogger,
    ...(options.deviceMaxAgeMs !== undefined ? { deviceMaxAgeMs: options.deviceMaxAgeMs } : {}),
    ...(options.watchIntervalMs !== undefined ? { watchIntervalMs: options.watchIntervalMs } : {}),
    ...(options.connectionLimits ? { connectionLimits: options.connectionLimits } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
    ...(options.relayFirewall ? { relayFirewall: options.relayFirewall } : {}),
  });
  t.after(() => server.close());
  return server;
}

export interface HttpReply {
  readonly status: number;
  readonly body: string;
  readonly ms: number;
}

/** One HTTP request from `from`; resolves with status 0 and the error code as body when the connection fails. */
export function ask(
  port: number,
  options: { path?: string; method?: string; from?: string; body?: string; headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<HttpReply> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (status: number, body: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, body, ms: Date.now() - started });
    };
    const headers = { ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}), ...options.headers };
    const req = request(
      { host: '127.0.0.1', port, path: options.path ?? '/v1/peers', method: options.method ?? 'GET', localAddress: options.from ?? '127.0.0.1', agent: false, headers, ...(options.signal ? { signal: options.signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => finish(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (e: NodeJS.ErrnoException) => finish(0, e.code ?? e.message));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish(0, 'TIMEOUT');
    }, options.timeoutMs ?? 5000);
    req.on('error', (e: NodeJS.ErrnoException) => finish(0, e.code ?? e.message));
    req.end(options.body);
  });
}

/** Opens `count` idle TCP connections from `from`; all are destroyed when the test ends. */
export async function openIdle(t: TestContext, port: number, from: string, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const batch = 100;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, () => {
        return new Promise<void>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve());
          socket.on('error', () => resolve());
          sockets.push(socket);
        });
      }),
    );
  }
  return sockets;
}
