import type { IpPrefix } from '../ip/address';

const BITS = { 4: 32, 6: 128 } as const;

function masked(prefix: IpPrefix, length: number): bigint {
  const bits = BITS[prefix.address.family];
  if (length === 0) return 0n;
  return prefix.address.value & (((1n << BigInt(length)) - 1n) << BigInt(bits - length));
}

function key(family: 4 | 6, length: number, network: bigint): string {
  return `${family}/${length}/${network}`;
}

/**
 * Prefixes with an owner, answering "does this prefix overlap any of them?"
 * in time proportional to the address length (33 or 129 look-ups), not to
 * the number of prefixes: a list of thousands of peers must plan quickly.
 */
export class PrefixIndex<Owner> {
  /** Every stored prefix, by itself. */
  private readonly exact = new Map<string, { prefix: IpPrefix; owner: Owner }>();
  /** Every stored prefix, under each of its shorter ancestors (and itself). */
  private readonly under = new Map<string, { prefix: IpPrefix; owner: Owner }>();

  add(prefix: IpPrefix, owner: Owner): void {
    const entry = { prefix, owner };
    const family = prefix.address.family;
    this.exact.set(key(family, prefix.length, prefix.address.value), entry);
    for (let length = 0; length <= prefix.length; length++) {
      const k = key(family, length, masked(prefix, length));
      if (!this.under.has(k)) this.under.set(k, entry);
    }
  }

  /** A stored prefix that covers `prefix` or lies inside it, or undefined. */
  findOverlap(prefix: IpPrefix): { prefix: IpPrefix; owner: Owner } | undefined {
    const family = prefix.address.family;
    for (let length = 0; length <= prefix.length; length++) {
      const covering = this.exact.get(key(family, length, masked(prefix, length)));
      if (covering) return covering;
    }
    return this.under.get(key(family, prefix.length, prefix.address.value));
  }
}
