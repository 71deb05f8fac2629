import { prefixContainsIp, prefixCovers, type IpAddress, type IpPrefix } from '../ip/address';
import type { PrefixRefusal, RefusedPrefix } from './decision';
import { PrefixIndex } from './prefix-index';
import type { WireGuardKey } from '../wireguard/key';

/** True when `prefix` lies inside one of `range`'s prefixes and is narrower than it (an equal one would move off its owner). */
export function strictlyInside(prefix: IpPrefix, range: readonly IpPrefix[]): boolean {
  return range.some((outer) => prefixCovers(outer, prefix) && outer.length < prefix.length);
}

/**
 * Who routes what on the interface, as the plan goes: the one place that
 * decides whether a listed prefix may be routed to a peer. The fang peer's
 * range bounds every claim; the server's address and our own overlay
 * addresses are never given away; no two peers share a prefix.
 */
export class RouteClaims {
  private readonly claimed = new PrefixIndex<WireGuardKey>();

  constructor(
    /** The fang peer's allowed IPs: every claim lies strictly inside them. */
    readonly fangRange: readonly IpPrefix[],
    private readonly serverAddress: IpAddress,
    /** This interface's own overlay addresses; a claim containing one would route our own traffic away. */
    private readonly ownAddresses: readonly IpAddress[] = [],
  ) {}

  /** Records that `owner` routes `prefixes` (or will, once the plan is applied). */
  claim(prefixes: readonly IpPrefix[], owner: WireGuardKey): void {
    for (const prefix of prefixes) this.claimed.add(prefix, owner);
  }

  /** Why `prefix` may not be routed to `owner`, or undefined when it may. `owner`'s own earlier claims are no clash. */
  whyNot(prefix: IpPrefix, owner: WireGuardKey): PrefixRefusal | undefined {
    const family = prefix.address.family;
    if (this.fangRange.some((outer) => outer.length === prefix.length && outer.address.value === prefix.address.value && outer.address.family === family)) {
      return { code: 'equals-fang-range' };
    }
    if (!strictlyInside(prefix, this.fangRange)) return { code: 'outside-fang-range', fangRange: this.fangRange };
    if (prefixContainsIp(prefix, this.serverAddress)) return { code: 'contains-server' };
    if (this.ownAddresses.some((own) => prefixContainsIp(prefix, own))) return { code: 'contains-own-address' };
    const clash = this.claimed.findOverlap(prefix);
    if (clash && clash.owner !== owner) return { code: 'overlaps', prefix: clash.prefix, owner: clash.owner };
    return undefined;
  }

  /** Splits `prefixes` into those `owner` may be given and those refused, with why; claims nothing. */
  accept(prefixes: readonly IpPrefix[], owner: WireGuardKey): { accepted: IpPrefix[]; refused: RefusedPrefix[] } {
    const accepted: IpPrefix[] = [];
    const refused: RefusedPrefix[] = [];
    for (const prefix of prefixes) {
      const why = this.whyNot(prefix, owner);
      if (why) refused.push({ prefix, why });
      else accepted.push(prefix);
    }
    return { accepted, refused };
  }
}
