import { endpointEquals, firstHost, formatPrefix, parsePrefix, prefixContainsIp, prefixCovers, unmapIpv4, type Endpoint, type IpAddress, type IpPrefix } from '../ip/address';
import type { PeerList, PeerListEntry } from '../peer-list/peer-list';
import { chooseEndpoint } from './candidates';
import { RouteClaims, strictlyInside } from './claims';
import { explain, explainPrefixRefusal, type PeerDecision, type RefusedPrefix } from './decision';
import type { DeviceState, PeerChange, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

export { explain, type PeerDecision } from './decision';

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
  /** This interface's own overlay addresses: no peer may be given a prefix that contains one. */
  readonly ownAddresses?: readonly IpAddress[];
}

/**
 * `add-peer`: a new peer; `set-endpoint`: an existing peer re-pointed;
 * `rebuild-peer`: a never-handshaken peer re-created with its configuration and a new endpoint;
 * `relay`: its allowed IPs taken off so the fang carries its traffic;
 * `direct-again`: its allowed IPs given back after a direct handshake;
 * `remove-peer`: a peer this client added that the fang no longer lists;
 * `fang-routes`: the fang peer routes, besides its own allowed IPs, those of
 * the user's peers relayed through it (a fang peer that routes only its own address).
 */
export type ChangeKind = 'add-peer' | 'set-endpoint' | 'rebuild-peer' | 'relay' | 'direct-again' | 'remove-peer' | 'fang-routes';

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
  /** The decision this change carries out; for `fang-routes`, the relay that moved prefixes onto the fang peer (the last one). */
  readonly decision: PeerDecision;
}

/** A listed peer the plan leaves alone, and why. */
export interface SkippedPeer {
  readonly publicKey: WireGuardKey;
  readonly reason: string;
  /** `refused` means the entry looked hostile or wrong; `kept` means nothing needs doing or it is not yet possible. */
  readonly severity: 'refused' | 'kept';
  /** The decision, as data: tests and `status` read this, the log reads `reason`. */
  readonly decision: Extract<PeerDecision, { kind: 'refuse' | 'keep' | 'contest' }>;
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
  /** One decision per listed peer (and per peer removed), in list order: what `changes` and `skipped` are made from. */
  readonly decisions: readonly PeerDecision[];
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
  /**
   * Peers the user configured that this client relays, with what they routed
   * before (`allowedIps`) and whether those were moved onto the fang peer
   * (`viaFang`) rather than just taken off: restored exactly on the way back.
   */
  readonly changed?: ReadonlyMap<WireGuardKey, ChangedPeer>;
}

/** What a relayed peer of the user's routed before this client changed it. */
export interface ChangedPeer {
  readonly allowedIps: readonly IpPrefix[];
  readonly viaFang: boolean;
}

/** Unix seconds of the latest sign of life: a handshake or, when known, received bytes. */
function lastHeardFrom(peer: PeerState, activity: Activity | undefined): number {
  return Math.max(peer.latestHandshake, activity?.get(peer.publicKey) ?? 0);
}

/** Everything `decide` reads besides the peer itself; claims are read, never written, by it. */
export interface PlanContext {
  readonly policy: Policy;
  readonly nowSeconds: number;
  readonly observations: PlanObservations;
  readonly you: PeerList['you'];
  /** This interface's own key, null when it has none. */
  readonly selfKey: WireGuardKey | null;
  readonly claims: RouteClaims;
}

/** Whether a local peer counts as relayed: it routes nothing here, though the fang lists prefixes for it. */
function isRelayed(local: PeerState, entry: PeerListEntry, ctx: PlanContext): boolean {
  // A peer of the user's we relay is relayed whatever the fang lists for it now: its own allowed IPs must come back.
  return local.allowedIps.length === 0 && (entry.allowedIps.length > 0 || (ctx.observations.changed?.has(local.publicKey) ?? false));
}

/**
 * What to do with one listed peer, given its local entry (undefined when the
 * interface does not have it). Pure; one small case after the other.
 */
