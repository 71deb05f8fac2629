import { formatEndpoint, parsePrefix, prefixContainsIp, type Endpoint } from '../ip/address';
import type { PeerList } from '../peer-list/peer-list';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import { explainNoDirectPath } from './diagnose';
import type { WireGuardKey } from '../wireguard/key';

/**
 * How this interface reaches a peer now: `direct` over the internet, `lan`
 * over a private address, `relayed` through the fang (its entry routes
 * nothing, so the fang peer's range carries its traffic), `fang` for the fang
 * peer itself, `none` without a working session.
 */
export type PathKind = 'direct' | 'lan' | 'relayed' | 'fang' | 'none';

/** What else is known beyond the interface: the fang's list and the client daemon's state. */
export interface PathContext {
  /** The fang's peer list as this peer sees it, when the fang answered. */
  readonly list?: PeerList;
  /** Unix seconds since when the running client has relayed each peer. */
  readonly relayedSince?: ReadonlyMap<WireGuardKey, number>;
  /** Peers of the user's the client relays: the allowed IPs it changed (as text) and where they went. */
  readonly changed?: ReadonlyMap<WireGuardKey, { readonly allowedIps: readonly string[]; readonly viaFang: boolean; readonly since: number }>;
  /** Listed peers the client leaves alone, with why. */
  readonly unmanaged?: ReadonlyMap<WireGuardKey, string>;
}

export interface PeerPath {
  readonly publicKey: WireGuardKey;
  readonly endpoint: string | null;
  readonly path: PathKind;
  /** Why the path is what it is, in words. */
  readonly reason: string;
  /** Seconds since the latest handshake; null when there was none. */
  readonly handshakeAgeSeconds: number | null;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly persistentKeepalive: number | null;
}

/** A session older than this (WireGuard's REJECT_AFTER_TIME) carries no traffic. */
export const SESSION_LIFETIME_SECONDS = 180;

// RFC 1918, IPv6 ULA and link-local. Carrier-grade NAT space (100.64.0.0/10) is
// not a LAN: an endpoint there is across the carrier's network.
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', 'fe80::/10'].map((text) => parsePrefix(text)!);

function isPrivate(endpoint: Endpoint): boolean {
  return PRIVATE_RANGES.some((range) => prefixContainsIp(range, endpoint.address));
}

/**
 * The fang peer when none is named: the peer with an endpoint whose allowed IPs
 * hold the widest prefix, as in a hub-and-spoke config. undefined when no peer has an endpoint.
 */
export function guessFangPeer(device: DeviceState): WireGuardKey | undefined {
  // Widest means most host bits, so an IPv4 /24 and an IPv6 /120 compare alike.
  let best: { key: WireGuardKey; hostBits: number } | undefined;
  for (const peer of device.peers) {
    if (!peer.endpoint) continue;
    for (const prefix of peer.allowedIps) {
      const hostBits = (prefix.address.family === 4 ? 32 : 128) - prefix.length;
      if (!best || hostBits > best.hostBits) best = { key: peer.publicKey, hostBits };
    }
  }
  return best?.key;
}

export function describePath(peer: PeerState, fangKey: WireGuardKey | undefined, nowSeconds: number, context: PathContext = {}, listenPort = 0): PeerPath {
  const path = describeLink(peer, fangKey, nowSeconds, context, listenPort);
  const unmanaged = context.unmanaged?.get(peer.publicKey);
  return unmanaged ? { ...path, reason: `${path.reason}; not managed by Snakebite: ${unmanaged}` } : path;
}

function describeLink(peer: PeerState, fangKey: WireGuardKey | undefined, nowSeconds: number, context: PathContext, listenPort: number): PeerPath {
  const age = peer.latestHandshake === 0 ? null : Math.max(0, nowSeconds - peer.latestHandshake);
  const base = {
    publicKey: peer.publicKey,
    endpoint: peer.endpoint && formatEndpoint(peer.endpoint),
    handshakeAgeSeconds: age,
    rxBytes: peer.rxBytes,
    txBytes: peer.txBytes,
    persistentKeepalive: peer.persistentKeepalive,
  };
  const live = age !== null && age <= SESSION_LIFETIME_SECONDS;
  if (peer.publicKey === fangKey) {
    return { ...base, path: 'fang', reason: live ? 'the fang peer; session up' : 'the fang peer; no session: check that the fang is reachable' };
  }
  if (!peer.endpoint) return { ...base, path: 'none', reason: 'no endpoint yet: is snakebite client running, and has this peer contacted the fang?' };
  const listed = context.list?.peers.find((entry) => entry.publicKey === peer.publicKey);
  const why = listed && context.list ? `: ${explainNoDirectPath(context.list, listenPort, listed)}` : '';
  if (peer.allowedIps.length === 0 && fangKey !== undefined) {
    const since = context.relayedSince?.get(peer.publicKey);
    const how = since === undefined ? '' : ` for ${Math.max(0, nowSeconds - since)}s`;
    const state = live && since !== undefined && peer.latestHandshake >= since
      ? `direct handshake ${age}s ago through ${formatEndpoint(peer.endpoint)}: leaving the relay`
      : `no direct handshake through ${formatEndpoint(peer.endpoint)}${why}`;
    const changed = context.changed?.get(peer.publicKey);
    const what = changed
      ? `; its allowed IPs ${changed.allowedIps.join(',')} ${changed.viaFang ? 'moved onto the fang peer' : 'taken off'} ${Math.max(0, nowSeconds - changed.since)}s ago (kept in the state file, restored when the direct path works)`
      : '';
    return { ...base, path: 'relayed', reason: `relayed via the fang${how}, ${state}${what}` };
  }
  if (!live) {
    const when = age === null ? 'never had a handshake' : `no handshake for ${age}s`;
    return { ...base, path: 'none', reason: `${when}; punching through ${formatEndpoint(peer.endpoint)}${why}` };
  }
  const kind = isPrivate(peer.endpoint) ? 'lan' : 'direct';
  const keepalive = peer.persistentKeepalive === null ? '; no persistent keepalive: the NAT mapping may close when idle' : '';
  return { ...base, path: kind, reason: `handshake ${age}s ago with ${formatEndpoint(peer.endpoint)}${keepalive}` };
}

export function describePaths(device: DeviceState, fangKey: WireGuardKey | undefined, now: Date, context: PathContext = {}): PeerPath[] {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  return device.peers.map((peer) => describePath(peer, fangKey, nowSeconds, context, device.listenPort));
}
