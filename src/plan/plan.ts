import {
  endpointEquals,
  firstHost,
  formatEndpoint,
  formatPrefix,
  prefixContainsIp,
  prefixCovers,
  type Endpoint,
  type IpAddress,
  type IpPrefix,
} from '../ip/address';
import type { PeerList } from '../peer-list/peer-list';
import type { DeviceState, PeerChange, PeerState } from '../wireguard/device-state';
import { shortKey, type WireGuardKey } from '../wireguard/key';

/** How the client treats what the fang says; every field has a documented CLI default. */
export interface Policy {
  /** The fang peer: never changed, never claimed by a listed entry. */
  readonly fangPublicKey: WireGuardKey;
  /** The fang server's overlay address; no added peer may route it. */
  readonly serverAddress: IpAddress;
  /** Persistent keepalive, seconds, set on peers the client adds or re-points. */
  readonly keepaliveSeconds: number;
  /**
   * A peer whose latest handshake (or last received byte, when `activity` knows
   * it) is at most this many seconds old counts as flowing, and keeps its endpoint.
   */
  readonly flowingWithinSeconds: number;
}

export type ChangeKind = 'add-peer' | 'set-endpoint';

/** One change of the plan, with what it was before and why, for the log line. */
export interface PlannedChange extends PeerChange {
  readonly kind: ChangeKind;
  readonly reason: string;
  readonly previousEndpoint: Endpoint | null;
  /** An overlay address of the peer to send a datagram to so the handshake starts now; null when it has none. */
  readonly probeAddress: IpAddress | null;
  /** Allowed IPs the fang listed for a new peer that were refused, with why. */
  readonly refusedAllowedIps: readonly { readonly prefix: string; readonly reason: string }[];
}

/** A listed peer the plan leaves alone, and why. */
export interface SkippedPeer {
  readonly publicKey: WireGuardKey;
  readonly reason: string;
  /** `refused` means the entry looked hostile or wrong; `kept` means nothing needs doing or it is not yet possible. */
  readonly severity: 'refused' | 'kept';
}

export interface Plan {
  readonly changes: readonly PlannedChange[];
  readonly skipped: readonly SkippedPeer[];
  /**
   * Flowing peers for which the fang reports another endpoint: either the peer
   * moved (its old path is dead) or its NAT shows the fang another port. A probe
   * through the current path tells which; see `silent`.
   */
  readonly contested: readonly { readonly publicKey: WireGuardKey; readonly probeAddress: IpAddress }[];
}

/** Unix seconds of the last sign of life from each peer (0: none seen), when the caller has watched rx counters. */
export type Activity = ReadonlyMap<WireGuardKey, number>;

/** Unix seconds of the latest sign of life: a handshake or, when known, received bytes. */
function lastHeardFrom(peer: PeerState, activity: Activity | undefined): number {
  return Math.max(peer.latestHandshake, activity?.get(peer.publicKey) ?? 0);
}

/**
 * Computes the changes that make `current` reach the peers in `list`, without
 * ever touching the fang peer, removing a peer, or re-pointing a peer whose
 * traffic is flowing. Pure: planning again against the result gives no changes.
 */
