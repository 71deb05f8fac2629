import { formatEndpoint, formatPrefix } from '../ip/address';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

/** What of a peer other peers act on: its endpoint and allowed IPs (handshakes and counters move too often). */
export function peerFingerprint(peer: PeerState): string {
  return `${peer.endpoint ? formatEndpoint(peer.endpoint) : '-'} ${peer.allowedIps.map(formatPrefix).join(',')}`;
}

export interface PeerDiff {
  readonly changed: readonly WireGuardKey[];
  readonly removed: readonly WireGuardKey[];
  readonly fingerprints: ReadonlyMap<WireGuardKey, string>;
}

/** Which peers appeared or changed, and which left, between two reads of the fang's interface. */
export function diffPeers(previous: ReadonlyMap<WireGuardKey, string>, next: DeviceState): PeerDiff {
  const fingerprints = new Map(next.peers.map((peer) => [peer.publicKey, peerFingerprint(peer)]));
  const changed = [...fingerprints].filter(([key, print]) => previous.get(key) !== print).map(([key]) => key);
  const removed = [...previous.keys()].filter((key) => !fingerprints.has(key));
  return { changed, removed, fingerprints };
}
