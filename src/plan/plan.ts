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
import { chooseEndpoint } from './candidates';
import { PrefixIndex } from './prefix-index';
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
  /** The networks this machine is on (not the WireGuard interface's), to reach peers behind the same NAT over the LAN. */
  readonly localNetworks?: readonly IpPrefix[];
  /** Relay a peer through the fang when punching gets no direct handshake within this many seconds; undefined never relays. */
  readonly relayAfterSeconds?: number;
}

/**
 * `add-peer`: a new peer; `set-endpoint`: an existing peer re-pointed;
 * `relay`: its allowed IPs taken off so the fang carries its traffic;
 * `direct-again`: its allowed IPs given back after a direct handshake;
 * `remove-peer`: a peer this client added that the fang no longer lists.
 */
export type ChangeKind = 'add-peer' | 'set-endpoint' | 'relay' | 'direct-again' | 'remove-peer';

/** One change of the plan, with what it was before and why, for the log line. */
export interface PlannedChange extends PeerChange {
  readonly kind: ChangeKind;
  readonly reason: string;
  readonly previousEndpoint: Endpoint | null;
  /** An overlay address of the peer to send a datagram to so the handshake starts now; null when it has none. */
  readonly probeAddress: IpAddress | null;
  /**
   * Set when the peer routes nothing (it is relayed), so no datagram through
   * the tunnel can reach it, and its keepalive is already on, so setting it
   * sends nothing: apply turns keepalive off and back on to this value, which
   * makes WireGuard start a handshake to the new endpoint at once.
   */
  readonly kickKeepalive?: number;
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

/** What the caller has observed beyond the interface's own state; every field is optional. */
export interface PlanObservations {
  readonly activity?: Activity;
  /** Peers that did not answer a probe through their current endpoint just now: not flowing, whatever their handshake says. */
  readonly silent?: ReadonlySet<WireGuardKey>;
  /** The endpoints the fang listed in the previous list, to tell a peer that moved from one whose NAT shows the fang another port. */
  readonly listedBefore?: ReadonlyMap<WireGuardKey, Endpoint | null>;
  /** Unix seconds since when we have been punching towards each peer without a handshake. */
  readonly tryingSince?: ReadonlyMap<WireGuardKey, number>;
  /** Unix seconds since when each peer's traffic has been relayed through the fang. */
  readonly relayedSince?: ReadonlyMap<WireGuardKey, number>;
  /**
   * Peers this client added itself: the only ones it may remove, when the
   * list (a full one) no longer names them. Undefined removes nothing.
   */
  readonly addedByUs?: ReadonlySet<WireGuardKey>;
}

/** Unix seconds of the latest sign of life: a handshake or, when known, received bytes. */
function lastHeardFrom(peer: PeerState, activity: Activity | undefined): number {
  return Math.max(peer.latestHandshake, activity?.get(peer.publicKey) ?? 0);
}

/**
 * Computes the changes that make `current` reach the peers in `list`, without
 * ever touching the fang peer, removing a peer it did not add, or re-pointing a peer whose
 * traffic is flowing. A peer that gets no direct handshake within
 * `policy.relayAfterSeconds` of punching is relayed: its allowed IPs are taken
 * off its own entry, so the fang peer's range carries its traffic through the
 * fang; a direct handshake later brings them back. Pure: planning again
 * against the result gives no changes.
 */
export function planPeerChanges(current: DeviceState, list: PeerList, policy: Policy, now: Date, observations: PlanObservations = {}): Plan {
  const { activity, silent, listedBefore, tryingSince, relayedSince } = observations;
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const changes: PlannedChange[] = [];
  const skipped: SkippedPeer[] = [];
  const contested: { publicKey: WireGuardKey; probeAddress: IpAddress }[] = [];
  const localPeers = new Map(current.peers.map((peer) => [peer.publicKey, peer]));
  const fangPeer = localPeers.get(policy.fangPublicKey);
  const fangRange = fangPeer?.allowedIps ?? [];
  // Prefixes routed to peers other than the fang: a new peer may not take any of them.
  const claimed = new PrefixIndex<WireGuardKey>();
  for (const peer of current.peers) {
    if (peer.publicKey !== policy.fangPublicKey) for (const prefix of peer.allowedIps) claimed.add(prefix, peer.publicKey);
  }
  // A relayed peer routes nothing here, yet what the fang lists for it stays its own,
  // as it was when it was added: no other peer may take it while it is relayed.
  for (const entry of list.peers) {
    const local = localPeers.get(entry.publicKey);
    if (!local || local.publicKey === policy.fangPublicKey || local.allowedIps.length > 0) continue;
    for (const prefix of entry.allowedIps) {
      if (!whyRefused(prefix, fangRange, policy.serverAddress, claimed, entry.publicKey)) claimed.add(prefix, entry.publicKey);
    }
  }
  const accept = (prefixes: readonly IpPrefix[], owner: WireGuardKey) => {
    const accepted: IpPrefix[] = [];
    const refused: { prefix: string; reason: string }[] = [];
    for (const prefix of prefixes) {
      const reason = whyRefused(prefix, fangRange, policy.serverAddress, claimed, owner);
      if (reason) refused.push({ prefix: formatPrefix(prefix), reason });
      else accepted.push(prefix);
    }
    return { accepted, refused };
  };

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
    const target = chooseEndpoint(entry, list.you, policy.localNetworks ?? []);
    const viaLan = target.via === 'lan' ? ' over the LAN (it shares our public address)' : '';
    if (target.via === 'wait') {
      skip('it shares our public address (same NAT); waiting for its LAN candidates');
      continue;
    }
    if (target.endpoint === null) {
      skip('the fang has no endpoint for it yet (no handshake with the fang)');
      continue;
    }

    const local = localPeers.get(entry.publicKey);
    if (local) {
      // A peer routing anything outside the overlay (a site, a LAN) is the user's own business.
      const outside = local.allowedIps.find((prefix) => !strictlyInside(prefix, fangRange));
      if (outside) {
        skip(`its allowed IP ${formatPrefix(outside)} lies outside the fang peer's allowed IPs; not managed by Snakebite`);
        continue;
      }
      const relayed = local.allowedIps.length === 0 && entry.allowedIps.length > 0;
      const relayStart = relayedSince?.get(local.publicKey) ?? nowSeconds - (policy.relayAfterSeconds ?? 0);
      // Handshakes have one-second resolution: one in the very second the relay began counts.
      const directSinceRelay = relayed && local.latestHandshake > 0 && local.latestHandshake >= relayStart;
      // A handshake is direct UDP: a relayed peer that had one since (and did not move away) answers where
      // WireGuard has it now, even when the fang sees it at another port (a NAT with a mapping per destination).
      const answersWhereItIs =
        policy.relayAfterSeconds !== undefined &&
        directSinceRelay &&
        nowSeconds - local.latestHandshake <= policy.flowingWithinSeconds &&
        !(silent?.has(local.publicKey) ?? false) &&
        !endpointEquals(listedBefore?.get(local.publicKey) ?? null, local.endpoint);
      if (!endpointEquals(local.endpoint, target.endpoint) && !answersWhereItIs) {
        const heard = lastHeardFrom(local, activity);
        const age = Math.max(0, nowSeconds - heard);
        const unanswered = silent?.has(local.publicKey) ?? false;
        // The fang used to see the peer where we reach it, and now sees it elsewhere: it moved.
        const before = listedBefore?.get(local.publicKey);
        const moved = before !== undefined && before !== null && endpointEquals(before, local.endpoint);
        // Flowing traffic keeps its endpoint, also when the fang saw the peer move:
        // the caller probes the current path first (`contested`), and only a peer
        // that stays silent (`silent`) is re-pointed.
        if (heard > 0 && age <= policy.flowingWithinSeconds && !unanswered) {
          skip(`traffic is flowing (last heard ${age}s ago)${moved ? ', though the fang saw it move' : ''}; keeping endpoint ${local.endpoint ? formatEndpoint(local.endpoint) : '(none)'} until a probe says otherwise`);
          if (local.allowedIps[0]) contested.push({ publicKey: local.publicKey, probeAddress: firstHost(local.allowedIps[0]) });
          continue;
        }
        changes.push({
          kind: 'set-endpoint',
          publicKey: entry.publicKey,
          endpoint: target.endpoint,
          ...(local.persistentKeepalive === null ? { persistentKeepalive: policy.keepaliveSeconds } : {}),
          previousEndpoint: local.endpoint,
          probeAddress: local.allowedIps[0] ? firstHost(local.allowedIps[0]) : null,
          ...(local.allowedIps.length === 0 && local.persistentKeepalive !== null ? { kickKeepalive: local.persistentKeepalive } : {}),
          reason: moved
            ? `the peer moved: the fang saw it leave ${formatEndpoint(before!)}`
            : unanswered
              ? `no answer through ${local.endpoint ? formatEndpoint(local.endpoint) : '(none)'} (last heard ${age}s ago); the peer moved`
              : heard === 0
                ? `no handshake yet${viaLan}`
                : `no handshake for ${age}s${viaLan}`,
          refusedAllowedIps: [],
        });
        continue;
      }

      // The endpoint is right: is the direct path working, or should the fang relay?
      if (relayed) {
        if (directSinceRelay) {
          const { accepted, refused } = accept(entry.allowedIps, entry.publicKey);
          if (accepted.length === 0) {
            skip('relayed through the fang; its allowed IPs cannot be taken back (' + refused.map((r) => `${r.prefix}: ${r.reason}`).join('; ') + ')', 'refused');
            continue;
          }
          for (const prefix of accepted) claimed.add(prefix, entry.publicKey);
          changes.push({
            kind: 'direct-again',
            publicKey: entry.publicKey,
            allowedIps: accepted,
            previousEndpoint: local.endpoint,
            probeAddress: null,
            reason: `direct handshake ${Math.max(0, nowSeconds - local.latestHandshake)}s ago through ${formatEndpoint(local.endpoint ?? target.endpoint)}; leaving the relay`,
            refusedAllowedIps: refused,
          });
        } else {
          skip(`relayed through the fang since ${nowSeconds - relayStart}s; still punching ${formatEndpoint(target.endpoint)}`);
        }
        continue;
      }
      const trying = tryingSince?.get(local.publicKey);
      // Only what the fang routes to the peer can be relayed, and only what it lists can be given back.
      // Only a peer this client added is relayed: taking allowed IPs off one the user
      // configured could not be undone exactly.
      const ours = observations.addedByUs === undefined || observations.addedByUs.has(local.publicKey);
      if (ours && policy.relayAfterSeconds !== undefined && trying !== undefined && local.allowedIps.length > 0 && entry.allowedIps.length > 0 && local.latestHandshake < trying && nowSeconds - trying >= policy.relayAfterSeconds) {
        changes.push({
          kind: 'relay',
          publicKey: entry.publicKey,
          allowedIps: [],
          previousEndpoint: local.endpoint,
          probeAddress: null,
          reason: `no direct handshake within ${nowSeconds - trying}s of punching ${formatEndpoint(target.endpoint)}; relaying through the fang`,
          refusedAllowedIps: [],
        });
      }
      continue;
    }

    const { accepted, refused } = accept(entry.allowedIps, entry.publicKey);
    if (accepted.length === 0) {
      const detail = refused.length ? refused.map((r) => `${r.prefix}: ${r.reason}`).join('; ') : 'it lists none';
      skip(`no allowed IP can be accepted (${detail})`, 'refused');
      continue;
    }
    for (const prefix of accepted) claimed.add(prefix, entry.publicKey);
    // When relaying is on, a new peer starts relayed: its traffic keeps going through
    // the fang (which already carries it) until a direct handshake proves the path,
    // so a NAT that defeats the punch never blackholes it.
    const relayFirst = policy.relayAfterSeconds !== undefined;
    changes.push({
      kind: 'add-peer',
      publicKey: entry.publicKey,
      endpoint: target.endpoint,
      allowedIps: relayFirst ? [] : accepted,
      persistentKeepalive: policy.keepaliveSeconds,
      previousEndpoint: null,
      probeAddress: relayFirst ? null : firstHost(accepted[0]!),
      reason: `new peer listed by the fang${viaLan}${relayFirst ? `; relayed through the fang until a direct handshake (allowed IPs ${accepted.map(formatPrefix).join(',')})` : ''}`,
      refusedAllowedIps: refused,
    });
  }
  if (observations.addedByUs) {
    const listed = new Set(list.peers.map((entry) => entry.publicKey));
    for (const peer of current.peers) {
      if (peer.publicKey === policy.fangPublicKey || listed.has(peer.publicKey) || !observations.addedByUs.has(peer.publicKey)) continue;
      // A peer that routes anything outside the overlay is the user's, whoever added it.
      if (peer.allowedIps.some((prefix) => !strictlyInside(prefix, fangRange))) continue;
      changes.push({
        kind: 'remove-peer',
        publicKey: peer.publicKey,
        remove: true,
        previousEndpoint: peer.endpoint,
        probeAddress: null,
        reason: 'the fang no longer lists it, and this client added it',
        refusedAllowedIps: [],
      });
    }
  }
  return { changes, skipped, contested };
}

