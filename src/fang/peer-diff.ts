import { endpointEquals, formatEndpoint, formatPrefix } from '../ip/address';
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

function sameEndpoint(a: PeerState['endpoint'], b: PeerState['endpoint']): boolean {
  return a === b || endpointEquals(a, b);
}

function sameAllowedIps(a: PeerState['allowedIps'], b: PeerState['allowedIps']): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((p, i) => {
    const q = b[i]!;
    return p.length === q.length && p.address.family === q.address.family && p.address.value === q.address.value;
  });
}

export interface StateDiff {
  readonly changed: readonly WireGuardKey[];
  readonly removed: readonly WireGuardKey[];
  /** `next`'s peers by key, to pass as `previous` next time. */
  readonly byKey: ReadonlyMap<WireGuardKey, PeerState>;
}

/**
 * diffPeers without fingerprints: compares endpoints and allowed IPs by
 * identity first (a DumpParser hands back the same objects for an unchanged
 * field), by value otherwise. Linear in the peers, no formatting.
 */
export function diffStates(previous: ReadonlyMap<WireGuardKey, PeerState>, next: DeviceState): StateDiff {
  const byKey = new Map<WireGuardKey, PeerState>();
  const changed: WireGuardKey[] = [];
  for (const peer of next.peers) {
    byKey.set(peer.publicKey, peer);
    const before = previous.get(peer.publicKey);
    if (before === peer) continue;
    if (!before || !sameEndpoint(before.endpoint, peer.endpoint) || !sameAllowedIps(before.allowedIps, peer.allowedIps)) changed.push(peer.publicKey);
  }
  const removed: WireGuardKey[] = [];
  if (previous.size + changed.length !== byKey.size || changed.length > 0) {
    for (const key of previous.keys()) if (!byKey.has(key)) removed.push(key);
  }
  return { changed, removed, byKey };
}
