/**
 * Values and fakes shared by the unit tests. It lives outside test/unit/ so
 * that `node --test dist/test/unit/` does not run it as a test file.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { parseEndpoint, parseIp, parsePrefix, prefixCovers, type Endpoint, type IpAddress, type IpPrefix } from '../../src/ip/address';
import { createLogger, type Logger, type LogLevel } from '../../src/log/logger';
import type { DeviceState, PeerChange, PeerState } from '../../src/wireguard/device-state';
import type { WireGuardDriver } from '../../src/wireguard/driver';
import type { WireGuardKey } from '../../src/wireguard/key';

/** Reads test/fixtures/<name>; compiled tests run from dist/test/…, two levels below the checkout. */
export function readFixture(name: string): string {
  return readFileSync(path.join(__dirname, '../../../test/fixtures', name), 'utf8');
}

/** A valid, deterministic WireGuard key: 32 copies of byte `n`. */
export function key(n: number): WireGuardKey {
  return Buffer.alloc(32, n & 0xff).toString('base64');
}

/** A valid WireGuard key made from `random`. */
export function randomKey(random: () => number): WireGuardKey {
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) bytes[i] = Math.floor(random() * 256);
  return bytes.toString('base64');
}

export function ip(text: string): IpAddress {
  const value = parseIp(text);
  if (!value) throw new Error(`test bug: bad address ${text}`);
  return value;
}

export function prefix(text: string): IpPrefix {
  const value = parsePrefix(text);
  if (!value) throw new Error(`test bug: bad prefix ${text}`);
  return value;
}

export function endpoint(text: string): Endpoint {
  const value = parseEndpoint(text);
  if (!value) throw new Error(`test bug: bad endpoint ${text}`);
  return value;
}

export interface PeerSpec {
  readonly publicKey: WireGuardKey;
  readonly endpoint?: string | null;
  readonly allowedIps?: readonly string[];
  readonly latestHandshake?: number;
  readonly rxBytes?: number;
  readonly txBytes?: number;
  readonly persistentKeepalive?: number | null;
  readonly hasPresharedKey?: boolean;
}

export function peer(spec: PeerSpec): PeerState {
  return {
    publicKey: spec.publicKey,
    hasPresharedKey: spec.hasPresharedKey ?? false,
    endpoint: spec.endpoint ? endpoint(spec.endpoint) : null,
    allowedIps: (spec.allowedIps ?? []).map(prefix),
    latestHandshake: spec.latestHandshake ?? 0,
    rxBytes: spec.rxBytes ?? 0,
    txBytes: spec.txBytes ?? 0,
    persistentKeepalive: spec.persistentKeepalive ?? null,
  };
}

export function device(publicKey: WireGuardKey | null, peers: readonly PeerSpec[], interfaceName = 'wg0'): DeviceState {
  return { interfaceName, hasPrivateKey: publicKey !== null, publicKey, listenPort: 51820, fwmark: null, peers: peers.map(peer) };
}

/** JSON with bigints as decimal strings, for byte-for-byte comparisons and searching. */
export function stringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/**
 * What `wg set` does to a device: a change creates the peer if it is new,
 * sets the fields given, and an allowed IP given to one peer is taken off any
 * other peer that had exactly that prefix (WireGuard's allowed-IPs trie holds
 * each prefix once).
 */
export function applyToDevice(state: DeviceState, changes: readonly PeerChange[]): DeviceState {
  let peers = [...state.peers];
  for (const change of changes) {
    if (change.remove) {
      peers = peers.filter((p) => p.publicKey !== change.publicKey);
      continue;
    }
    const found = peers.find((p) => p.publicKey === change.publicKey);
    if (change.recreate) peers = peers.filter((p) => p.publicKey !== change.publicKey);
    const index = peers.findIndex((p) => p.publicKey === change.publicKey);
    const before: PeerState =
      change.recreate
        ? { publicKey: change.publicKey, hasPresharedKey: (change.keepPresharedKey && found?.hasPresharedKey) ?? false, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null }
        : index === -1
        ? { publicKey: change.publicKey, hasPresharedKey: false, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null }
        : peers[index]!;
    const after: PeerState = {
      ...before,
      ...(change.endpoint ? { endpoint: change.endpoint } : {}),
      ...(change.allowedIps ? { allowedIps: [...change.allowedIps] } : {}),
      ...(change.persistentKeepalive !== undefined ? { persistentKeepalive: change.persistentKeepalive === 0 ? null : change.persistentKeepalive } : {}),
    };
    if (change.allowedIps) {
      const taken = change.allowedIps;
      const same = (a: IpPrefix, b: IpPrefix) => prefixCovers(a, b) && a.length === b.length;
      peers = peers.map((p) => (p.publicKey === change.publicKey ? p : { ...p, allowedIps: p.allowedIps.filter((a) => !taken.some((t) => same(a, t))) }));
    }
    if (index === -1) peers.push(after);
    else peers[peers.findIndex((p) => p.publicKey === change.publicKey)] = after;
  }
  return { ...state, peers };
}

/** A WireGuardDriver over an in-memory device that records every batch it is given. */
export class FakeDriver implements WireGuardDriver {
  readonly batches: PeerChange[][] = [];
  reads = 0;

  constructor(
    public state: DeviceState,
    readonly interfaceName = state.interfaceName,
  ) {}

  async readDevice(): Promise<DeviceState> {
    this.reads++;
    return this.state;
  }

  async applyPeerChanges(changes: readonly PeerChange[]): Promise<void> {
    if (changes.length === 0) return;
    // Copy only the PeerChange fields: that is all a real driver can carry out.
    this.batches.push(
      changes.map((c) => ({
        publicKey: c.publicKey,
        ...(c.endpoint ? { endpoint: c.endpoint } : {}),
        ...(c.allowedIps ? { allowedIps: c.allowedIps } : {}),
        ...(c.persistentKeepalive !== undefined ? { persistentKeepalive: c.persistentKeepalive } : {}),
        ...(c.remove ? { remove: true as const } : {}),
        ...(c.recreate ? { recreate: true as const } : {}),
        ...(c.keepPresharedKey ? { keepPresharedKey: true as const } : {}),
      })),
    );
    this.state = applyToDevice(this.state, changes);
  }
}

export interface CapturedLine {
  readonly level: LogLevel;
  readonly event: string;
  readonly [field: string]: unknown;
}

/** A JSON logger at debug level whose lines are kept in `lines`, parsed. */
export function captureLogger(): { logger: Logger; lines: CapturedLine[]; raw: string[] } {
  const lines: CapturedLine[] = [];
  const raw: string[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    clock: () => new Date(0),
    write: (line) => {
      raw.push(line);
      lines.push(JSON.parse(line) as CapturedLine);
    },
  });
  return { logger, lines, raw };
}

/** mulberry32: a small seeded PRNG, so random tests replay exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Whether this machine can listen on ::1, for the IPv6 cases. */
export function canListenOnIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}

/** Rejects when `promise` has not settled within `ms`, so a hang fails one test instead of the run. */
export async function within<T>(ms: number, promise: Promise<T>, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
