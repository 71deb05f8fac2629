import type { PeerList } from './peer-list';

/**
 * The full list after applying `incoming` to `held`: a full list replaces it,
 * a delta (`since` set) updates and removes entries. undefined when the delta
 * does not follow `held` (the caller then asks for the full list again).
 */
export function mergePeerList(held: PeerList | undefined, incoming: PeerList): PeerList | undefined {
  if (incoming.since === undefined) return incoming;
  if (!held || held.revision !== incoming.since) return undefined;
  const removed = new Set(incoming.removed ?? []);
  const updates = new Map(incoming.peers.map((peer) => [peer.publicKey, peer]));
  const peers = held.peers.filter((peer) => !removed.has(peer.publicKey) && !updates.has(peer.publicKey));
  peers.push(...updates.values());
  const { since: _since, removed: _removed, ...rest } = incoming;
  return { ...rest, peers };
}
