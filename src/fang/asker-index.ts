import { unmapIpv4, type IpAddress } from '../ip/address';
import type { DeviceState, PeerState } from '../wireguard/device-state';

/**
 * Longest-prefix match from an overlay address to the peer whose allowed IPs
 * hold it, as WireGuard routes: one hash map per prefix length in use, tried
 * from the longest. With /32 and /128 peers that is one lookup; the worst case
 * is one lookup per distinct length (at most 33 + 129), whatever the peer count.
 */
export class AskerIndex {
  private readonly v4 = new Map<number, Map<number, PeerState>>();
  private readonly v6 = new Map<number, Map<bigint, PeerState>>();
  private readonly v4Lengths: number[];
  private readonly v6Lengths: number[];

  constructor(peers: readonly PeerState[]) {
    for (const peer of peers) {
      for (const prefix of peer.allowedIps) {
        if (prefix.address.family === 4) {
          let byValue = this.v4.get(prefix.length);
          if (!byValue) this.v4.set(prefix.length, (byValue = new Map()));
          const value = Number(prefix.address.value);
          // WireGuard holds each prefix once; should a state list it twice, the first peer keeps it, as a scan would.
          if (!byValue.has(value)) byValue.set(value, peer);
        } else {
          let byValue = this.v6.get(prefix.length);
          if (!byValue) this.v6.set(prefix.length, (byValue = new Map()));
          if (!byValue.has(prefix.address.value)) byValue.set(prefix.address.value, peer);
        }
      }
    }
    this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
    this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
  }

  /** The peer whose allowed IPs hold `address` most specifically; undefined when none does. */
  find(source: IpAddress): PeerState | undefined {
    const address = unmapIpv4(source);
    if (address.family === 4) {
      const value = Number(address.value);
      for (const length of this.v4Lengths) {
        const masked = length === 0 ? 0 : ((value >>> (32 - length)) * 2 ** (32 - length));
        const peer = this.v4.get(length)!.get(masked);
        if (peer) return peer;
      }
      return undefined;
    }
    for (const length of this.v6Lengths) {
      const shift = BigInt(128 - length);
      const peer = this.v6.get(length)!.get((address.value >> shift) << shift);
      if (peer) return peer;
    }
    return undefined;
  }
}

const indexes = new WeakMap<DeviceState, AskerIndex>();

/** The index of `device`, built on first use and kept as long as the state object lives. */
export function askerIndexOf(device: DeviceState): AskerIndex {
  let index = indexes.get(device);
  if (!index) indexes.set(device, (index = new AskerIndex(device.peers)));
  return index;
}