export function decide(entry: PeerListEntry, local: PeerState | undefined, ctx: PlanContext): PeerDecision {
  const { policy, nowSeconds, claims } = ctx;
  const publicKey = entry.publicKey;
  if (publicKey === ctx.selfKey) return { kind: 'refuse', publicKey, why: { code: 'own-key' } };
  if (publicKey === policy.fangPublicKey) return { kind: 'refuse', publicKey, why: { code: 'fang-key' } };
  const target = chooseEndpoint(entry, ctx.you, policy.localNetworks ?? []);
  if (target.via === 'wait') return (local && relayWhileWaiting(entry, local, ctx)) || { kind: 'keep', publicKey, why: { code: 'same-nat-waiting' } };
  if (target.endpoint === null) return { kind: 'keep', publicKey, why: { code: 'no-endpoint-at-fang' } };
  const unusable = whyEndpointUnusable(target.endpoint, claims.fangRange, policy.localNetworks ?? []);
  if (unusable) return { kind: 'refuse', publicKey, why: { code: 'endpoint-not-public', endpoint: target.endpoint, range: unusable } };
  const via = target.via;
  if (!local) return decideNew(entry, target.endpoint, via, ctx);

  const { activity, silent, listedBefore, relayedSince, addedByUs } = ctx.observations;
  // undefined addedByUs: every peer counts as ours (tests, and callers that do not track origins).
  const users = addedByUs !== undefined && !addedByUs.has(publicKey);
  // A peer routing anything outside the overlay (a site, a LAN) is the user's own business. A peer
  // of the user's may route what the fang routes to it (a fang peer that routes only its own address, S3).
  const outside = local.allowedIps.find((prefix) => !strictlyInside(prefix, claims.fangRange) && !(users && routedByFangTo(prefix, entry, ctx)));
  if (outside) return { kind: 'keep', publicKey, why: { code: 'routes-outside', prefix: outside } };

  // A peer that routes nothing is relayed only when this client did it (it added it, or relays it);
  // one the user configured that way is the user's (undefined addedByUs: every peer counts as ours).
  const relayedByUs = relayedSince?.has(publicKey) || addedByUs === undefined || addedByUs.has(publicKey);
  if (local.allowedIps.length === 0 && !relayedByUs) return { kind: 'keep', publicKey, why: { code: 'routes-nothing' } };
  const relayed = isRelayed(local, entry, ctx);
  const relayStart = relayedSince?.get(publicKey) ?? nowSeconds - (policy.relayAfterSeconds ?? 0);
  // Handshakes have one-second resolution: one in the very second the relay began counts.
  const directSinceRelay = relayed && local.latestHandshake > 0 && local.latestHandshake >= relayStart;
  const unanswered = silent?.has(publicKey) ?? false;
  // A handshake is direct UDP: a relayed peer that had one since (and did not move away) answers where
  // WireGuard has it now, even when the fang sees it at another port (a NAT with a mapping per destination).
  const answersWhereItIs =
    policy.relayAfterSeconds !== undefined &&
    directSinceRelay &&
    nowSeconds - local.latestHandshake <= policy.flowingWithinSeconds &&
    !unanswered &&
    !endpointEquals(listedBefore?.get(publicKey) ?? null, local.endpoint);

  if (!endpointEquals(local.endpoint, target.endpoint) && !answersWhereItIs) {
    const heard = lastHeardFrom(local, activity);
    const age = Math.max(0, nowSeconds - heard);
    // The fang used to see the peer where we reach it, and now sees it elsewhere: it moved.
    const before = listedBefore?.get(publicKey);
    const moved = before !== undefined && before !== null && endpointEquals(before, local.endpoint);
    // Flowing traffic keeps its endpoint, also when the fang saw the peer move: the caller
    // probes the current path first (contest), and only a peer that stays silent is re-pointed.
    if (heard > 0 && age <= policy.flowingWithinSeconds && !unanswered) {
      return { kind: 'contest', publicKey, heardSecondsAgo: age, endpoint: local.endpoint, moved, probeAddress: local.allowedIps[0] ? firstHost(local.allowedIps[0]) : null };
    }
    if (heard === 0 && local.latestHandshake === 0 && !moved && !unanswered) {
      // A peer of the user's that routes something starts relayed, as an added one does; one
      // already relayed (while it waited for its LAN candidates) stays so, with its own allowed IPs kept.
      const original = ctx.observations.changed?.get(publicKey);
      const own = original?.allowedIps ?? local.allowedIps;
      const relayFirst = users && policy.relayAfterSeconds !== undefined && own.length > 0 && entry.allowedIps.length > 0;
      return {
        kind: 'rebuild',
        relayFirst,
        viaFang: relayFirst && (original ? original.viaFang : !own.every((prefix) => strictlyInside(prefix, claims.fangRange))),
        publicKey,
        endpoint: target.endpoint,
        previous: local.endpoint,
        via,
        allowedIps: own,
        keepalive: local.persistentKeepalive ?? policy.keepaliveSeconds,
        presharedKey: local.hasPresharedKey,
        probeAddress: local.allowedIps[0] ? firstHost(local.allowedIps[0]) : null,
      };
    }
    return {
      kind: 'repoint',
      publicKey,
      endpoint: target.endpoint,
      previous: local.endpoint,
      via,
      cause: moved ? 'moved' : unanswered ? 'silent' : heard === 0 ? 'never' : 'stale',
      heardSecondsAgo: heard === 0 ? null : age,
      ...(moved ? { movedFrom: before! } : {}),
      ...(local.persistentKeepalive === null ? { setKeepalive: policy.keepaliveSeconds } : {}),
      probeAddress: local.allowedIps[0] ? firstHost(local.allowedIps[0]) : null,
      ...(local.allowedIps.length === 0 && local.persistentKeepalive !== null ? { kickKeepalive: local.persistentKeepalive } : {}),
    };
  }

  // The endpoint is right: is the direct path working, or should the fang relay?
  const endpoint = local.endpoint ?? target.endpoint;
  if (relayed) {
    if (!directSinceRelay) return { kind: 'keep', publicKey, why: { code: 'relayed', forSeconds: nowSeconds - relayStart, endpoint: target.endpoint } };
    const handshakeSecondsAgo = Math.max(0, nowSeconds - local.latestHandshake);
    // The user's own allowed IPs come back exactly as they were, whatever the fang lists.
    const original = ctx.observations.changed?.get(publicKey);
    if (original) return { kind: 'direct-again', publicKey, allowedIps: original.allowedIps, refused: [], handshakeSecondsAgo, endpoint, previous: local.endpoint, restored: true };
    const { accepted, refused } = claims.accept(entry.allowedIps, publicKey);
    if (accepted.length === 0) return { kind: 'refuse', publicKey, why: { code: 'relayed-allowed-ips-taken', refused } };
    return { kind: 'direct-again', publicKey, allowedIps: accepted, refused, handshakeSecondsAgo, endpoint, previous: local.endpoint, restored: false };
  }
  if (dueForRelay(local, entry, ctx)) {
    return {
      kind: 'relay',
      publicKey,
      endpoint: target.endpoint,
      triedSeconds: nowSeconds - ctx.observations.tryingSince!.get(publicKey)!,
      previous: local.endpoint,
      origin: users ? 'users' : 'ours',
      original: local.allowedIps,
      viaFang: users && !local.allowedIps.every((prefix) => strictlyInside(prefix, claims.fangRange)),
    };
  }
  return { kind: 'keep', publicKey, why: { code: 'in-place' } };
}

