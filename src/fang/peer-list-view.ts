import { endpointEquals, type IpAddress } from '../ip/address';
import { askerIndexOf } from './asker-index';
import { PEER_LIST_VERSION, type PeerList, type PeerListEntry, type PeerReport } from '../peer-list/peer-list';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

/**
 * The peer that sent a packet from `source` through the tunnel. WireGuard only
 * accepts a peer's packet if its source lies in that peer's allowed IPs, so the
 * longest match names the sender the same way WireGuard routes replies to it.
 */
export function identifyAsker(device: DeviceState, source: IpAddress): PeerState | undefined {
  return askerIndexOf(device).find(source);
}

/** Observations of one peer listed in its entry's `seenBy`, at most: the list stays linear in the peers. */
export const SEEN_BY_LIMIT = 4;

export type SeenBy = NonNullable<PeerListEntry['seenBy']>;

/**
 * Who saw whom, from every report, gathered once: per peer, the first
 * SEEN_BY_LIMIT observations at distinct endpoints (what the NAT diagnosis
 * needs is whether two observers see the same port or not, not every observer).
 */
export function gatherSeenBy(reports: ReadonlyMap<WireGuardKey, PeerReport>, limit = SEEN_BY_LIMIT): Map<WireGuardKey, SeenBy> {
  const seenBy = new Map<WireGuardKey, { publicKey: WireGuardKey; endpoint: PeerReport['seen'][number]['endpoint'] }[]>();
  for (const [by, report] of reports) {
    for (const seen of report.seen) {
      let list = seenBy.get(seen.publicKey);
      if (!list) seenBy.set(seen.publicKey, (list = []));
      if (list.length < limit && !list.some((s) => endpointEquals(s.endpoint, seen.endpoint))) list.push({ publicKey: by, endpoint: seen.endpoint });
    }
  }
  return seenBy;
}

/** Asks for only what changed after revision `since`. */
export interface PeerListDelta {
  readonly since: number;
  readonly changed: ReadonlySet<WireGuardKey>;
  readonly removed: ReadonlySet<WireGuardKey>;
}

/**
 * The peer list as `asker` may see it: the fang's key, the asker's own public
 * endpoint, and every other peer's key, endpoint, allowed IPs and latest
 * handshake. Nothing else of the device (keys, counters, keepalives) leaves.
 */
export function buildPeerList(
  device: DeviceState,
  asker: PeerState,
  revision?: number,
  delta?: PeerListDelta,
  /** What each peer last reported about itself (POST /v1/report). */
  reports: ReadonlyMap<WireGuardKey, PeerReport> = new Map(),
): PeerList {
  const seenBy = gatherSeenBy(reports);
  if (device.publicKey === null) throw new Error('the fang interface has no key');
  return {
    version: PEER_LIST_VERSION,
    fang: { publicKey: device.publicKey },
    you: { publicKey: asker.publicKey, endpoint: asker.endpoint, ...(seenBy.get(asker.publicKey) ? { seenBy: seenBy.get(asker.publicKey)! } : {}) },
    ...(revision !== undefined ? { revision } : {}),
    ...(delta ? { since: delta.since, removed: [...delta.removed].filter((key) => key !== asker.publicKey) } : {}),
    peers: device.peers
      .filter((peer) => peer.publicKey !== asker.publicKey && (!delta || delta.changed.has(peer.publicKey)))
      .map((peer) => listEntry(peer, reports, seenBy)),
  };
}

/** What the list says of one peer of the fang. */
export function listEntry(peer: PeerState, reports: ReadonlyMap<WireGuardKey, PeerReport>, seenBy: ReadonlyMap<WireGuardKey, PeerListEntry['seenBy']>): PeerListEntry {
  return {
    publicKey: peer.publicKey,
    endpoint: peer.endpoint,
    allowedIps: peer.allowedIps,
    latestHandshake: peer.latestHandshake,
    ...reportedFields(peer.publicKey, reports, seenBy),
  };
}

/** The fields of an entry that come from reports: the peer's own, and what others saw of it. */
function reportedFields(key: WireGuardKey, reports: ReadonlyMap<WireGuardKey, PeerReport>, seenBy: ReadonlyMap<WireGuardKey, PeerListEntry['seenBy']>): Partial<PeerListEntry> {
  const own = reports.get(key);
  const seen = seenBy.get(key);
  return {
    ...(own ? { listenPort: own.listenPort, candidates: own.candidates } : {}),
    ...(own?.punchRequests?.length ? { punchRequests: own.punchRequests } : {}),
    ...(seen ? { seenBy: seen } : {}),
  };
}