export function planPeerChanges(
  current: DeviceState,
  list: PeerList,
  policy: Policy,
  now: Date,
  activity?: Activity,
  /** Peers that did not answer a probe through their current endpoint just now: not flowing, whatever their handshake says. */
  silent?: ReadonlySet<WireGuardKey>,
  /** The endpoints the fang listed in the previous list, to tell a peer that moved from one whose NAT shows the fang another port. */
  listedBefore?: ReadonlyMap<WireGuardKey, Endpoint | null>,
): Plan {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const changes: PlannedChange[] = [];
  const skipped: SkippedPeer[] = [];
  const contested: { publicKey: WireGuardKey; probeAddress: IpAddress }[] = [];
  const localPeers = new Map(current.peers.map((peer) => [peer.publicKey, peer]));
  const fangPeer = localPeers.get(policy.fangPublicKey);
  const fangRange = fangPeer?.allowedIps ?? [];
  // Prefixes routed to peers other than the fang: a new peer may not take any of them.
  const claimed: { prefix: IpPrefix; owner: WireGuardKey }[] = current.peers
    .filter((peer) => peer.publicKey !== policy.fangPublicKey)
    .flatMap((peer) => peer.allowedIps.map((prefix) => ({ prefix, owner: peer.publicKey })));

  for (const entry of list.peers) {
    const skip = (reason: string, severity: SkippedPeer['severity'] = 'kept') =>
      skipped.push({ publicKey: entry.publicKey, reason, severity });

    if (entry.publicKey === current.publicKey) {
      skip("is this interface's own key", 'refused');
      continue;
    }
    if (entry.publicKey === policy.fangPublicKey) {
      skip("claims the fang peer's key; the fang peer is never changed", 'refused');
      continue;
    }
    if (entry.endpoint === null) {
      skip('the fang has no endpoint for it yet (no handshake with the fang)');
      continue;
    }

    const local = localPeers.get(entry.publicKey);
    if (local) {
      if (endpointEquals(local.endpoint, entry.endpoint)) continue;
      // A peer routing anything outside the overlay (a site, a LAN) is the user's own business.
      const outside = local.allowedIps.find((prefix) => !fangRange.some((outer) => prefixCovers(outer, prefix) && outer.length < prefix.length));
      if (outside) {
        skip(`its allowed IP ${formatPrefix(outside)} lies outside the fang peer's allowed IPs; not managed by Snakebite`);
        continue;
      }
      const heard = lastHeardFrom(local, activity);
      const age = Math.max(0, nowSeconds - heard);
      const unanswered = silent?.has(local.publicKey) ?? false;
      // The fang used to see the peer where we reach it, and now sees it elsewhere: it moved.
      const before = listedBefore?.get(local.publicKey);
      const moved = before !== undefined && before !== null && endpointEquals(before, local.endpoint);
      if (heard > 0 && age <= policy.flowingWithinSeconds && !unanswered && !moved) {
        skip(`traffic is flowing (last heard ${age}s ago); keeping endpoint ${local.endpoint ? formatEndpoint(local.endpoint) : '(none)'}`);
        if (local.allowedIps[0]) contested.push({ publicKey: local.publicKey, probeAddress: firstHost(local.allowedIps[0]) });
        continue;
      }
      changes.push({
        kind: 'set-endpoint',
        publicKey: entry.publicKey,
        endpoint: entry.endpoint,
        ...(local.persistentKeepalive === null ? { persistentKeepalive: policy.keepaliveSeconds } : {}),
        previousEndpoint: local.endpoint,
        probeAddress: local.allowedIps[0] ? firstHost(local.allowedIps[0]) : null,
        reason: moved
          ? `the peer moved: the fang saw it leave ${formatEndpoint(before!)}`
          : unanswered
          ? `no answer through ${local.endpoint ? formatEndpoint(local.endpoint) : '(none)'} (last heard ${age}s ago); the peer moved`
          : heard === 0
            ? 'no handshake yet'
            : `no handshake for ${age}s`,
        refusedAllowedIps: [],
      });
      continue;
    }

    const accepted: IpPrefix[] = [];
    const refused: { prefix: string; reason: string }[] = [];
    for (const prefix of entry.allowedIps) {
      const reason = whyRefused(prefix, fangRange, policy.serverAddress, claimed);
      if (reason) refused.push({ prefix: formatPrefix(prefix), reason });
      else accepted.push(prefix);
    }
    if (accepted.length === 0) {
      const detail = refused.length ? refused.map((r) => `${r.prefix}: ${r.reason}`).join('; ') : 'it lists none';
      skip(`no allowed IP can be accepted (${detail})`, 'refused');
      continue;
    }
    for (const prefix of accepted) claimed.push({ prefix, owner: entry.publicKey });
    changes.push({
      kind: 'add-peer',
      publicKey: entry.publicKey,
      endpoint: entry.endpoint,
      allowedIps: accepted,
      persistentKeepalive: policy.keepaliveSeconds,
      previousEndpoint: null,
      probeAddress: firstHost(accepted[0]!),
      reason: 'new peer listed by the fang',
      refusedAllowedIps: refused,
    });
  }
  return { changes, skipped, contested };
}

function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  return prefixCovers(a, b) || prefixCovers(b, a);
}

/** Why a listed prefix may not be routed to a new peer, or undefined when it may. */
function whyRefused(
  prefix: IpPrefix,
  fangRange: readonly IpPrefix[],
  serverAddress: IpAddress,
  claimed: readonly { prefix: IpPrefix; owner: WireGuardKey }[],
): string | undefined {
  // Strictly inside: an equal prefix would be moved off the fang peer by WireGuard.
  if (fangRange.some((outer) => outer.length === prefix.length && outer.address.value === prefix.address.value && outer.address.family === prefix.address.family)) {
    return "equals the fang peer's allowed IP; WireGuard would move it off the fang peer";
  }
  if (!fangRange.some((outer) => prefixCovers(outer, prefix) && outer.length < prefix.length)) {
    return `outside the fang peer's allowed IPs (${fangRange.map(formatPrefix).join(', ') || 'none'})`;
  }
  if (prefixContainsIp(prefix, serverAddress)) return "contains the fang server's address";
  const clash = claimed.find((c) => prefixesOverlap(c.prefix, prefix));
  if (clash) return `overlaps ${formatPrefix(clash.prefix)} of peer ${shortKey(clash.owner)}`;
  return undefined;
}