const LINK_LOCAL = [parsePrefix('169.254.0.0/16')!, parsePrefix('fe80::/10')!];

/**
 * Why WireGuard must not send to `endpoint`: it lies inside the overlay (the
 * fang peer's range, unless that is a default route or a network we are on:
 * the packets would enter the tunnel they carry), or in a link-local range (no such place beyond this
 * link); undefined when it may.
 */
function whyEndpointUnusable(endpoint: Endpoint, fangRange: readonly IpPrefix[], localNetworks: readonly IpPrefix[]): 'overlay' | 'link-local' | undefined {
  const address = unmapIpv4(endpoint.address);
  if (LINK_LOCAL.some((range) => prefixContainsIp(range, address))) return 'link-local';
  // A network we are on is reached over it, even when the overlay range is wider.
  if (localNetworks.some((network) => prefixContainsIp(network, address))) return undefined;
  if (fangRange.some((range) => range.length > 0 && prefixContainsIp(range, address))) return 'overlay';
  return undefined;
}

/**
 * Whether a prefix one of the user's peers routes is one the fang routes to
 * that same peer (it lists it for it), so the fang can carry its traffic: then
 * the peer is part of the overlay, though the fang peer's own allowed IPs do
 * not cover it. A listed prefix holding the server's or our own address proves nothing.
 */
