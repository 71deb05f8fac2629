import { formatEndpoint, formatPrefix, type Endpoint, type IpAddress, type IpPrefix } from '../ip/address';
import { shortKey, type WireGuardKey } from '../wireguard/key';

/** Why one listed prefix may not be routed to a peer. */
export type PrefixRefusal =
  | { readonly code: 'equals-fang-range' }
  | { readonly code: 'outside-fang-range'; readonly fangRange: readonly IpPrefix[] }
  | { readonly code: 'contains-server' }
  | { readonly code: 'contains-own-address' }
  | { readonly code: 'overlaps'; readonly prefix: IpPrefix; readonly owner: WireGuardKey };

/** A listed prefix that was refused, and why. */
export interface RefusedPrefix {
  readonly prefix: IpPrefix;
  readonly why: PrefixRefusal;
}

/** Why a listed peer is refused: the entry looks hostile or wrong. */
export type RefuseWhy =
  | { readonly code: 'own-key' }
  | { readonly code: 'fang-key' }
  | { readonly code: 'no-acceptable-allowed-ip'; readonly refused: readonly RefusedPrefix[] }
  | { readonly code: 'relayed-allowed-ips-taken'; readonly refused: readonly RefusedPrefix[] }
  | { readonly code: 'endpoint-not-public'; readonly endpoint: Endpoint; readonly range: 'overlay' | 'link-local' };

/** Why a listed peer is left as it is: nothing needs doing, or it is not possible yet. */
export type KeepWhy =
  /** Nothing to do; not worth a log line. */
  | { readonly code: 'in-place' }
  | { readonly code: 'same-nat-waiting' }
  | { readonly code: 'no-endpoint-at-fang' }
  | { readonly code: 'routes-outside'; readonly prefix: IpPrefix }
  /** The user's peer routes nothing here: not one this client relays, so not one it manages. */
  | { readonly code: 'routes-nothing' }
  | { readonly code: 'relayed'; readonly forSeconds: number; readonly endpoint: Endpoint };

/** How a peer's endpoint is chosen: where the fang sees it, or a LAN candidate behind our own NAT. */
export type Via = 'public' | 'lan';

/** Why an existing peer is re-pointed. */
export type RepointCause =
  /** never had a handshake */
  | 'never'
  /** its last handshake is older than a session */
  | 'stale'
  /** the fang saw it leave the endpoint we use */
  | 'moved'
  /** it did not answer a probe through the endpoint we use */
  | 'silent';

/**
 * What the plan does with one peer. Each member carries what its change and
 * its log line need; `explain` renders the words, the tests assert the kind.
 */