/** True when `prefix` lies inside one of `range`'s prefixes and is narrower than it (an equal one would move off its owner). */
function strictlyInside(prefix: IpPrefix, range: readonly IpPrefix[]): boolean {
  return range.some((outer) => prefixCovers(outer, prefix) && outer.length < prefix.length);
}

/** Why a listed prefix may not be routed to a new peer, or undefined when it may. */
function whyRefused(
  prefix: IpPrefix,
  fangRange: readonly IpPrefix[],
  serverAddress: IpAddress,
  claimed: PrefixIndex<WireGuardKey>,
  /** The peer asking: its own earlier claims are no clash. */
  owner: WireGuardKey,
): string | undefined {
  // Strictly inside: an equal prefix would be moved off the fang peer by WireGuard.
  if (fangRange.some((outer) => outer.length === prefix.length && outer.address.value === prefix.address.value && outer.address.family === prefix.address.family)) {
    return "equals the fang peer's allowed IP; WireGuard would move it off the fang peer";
  }
  if (!strictlyInside(prefix, fangRange)) {
    return `outside the fang peer's allowed IPs (${fangRange.map(formatPrefix).join(', ') || 'none'})`;
  }
  if (prefixContainsIp(prefix, serverAddress)) return "contains the fang server's address";
  const clash = claimed.findOverlap(prefix);
  if (clash && clash.owner !== owner) return `overlaps ${formatPrefix(clash.prefix)} of peer ${shortKey(clash.owner)}`;
  return undefined;
}