function routedByFangTo(prefix: IpPrefix, entry: PeerListEntry, ctx: PlanContext): boolean {
  return entry.allowedIps.some(
    (listed) =>
      prefixCovers(listed, prefix) &&
      !prefixContainsIp(listed, ctx.policy.serverAddress) &&
      !(ctx.policy.ownAddresses ?? []).some((own) => prefixContainsIp(listed, own)),
  );
}

/**
 * A listed peer of the user's behind our own NAT that has not reported its LAN
 * candidates yet: its allowed IPs lead nowhere (it has no endpoint), so it is
 * relayed through the fang meanwhile, as a peer the client adds would be.
 * Undefined when that does not apply.
 */
function relayWhileWaiting(entry: PeerListEntry, local: PeerState, ctx: PlanContext): PeerDecision | undefined {
  const { policy, observations, claims } = ctx;
  const users = observations.addedByUs !== undefined && !observations.addedByUs.has(local.publicKey);
  if (!users || policy.relayAfterSeconds === undefined || local.latestHandshake > 0 || local.allowedIps.length === 0 || entry.allowedIps.length === 0) return undefined;
  if (observations.changed?.has(local.publicKey)) return undefined;
  const inside = local.allowedIps.every((prefix) => strictlyInside(prefix, claims.fangRange));
  if (!inside && !local.allowedIps.every((prefix) => routedByFangTo(prefix, entry, ctx))) return undefined;
  return { kind: 'relay', publicKey: local.publicKey, endpoint: null, triedSeconds: 0, previous: local.endpoint, origin: 'users', original: local.allowedIps, viaFang: !inside };
}

/**
 * Whether a routed peer has been punched for `relayAfterSeconds` without a
 * direct handshake. Only a peer the fang routes (it lists allowed IPs for it)
 * can be relayed. A peer this client added gets the fang's list back; one the
 * user configured gets its own allowed IPs back, which the caller keeps
 * (`changed`, saved in the state file) while it is relayed.
 */
function dueForRelay(local: PeerState, entry: PeerListEntry, ctx: PlanContext): boolean {
  const { policy, observations, nowSeconds } = ctx;
  const trying = observations.tryingSince?.get(local.publicKey);
  return (
    policy.relayAfterSeconds !== undefined &&
    trying !== undefined &&
    local.allowedIps.length > 0 &&
    entry.allowedIps.length > 0 &&
    local.latestHandshake < trying &&
    nowSeconds - trying >= policy.relayAfterSeconds
  );
}

/**
 * A peer the interface does not have: added with the listed allowed IPs the
 * claims accept. When relaying is on it starts relayed: its traffic keeps going
 * through the fang (which already carries it) until a direct handshake proves
 * the path, so a NAT that defeats the punch never blackholes it.
 */
function decideNew(entry: PeerListEntry, endpoint: Endpoint, via: 'public' | 'lan', ctx: PlanContext): PeerDecision {
  const { accepted, refused } = ctx.claims.accept(entry.allowedIps, entry.publicKey);
  if (accepted.length === 0) return { kind: 'refuse', publicKey: entry.publicKey, why: { code: 'no-acceptable-allowed-ip', refused } };
  return {
    kind: 'add',
    publicKey: entry.publicKey,
    endpoint,
    via,
    allowedIps: accepted,
    refused,
    relayFirst: ctx.policy.relayAfterSeconds !== undefined,
    keepalive: ctx.policy.keepaliveSeconds,
  };
}