export type PeerDecision =
  | { readonly kind: 'refuse'; readonly publicKey: WireGuardKey; readonly why: RefuseWhy }
  | { readonly kind: 'keep'; readonly publicKey: WireGuardKey; readonly why: KeepWhy }
  /**
   * Traffic flows, yet the fang lists it elsewhere: kept, and the caller may
   * probe the current path (`probeAddress`; null when it routes nothing).
   */
  | {
      readonly kind: 'contest';
      readonly publicKey: WireGuardKey;
      readonly heardSecondsAgo: number;
      readonly endpoint: Endpoint | null;
      readonly moved: boolean;
      readonly probeAddress: IpAddress | null;
    }
  | {
      readonly kind: 'add';
      readonly publicKey: WireGuardKey;
      readonly endpoint: Endpoint;
      readonly via: Via;
      /** The listed allowed IPs it is given (relayFirst: once a direct handshake proves the path). */
      readonly allowedIps: readonly IpPrefix[];
      readonly refused: readonly RefusedPrefix[];
      /** Added without allowed IPs, so its traffic goes through the fang until a direct handshake. */
      readonly relayFirst: boolean;
      readonly keepalive: number;
    }
  | {
      readonly kind: 'repoint';
      readonly publicKey: WireGuardKey;
      readonly endpoint: Endpoint;
      readonly previous: Endpoint | null;
      readonly via: Via;
      readonly cause: RepointCause;
      /** Seconds since we last heard from it; null when never. */
      readonly heardSecondsAgo: number | null;
      /** With cause `moved`: the endpoint the fang saw it leave. */
      readonly movedFrom?: Endpoint;
      /** Keepalive to turn on (it had none); undefined leaves it. */
      readonly setKeepalive?: number;
      /** Where to send a datagram so the handshake starts now; null when it routes nothing. */
      readonly probeAddress: IpAddress | null;
      /** It routes nothing and has a keepalive: turning that off and on starts the handshake. */
      readonly kickKeepalive?: number;
    }
  /**
   * A peer that never had a handshake, re-created with exactly its
   * configuration and the new endpoint in one batch: WireGuard already tried
   * it (at interface-up, with no endpoint) and would wait 5 s to try again; a
   * new peer tries at once. It has no session, so nothing is lost.
   */
  | {
      readonly kind: 'rebuild';
      readonly publicKey: WireGuardKey;
      readonly endpoint: Endpoint;
      readonly previous: Endpoint | null;
      readonly via: Via;
      /** Its allowed IPs, as they are. */
      readonly allowedIps: readonly IpPrefix[];
      /** Its keepalive, or the policy's when it had none. */
      readonly keepalive: number;
      /** Whether it has a preshared key, which the new peer keeps. */
      readonly presharedKey: boolean;
      readonly probeAddress: IpAddress | null;
      /**
       * A peer of the user's re-created relayed (the daemon relays): its
       * allowed IPs go off (or onto the fang peer, `viaFang`) until a direct
       * handshake proves the path, so a NAT that defeats the punch never
       * blackholes it; `allowedIps` are then what it gets back.
       */
      readonly relayFirst: boolean;
      readonly viaFang: boolean;
    }
  /**
   * Its traffic goes through the fang from now on. A peer this client added
   * just loses its allowed IPs (the fang lists them, to give back). A peer the
   * user configured keeps `original` (what it routed) for the way back: with
   * `viaFang` false its allowed IPs are taken off (they lie inside the fang
   * peer's range, S2); with `viaFang` true they are moved onto the fang peer
   * (the fang peer routes only its own address, S3).
   */
  | {
      readonly kind: 'relay';
      readonly publicKey: WireGuardKey;
      /** Where it is punched; null while it waits for its LAN candidates (it shares our NAT). */
      readonly endpoint: Endpoint | null;
      readonly triedSeconds: number;
      readonly previous: Endpoint | null;
      readonly origin: 'ours' | 'users';
      readonly original: readonly IpPrefix[];
      readonly viaFang: boolean;
    }
  | {
      readonly kind: 'direct-again';
      readonly publicKey: WireGuardKey;
      readonly allowedIps: readonly IpPrefix[];
      readonly refused: readonly RefusedPrefix[];
      readonly handshakeSecondsAgo: number;
      readonly endpoint: Endpoint;
      readonly previous: Endpoint | null;
      /** True when `allowedIps` are the user's own, kept while it was relayed (not the fang's list). */
      readonly restored: boolean;
    }
  | { readonly kind: 'remove'; readonly publicKey: WireGuardKey; readonly previous: Endpoint | null }
  /** A peer of the user's this client relays, which the fang no longer lists: its own allowed IPs go back (there is no relay to go on with). */
  | { readonly kind: 'restore'; readonly publicKey: WireGuardKey; readonly allowedIps: readonly IpPrefix[]; readonly previous: Endpoint | null };

export type DecisionKind = PeerDecision['kind'];

const endpointText = (endpoint: Endpoint | null) => (endpoint ? formatEndpoint(endpoint) : '(none)');
const viaText = (via: Via) => (via === 'lan' ? ' over the LAN (it shares our public address)' : '');

/** One refused prefix's reason, in words. */
export function explainPrefixRefusal(why: PrefixRefusal): string {
  switch (why.code) {
    case 'equals-fang-range':
      return "equals the fang peer's allowed IP; WireGuard would move it off the fang peer";
    case 'outside-fang-range':
      return `outside the fang peer's allowed IPs (${why.fangRange.map(formatPrefix).join(', ') || 'none'})`;
    case 'contains-server':
      return "contains the fang server's address";
    case 'contains-own-address':
      return "contains this interface's own overlay address";
    case 'overlaps':
      return `overlaps ${formatPrefix(why.prefix)} of peer ${shortKey(why.owner)}`;
  }
}

const refusedList = (refused: readonly RefusedPrefix[]) => refused.map((r) => `${formatPrefix(r.prefix)}: ${explainPrefixRefusal(r.why)}`).join('; ');

