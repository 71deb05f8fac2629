import type { PeerList } from '../peer-list/peer-list';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import type { ChangesSince } from './peer-watch';
import { punchRequestsFor } from './punch-requests';

/**
 * The changes a delta carries, made consistent with the device: a key that
 * changed (a report named it) but is no longer on the interface is a removal.
 * Without this, a removed peer later "seen" in a report left a delta with
 * neither the peer nor its removal, and clients kept it for good.
 */
export function settleChanges(changes: ChangesSince, device: DeviceState): ChangesSince {
  // Every client parked on one revision asks with the same `changes` and device: settle once, not once per client.
  const memo = settled.get(changes);
  if (memo && memo.device === device) return memo.result;
  const result = settle(changes, device);
  settled.set(changes, { device, result });
  return result;
}

const settled = new WeakMap<ChangesSince, { device: DeviceState; result: ChangesSince }>();

function settle(changes: ChangesSince, device: DeviceState): ChangesSince {
  const present = new Set(device.peers.map((peer) => peer.publicKey));
  const changed = new Set<WireGuardKey>();
  const removed = new Set(changes.removed);
  for (const key of changes.changed) {
    if (present.has(key)) changed.add(key);
    else removed.add(key);
  }
  for (const key of removed) if (present.has(key)) removed.delete(key);
  return { changed, removed };
}

/**
 * The list `asker` is shown: only the peers it may reach (`mayLearn`), and of
 * what was reported, only observations by such peers and only punch requests
 * naming the asker. With `mayLearn` always true this is the seed's behaviour
 * (every peer sees every other) minus other peers' punch requests.
 */
export function scopePeerList(
  list: PeerList,
  mayLearn: (key: WireGuardKey) => boolean,
  nowSeconds: number,
  /** The policy's friendly names; undefined for an unnamed peer. */
  nameOf: (key: WireGuardKey) => string | undefined = () => undefined,
): PeerList {
  const asker = list.you.publicKey;
  const youName = nameOf(asker);
  const seenBy = list.you.seenBy?.filter((s) => mayLearn(s.publicKey));
  const { seenBy: _seenBy, ...you } = list.you;
  return {
    ...list,
    you: { ...you, ...(youName ? { name: youName } : {}), ...(seenBy?.length ? { seenBy } : {}) },
    ...(list.removed ? { removed: list.removed.filter(mayLearn) } : {}),
    peers: list.peers
      .filter((peer) => mayLearn(peer.publicKey))
      .map((peer) => {
        const { seenBy: peerSeenBy, punchRequests, ...rest } = peer;
        const seen = peerSeenBy?.filter((s) => s.publicKey === asker || mayLearn(s.publicKey));
        const requests = punchRequestsFor(punchRequests, asker, nowSeconds);
        const name = nameOf(peer.publicKey);
        return { ...rest, ...(name ? { name } : {}), ...(seen?.length ? { seenBy: seen } : {}), ...(requests.length ? { punchRequests: requests } : {}) };
      }),
  };
}
