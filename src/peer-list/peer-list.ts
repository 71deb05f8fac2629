import type { Endpoint, IpPrefix } from '../ip/address';
import type { WireGuardKey } from '../wireguard/key';

/** The version of the peer-list document this code speaks; see docs/protocol.md. */
export const PEER_LIST_VERSION = 1;

/** The document the fang serves at `GET /v1/peers`, parsed. */
export interface PeerList {
  readonly version: typeof PEER_LIST_VERSION;
  /** The fang's own interface public key. */
  readonly fang: { readonly publicKey: WireGuardKey };
  /** The asker, as the fang sees it: its key and the endpoint its packets arrive from (null before any). */
  readonly you: {
    readonly publicKey: WireGuardKey;
    readonly endpoint: Endpoint | null;
    /** The asker's friendly name in the fang's policy file; absent when it names none. */
    readonly name?: string;
    /** Where other peers see the asker on their direct paths, as they reported it. */
    readonly seenBy?: readonly { readonly publicKey: WireGuardKey; readonly endpoint: Endpoint }[];
  };
  /** Every other peer of the fang; with `since`, only those that changed after that revision. */
  readonly peers: readonly PeerListEntry[];
  /**
   * The fang's revision of the list: it grows whenever a peer appears, leaves,
   * or changes endpoint or allowed IPs. Undefined from servers that predate it.
   */
  readonly revision?: number;
  /** Present when this is a delta: the revision the asker held; `peers` and `removed` are what changed since. */
  readonly since?: number;
  /** In a delta, the keys of peers that left since `since`. */
  readonly removed?: readonly WireGuardKey[];
}

export interface PeerListEntry {
  readonly publicKey: WireGuardKey;
  /** The peer's friendly name in the fang's policy file; absent when it names none. */
  readonly name?: string;
  /** Where the fang last heard from the peer; null when it never has. */
  readonly endpoint: Endpoint | null;
  readonly allowedIps: readonly IpPrefix[];
  /** Unix seconds of the peer's latest handshake with the fang; 0 means never. */
  readonly latestHandshake: number;
  /** The peer's WireGuard ListenPort, as it reported it; undefined when it has not. */
  readonly listenPort?: number;
  /** Where the peer can be reached on its own networks (LAN address and ListenPort), as it reported them. */
  readonly candidates?: readonly Endpoint[];
  /** Where other peers see this peer's packets come from on their direct paths, as they reported it. */
  readonly seenBy?: readonly { readonly publicKey: WireGuardKey; readonly endpoint: Endpoint }[];
  /** Peers this peer asked to send to it (see PeerReport.punchRequests), with when it asked. */
  readonly punchRequests?: readonly PunchRequest[];
}

/**
 * "Send me a packet": a peer whose packets to `publicKey` get no answer asks
 * it, through the fang, to send first, because the other side's NAT forgot
 * the mapping and only a packet from inside opens it again. `at` is unix seconds.
 */
export interface PunchRequest {
  readonly publicKey: WireGuardKey;
  readonly at: number;
}

/**
 * What a client tells the fang about itself (`POST /v1/report`): its
 * ListenPort, its local candidate endpoints, and where it sees the peers it
 * has a direct session with. The fang hands these out with the peer list.
 */
export interface PeerReport {
  readonly listenPort: number;
  readonly candidates: readonly Endpoint[];
  readonly seen: readonly { readonly publicKey: WireGuardKey; readonly endpoint: Endpoint }[];
  /** Peers asked to send to the reporter; absent when none. */
  readonly punchRequests?: readonly PunchRequest[];
}

/** A peer-list entry that failed validation and was dropped, with where and why. */
export interface RejectedEntry {
  /** e.g. `peers[3].endpoint` */
  readonly path: string;
  /** The entry's key, when it had a well-formed one. */
  readonly publicKey?: WireGuardKey;
  readonly reason: string;
}

/** Limits that keep a hostile or broken fang from making a client do unbounded work. */
export const PEER_LIST_LIMITS = {
  /** Entries in `peers` (and keys in `removed`): WireGuard itself handles tens of thousands of peers on one interface. */
  maxPeers: 65_536,
  maxAllowedIpsPerPeer: 256,
  /** Allowed IPs in the whole list: planning cost grows with it. */
  maxAllowedIpsTotal: 262_144,
  maxCandidates: 16,
  /** Largest report body the fang reads, in bytes. */
  maxReportBytes: 256 * 1024,
} as const;