function explainRefusal(why: RefuseWhy): string {
  switch (why.code) {
    case 'own-key':
      return "is this interface's own key";
    case 'fang-key':
      return "claims the fang peer's key; the fang peer is never changed";
    case 'no-acceptable-allowed-ip':
      return `no allowed IP can be accepted (${why.refused.length ? refusedList(why.refused) : 'it lists none'})`;
    case 'relayed-allowed-ips-taken':
      return `relayed through the fang; its allowed IPs cannot be taken back (${refusedList(why.refused)})`;
    case 'endpoint-not-public':
      return `its endpoint ${formatEndpoint(why.endpoint)} lies ${why.range === 'overlay' ? 'inside the overlay (the tunnel cannot carry itself)' : 'in a link-local range'}; not a place to send WireGuard packets`;
  }
}

function explainKeep(why: KeepWhy): string {
  switch (why.code) {
    case 'in-place':
      return 'nothing to change';
    case 'same-nat-waiting':
      return 'it shares our public address (same NAT); waiting for its LAN candidates';
    case 'no-endpoint-at-fang':
      return 'the fang has no endpoint for it yet (no handshake with the fang)';
    case 'routes-outside':
      return `its allowed IP ${formatPrefix(why.prefix)} lies outside the fang peer's allowed IPs; not managed by Snakebite`;
    case 'routes-nothing':
      return 'it routes no allowed IPs and this client did not relay it: the user\'s, not managed by Snakebite';
    case 'relayed':
      return `relayed through the fang since ${why.forSeconds}s; still punching ${formatEndpoint(why.endpoint)}`;
  }
}

function explainRepoint(decision: Extract<PeerDecision, { kind: 'repoint' }>): string {
  switch (decision.cause) {
    case 'moved':
      return `the peer moved: the fang saw it leave ${endpointText(decision.movedFrom ?? null)}`;
    case 'silent':
      return `no answer through ${endpointText(decision.previous)} (last heard ${decision.heardSecondsAgo ?? 0}s ago); the peer moved`;
    case 'never':
      return `no handshake yet${viaText(decision.via)}`;
    case 'stale':
      return `no handshake for ${decision.heardSecondsAgo ?? 0}s${viaText(decision.via)}`;
  }
}

/** The decision in words, for its log line. */
export function explain(decision: PeerDecision): string {
  switch (decision.kind) {
    case 'refuse':
      return explainRefusal(decision.why);
    case 'keep':
      return explainKeep(decision.why);
    case 'contest':
      return `traffic is flowing (last heard ${decision.heardSecondsAgo}s ago)${decision.moved ? ', though the fang saw it move' : ''}; keeping endpoint ${endpointText(decision.endpoint)} until a probe says otherwise`;
    case 'add':
      return `new peer listed by the fang${viaText(decision.via)}${decision.relayFirst ? `; relayed through the fang until a direct handshake (allowed IPs ${decision.allowedIps.map(formatPrefix).join(',')})` : ''}`;
    case 'repoint':
      return explainRepoint(decision);
    case 'rebuild':
      return `no handshake yet${viaText(decision.via)}; re-created with its own configuration so WireGuard tries it at once (it tried ${decision.previous ? `${formatEndpoint(decision.previous)}` : 'with no endpoint'} already and would wait 5 s)${
        decision.relayFirst ? `; relayed through the fang until a direct handshake (its allowed IPs ${decision.allowedIps.map(formatPrefix).join(',')} ${decision.viaFang ? 'on the fang peer' : 'off'} meanwhile, kept in the state file)` : ''
      }`;
    case 'relay':
      return `${decision.endpoint ? `no direct handshake within ${decision.triedSeconds}s of punching ${formatEndpoint(decision.endpoint)}` : 'it shares our public address (same NAT) and has not reported its LAN candidates yet'}; relaying through the fang${
        decision.origin === 'users' ? ` (its allowed IPs ${decision.original.map(formatPrefix).join(',')} ${decision.viaFang ? 'move to the fang peer' : 'are taken off'} until a direct handshake; the originals are kept in the state file)` : ''
      }`;
    case 'direct-again':
      return `direct handshake ${decision.handshakeSecondsAgo}s ago through ${formatEndpoint(decision.endpoint)}; leaving the relay${decision.restored ? ' (its own allowed IPs restored)' : ''}`;
    case 'remove':
      return 'the fang no longer lists it, and this client added it';
    case 'restore':
      return `the fang no longer lists it: its own allowed IPs ${decision.allowedIps.map(formatPrefix).join(',')} go back (it was relayed through the fang)`;
  }
}
