import type { Endpoint, IpPrefix } from '../ip/address';
import type { WireGuardKey } from './key';

/**
 * What one WireGuard interface is, as read from `wg show <if> dump`. Key
 * material never enters this type: the private and preshared keys are reduced
 * to whether they are set.
 */
export interface DeviceState {
  readonly interfaceName: string;
  readonly hasPrivateKey: boolean;
  /** null when the interface has no private key yet. */
  readonly publicKey: WireGuardKey | null;
  /** UDP port WireGuard listens on; 0 when not yet bound. */
  readonly listenPort: number;
  /** null when no fwmark is set. */
  readonly fwmark: number | null;
  readonly peers: readonly PeerState[];
}

export interface PeerState {
  readonly publicKey: WireGuardKey;
  readonly hasPresharedKey: boolean;
  /** null when WireGuard has no endpoint for the peer (`(none)`). */
  readonly endpoint: Endpoint | null;
  readonly allowedIps: readonly IpPrefix[];
  /** Unix time in seconds of the last completed handshake; 0 means never. */
  readonly latestHandshake: number;
  /** Bytes received and sent; exact up to 2^53, approximate beyond (WireGuard counts in u64). */
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Persistent keepalive interval in seconds; null when off. */
  readonly persistentKeepalive: number | null;
}

/** One change to one peer; fields left undefined are left as they are. */
export interface PeerChange {
  readonly publicKey: WireGuardKey;
  readonly endpoint?: Endpoint;
  /** Replaces the peer's whole allowed-IPs list (this is how `wg set` works). */
  readonly allowedIps?: readonly IpPrefix[];
  /** Seconds; 0 turns keepalive off. */
  readonly persistentKeepalive?: number;
  /** Removes the peer; no other field may be set with it. */
  readonly remove?: true;
  /**
   * Removes the peer and creates it again, in the same batch, with the fields
   * given: a new peer has no "handshake sent less than 5 s ago" on record, so
   * WireGuard sends one at once. Only for a peer that never had a session.
   */
  readonly recreate?: true;
  /** With `recreate`: the new peer gets the old one's preshared key (the driver reads it; it never reaches a command line or a log). */
  readonly keepPresharedKey?: true;
}