/** A local peer the list does not name: removed only when this client added it and it routes nothing outside the overlay. */
function decideUnlisted(peer: PeerState, ctx: PlanContext): PeerDecision | undefined {
  if (peer.publicKey === ctx.policy.fangPublicKey) return undefined;
  const original = ctx.observations.changed?.get(peer.publicKey);
  if (original && peer.allowedIps.length === 0) return { kind: 'restore', publicKey: peer.publicKey, allowedIps: original.allowedIps, previous: peer.endpoint };
  if (!ctx.observations.addedByUs?.has(peer.publicKey)) return undefined;
  // A peer that routes anything outside the overlay is the user's, whoever added it.
  if (peer.allowedIps.some((prefix) => !strictlyInside(prefix, ctx.claims.fangRange))) return undefined;
  return { kind: 'remove', publicKey: peer.publicKey, previous: peer.endpoint };
}

const refusedText = (refused: readonly RefusedPrefix[]) => refused.map((r) => ({ prefix: formatPrefix(r.prefix), reason: explainPrefixRefusal(r.why) }));

/** The `wg set` change a decision makes, or undefined for one that changes nothing. */
export function changeFor(decision: PeerDecision): PlannedChange | undefined {
  const common = { publicKey: decision.publicKey, reason: explain(decision), decision };
  switch (decision.kind) {
    case 'refuse':
    case 'keep':
    case 'contest':
      return undefined;
    case 'add':
      return {
        ...common,
        kind: 'add-peer',
        endpoint: decision.endpoint,
        allowedIps: decision.relayFirst ? [] : decision.allowedIps,
        persistentKeepalive: decision.keepalive,
        previousEndpoint: null,
        probeAddress: decision.relayFirst ? null : firstHost(decision.allowedIps[0]!),
        refusedAllowedIps: refusedText(decision.refused),
      };
    case 'repoint':
      return {
        ...common,
        kind: 'set-endpoint',
        endpoint: decision.endpoint,
        ...(decision.setKeepalive !== undefined ? { persistentKeepalive: decision.setKeepalive } : {}),
        previousEndpoint: decision.previous,
        probeAddress: decision.probeAddress,
        ...(decision.kickKeepalive !== undefined ? { kickKeepalive: decision.kickKeepalive } : {}),
        refusedAllowedIps: [],
      };
    case 'rebuild':
      return {
        ...common,
        kind: 'rebuild-peer',
        recreate: true,
        ...(decision.presharedKey ? { keepPresharedKey: true as const } : {}),
        endpoint: decision.endpoint,
        allowedIps: decision.relayFirst ? [] : decision.allowedIps,
        persistentKeepalive: decision.keepalive,
        previousEndpoint: decision.previous,
        // Routing nothing, it is reached through no datagram: the keepalive set on the new peer starts the handshake.
        probeAddress: decision.relayFirst ? null : decision.probeAddress,
        refusedAllowedIps: [],
      };
    case 'relay':
      return { ...common, kind: 'relay', allowedIps: [], previousEndpoint: decision.previous, probeAddress: null, refusedAllowedIps: [] };
    case 'direct-again':
      return { ...common, kind: 'direct-again', allowedIps: decision.allowedIps, previousEndpoint: decision.previous, probeAddress: null, refusedAllowedIps: refusedText(decision.refused) };
    case 'restore':
      return { ...common, kind: 'direct-again', allowedIps: decision.allowedIps, previousEndpoint: decision.previous, probeAddress: null, refusedAllowedIps: [] };
    case 'remove':
      return { ...common, kind: 'remove-peer', remove: true, previousEndpoint: decision.previous, probeAddress: null, refusedAllowedIps: [] };
  }
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
  const localPeers = new Map(current.peers.map((peer) => [peer.publicKey, peer]));
  // The fang peer's own range: without what relayed peers of the user's moved onto it.
  const moved = [...(observations.changed?.entries() ?? [])].filter(([, c]) => c.viaFang).flatMap(([owner, c]) => c.allowedIps.map((prefix) => ({ owner, prefix })));
  const fangNow = localPeers.get(policy.fangPublicKey)?.allowedIps ?? [];
  const fangRange = fangNow.filter((prefix) => !moved.some((m) => samePrefix(m.prefix, prefix)));
  const claims = new RouteClaims(fangRange, policy.serverAddress, policy.ownAddresses ?? []);
  // Prefixes routed to peers other than the fang: a new peer may not take any of them.
  for (const peer of current.peers) if (peer.publicKey !== policy.fangPublicKey) claims.claim(peer.allowedIps, peer.publicKey);
  // A relayed peer of the user's keeps what it routed before, wherever that is now.
  for (const [owner, c] of observations.changed ?? []) if (localPeers.has(owner)) claims.claim(c.allowedIps, owner);
  // A relayed peer routes nothing here, yet what the fang lists for it stays its own,
  // as it was when it was added: no other peer may take it while it is relayed.
  for (const entry of list.peers) {
    const local = localPeers.get(entry.publicKey);
    if (!local || local.publicKey === policy.fangPublicKey || local.allowedIps.length > 0) continue;
    claims.claim(claims.accept(entry.allowedIps, entry.publicKey).accepted, entry.publicKey);
  }
  const ctx: PlanContext = { policy, nowSeconds: Math.floor(now.getTime() / 1000), observations, you: list.you, selfKey: current.publicKey, claims };

  const decisions: PeerDecision[] = [];
  for (const entry of list.peers) {
    const decision = decide(entry, localPeers.get(entry.publicKey), ctx);
    // Route claims are made here, in list order: the first peer listed keeps a contested prefix.
    if (decision.kind === 'add' || decision.kind === 'direct-again') claims.claim(decision.allowedIps, decision.publicKey);
    decisions.push(decision);
  }
  if (observations.addedByUs) {
    const listed = new Set(list.peers.map((entry) => entry.publicKey));
    for (const peer of current.peers) {
      const decision = listed.has(peer.publicKey) ? undefined : decideUnlisted(peer, ctx);
      if (decision) decisions.push(decision);
    }
  }

  const changes: PlannedChange[] = [];
  const skipped: SkippedPeer[] = [];
  const ontoFang = decisions.flatMap((d) =>
    (d.kind === 'relay' && d.viaFang) ? [{ decision: d as PeerDecision, prefixes: d.original }] : d.kind === 'rebuild' && d.viaFang ? [{ decision: d as PeerDecision, prefixes: d.allowedIps }] : [],
  );
  const contested: { publicKey: WireGuardKey; probeAddress: IpAddress }[] = [];
  for (const decision of decisions) {
    const change = changeFor(decision);
    if (change) changes.push(change);
    else if (decision.kind === 'refuse') skipped.push({ publicKey: decision.publicKey, reason: explain(decision), severity: 'refused', decision });
    else if (decision.kind === 'contest') {
      skipped.push({ publicKey: decision.publicKey, reason: explain(decision), severity: 'kept', decision });
      if (decision.probeAddress) contested.push({ publicKey: decision.publicKey, probeAddress: decision.probeAddress });
    } else if (decision.kind === 'keep' && decision.why.code !== 'in-place') {
      skipped.push({ publicKey: decision.publicKey, reason: explain(decision), severity: 'kept', decision });
    }
  }
  // One change for the fang peer however many peers move onto it: `wg set` replaces its whole list.
  const extra = ontoFang.flatMap((d) => d.prefixes).filter((prefix) => !fangNow.some((own) => samePrefix(own, prefix)));
  // Prefixes this plan gives back to their own peers leave the fang peer in the same batch:
  // `wg set` replaces the fang peer's whole list after theirs, and must not take them back.
  const givenBack = decisions.flatMap((d) => (d.kind === 'direct-again' || d.kind === 'restore' ? d.allowedIps : []));
  if (extra.length > 0) {
    changes.push({
      kind: 'fang-routes',
      publicKey: policy.fangPublicKey,
      allowedIps: [...fangNow.filter((own) => !givenBack.some((back) => samePrefix(back, own))), ...extra],
      previousEndpoint: null,
      probeAddress: null,
      reason: `the fang peer carries ${extra.map(formatPrefix).join(',')} while ${ontoFang.length === 1 ? 'that peer is' : 'those peers are'} relayed (its own allowed IPs stay)`,
      refusedAllowedIps: [],
      decision: ontoFang[ontoFang.length - 1]!.decision,
    });
  }
  return { changes, skipped, contested, decisions };
}

function samePrefix(a: IpPrefix, b: IpPrefix): boolean {
  return a.length === b.length && a.address.family === b.address.family && a.address.value === b.address.value;
}
