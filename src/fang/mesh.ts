/**
 * The mesh as the fang sees it: every peer with its NAT's behaviour, and every
 * pair with its path. Pure: built from F's interface, the peers' reports and
 * the time. A pair is `direct` (or `lan`, at a private address) when either
 * side reports a live direct session with the other; `relayed` when both have
 * a live session with F but neither reports the other (their traffic, if any,
 * goes through F); `none` when one of them has no session with F.
 */
import { formatEndpoint, formatPrefix, parsePrefix, prefixContainsIp, type Endpoint } from '../ip/address';
import type { PeerReport } from '../peer-list/peer-list';
import { natBehaviour, type NatBehaviour } from '../status/diagnose';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

export type PairPath = 'direct' | 'lan' | 'relayed' | 'none';

export interface MeshPeer {
  readonly publicKey: WireGuardKey;
  /** A friendly name, when a policy gives one. */
  readonly name?: string;
  readonly endpoint: string | null;
  readonly allowedIps: readonly string[];
  /** Seconds since the peer's latest handshake with F; null when never. */
  readonly handshakeAgeSeconds: number | null;
  readonly nat: NatBehaviour;
  readonly natDetail: string;
  /** Whether the peer runs a client that reports to F. */
  readonly reporting: boolean;
}

export interface MeshPair {
  readonly a: WireGuardKey;
  readonly b: WireGuardKey;
  readonly path: PairPath;
  /**
   * The age of the handshake that carries the pair's traffic, in seconds: for
   * a relayed pair the older of the two handshakes with F; for a direct pair
   * the peers do not tell F their handshake times, so null (see directForSeconds).
   */
  readonly handshakeAgeSeconds: number | null;
  /** For a direct or LAN pair: how long the reports have shown it direct. */
  readonly directForSeconds?: number;
  /** Where one side sees the other, for a direct or LAN pair. */
  readonly endpoint?: string;
}

export interface MeshView {
  readonly generatedAt: number;
  readonly interface: string;
  readonly fang: WireGuardKey | null;
  readonly peers: readonly MeshPeer[];
  readonly pairs: readonly MeshPair[];
  /** Set when only the pairs among the first this many peers are given (the matrix grows with the square of the peers). */
  readonly pairsLimitedTo?: number;
}

/** Pairs are worked out among at most this many peers per view: 32,640 pairs, a page a person can still read. */
export const MAX_MESH_MATRIX_PEERS = 256;

/** A session older than this (WireGuard's REJECT_AFTER_TIME) carries no traffic. */
const SESSION_SECONDS = 180;

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', 'fe80::/10'].map((t) => parsePrefix(t)!);
const isPrivate = (endpoint: Endpoint) => PRIVATE.some((p) => prefixContainsIp(p, endpoint.address));

export function pairKey(a: WireGuardKey, b: WireGuardKey): string {
  return a < b ? `${a} ${b}` : `${b} ${a}`;
}

export function buildMesh(
  device: DeviceState,
  reports: ReadonlyMap<WireGuardKey, PeerReport>,
  nowSeconds: number,
  options: { names?: ReadonlyMap<WireGuardKey, string>; directSince?: ReadonlyMap<string, number> } = {},
): MeshView {
  const age = (handshake: number) => (handshake === 0 ? null : Math.max(0, nowSeconds - handshake));
  const seenBy = new Map<WireGuardKey, { publicKey: WireGuardKey; endpoint: Endpoint }[]>();
  for (const [by, report] of reports) {
    for (const seen of report.seen) seenBy.set(seen.publicKey, [...(seenBy.get(seen.publicKey) ?? []), { publicKey: by, endpoint: seen.endpoint }]);
  }
  const peers: MeshPeer[] = device.peers.map((peer) => {
    const report = reports.get(peer.publicKey);
    const nat = natBehaviour(peer.endpoint, report?.listenPort, seenBy.get(peer.publicKey) ?? []);
    const name = options.names?.get(peer.publicKey);
    return {
      publicKey: peer.publicKey,
      ...(name ? { name } : {}),
      endpoint: peer.endpoint ? formatEndpoint(peer.endpoint) : null,
      allowedIps: peer.allowedIps.map(formatPrefix),
      handshakeAgeSeconds: age(peer.latestHandshake),
      nat: nat.behaviour,
      natDetail: nat.detail,
      reporting: report !== undefined,
    };
  });
  const live = (p: MeshPeer) => p.handshakeAgeSeconds !== null && p.handshakeAgeSeconds <= SESSION_SECONDS;
  const pairs: MeshPair[] = [];
  // Who saw whom, indexed once: a lookup per pair, not a scan of a report.
  const sighting = new Map<string, PeerReport['seen'][number]>();
  for (const [by, report] of reports) for (const s of report.seen) sighting.set(`${by} ${s.publicKey}`, s);
  const inMatrix = Math.min(peers.length, MAX_MESH_MATRIX_PEERS);
  for (let i = 0; i < inMatrix; i++) {
    for (let j = i + 1; j < inMatrix; j++) {
      const a = peers[i]!;
      const b = peers[j]!;
      const seen = sighting.get(`${a.publicKey} ${b.publicKey}`) ?? sighting.get(`${b.publicKey} ${a.publicKey}`);
      const key = pairKey(a.publicKey, b.publicKey);
      if (seen) {
        const since = options.directSince?.get(key);
        pairs.push({
          a: a.publicKey,
          b: b.publicKey,
          path: isPrivate(seen.endpoint) ? 'lan' : 'direct',
          handshakeAgeSeconds: null,
          endpoint: formatEndpoint(seen.endpoint),
          ...(since !== undefined ? { directForSeconds: Math.max(0, nowSeconds - since) } : {}),
        });
      } else if (live(a) && live(b)) {
        pairs.push({ a: a.publicKey, b: b.publicKey, path: 'relayed', handshakeAgeSeconds: Math.max(a.handshakeAgeSeconds!, b.handshakeAgeSeconds!) });
      } else {
        const ages = [a.handshakeAgeSeconds, b.handshakeAgeSeconds];
        pairs.push({ a: a.publicKey, b: b.publicKey, path: 'none', handshakeAgeSeconds: ages.includes(null) ? null : Math.max(...(ages as number[])) });
      }
    }
  }
  return { generatedAt: nowSeconds, interface: device.interfaceName, fang: device.publicKey, peers, pairs, ...(peers.length > inMatrix ? { pairsLimitedTo: inMatrix } : {}) };
}

/** Remembers since when each pair has been direct, across mesh builds. */
export class DirectSince {
  private readonly since = new Map<string, number>();
  get map(): ReadonlyMap<string, number> {
    return this.since;
  }
  /**
   * Starts the clock for the view's pairs that became direct and stops it for
   * those that are not; a `complete` view (every peer) also forgets pairs it
   * does not hold, a scoped one leaves them alone.
   */
  update(view: MeshView, complete = true): void {
    const inView = new Set<string>();
    for (const pair of view.pairs) {
      const key = pairKey(pair.a, pair.b);
      inView.add(key);
      if (pair.path !== 'direct' && pair.path !== 'lan') this.since.delete(key);
      else if (!this.since.has(key)) this.since.set(key, view.generatedAt);
    }
    if (complete) for (const key of this.since.keys()) if (!inView.has(key)) this.since.delete(key);
  }
}
