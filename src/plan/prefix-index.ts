import type { IpPrefix } from '../ip/address';

interface Entry<Owner> {
  readonly prefix: IpPrefix;
  readonly owner: Owner;
}

/**
 * One family's prefixes by length and network. IPv4 networks are kept as
 * numbers (a bigint key costs far more to hash and mask), IPv6 as bigints.
 */
class ByLength<Owner> {
  private readonly maps: Map<number | bigint, Entry<Owner>>[];

  constructor(private readonly bits: 32 | 128) {
    this.maps = Array.from({ length: bits + 1 }, () => new Map());
  }

  /** The network part of `value` (a number for IPv4, a bigint for IPv6) at `length` bits. */
  network(value: number | bigint, length: number): number | bigint {
    if (typeof value === 'number') {
      const host = 2 ** (32 - length);
      return Math.floor(value / host) * host;
    }
    const shift = BigInt(this.bits - length);
    return (value >> shift) << shift;
  }

  get(length: number, network: number | bigint): Entry<Owner> | undefined {
    return this.maps[length]!.get(network);
  }

  setIfAbsent(length: number, network: number | bigint, entry: Entry<Owner>): void {
    const map = this.maps[length]!;
    if (!map.has(network)) map.set(network, entry);
  }

  set(length: number, network: number | bigint, entry: Entry<Owner>): void {
    this.maps[length]!.set(network, entry);
  }
}

function valueOf(prefix: IpPrefix): number | bigint {
  return prefix.address.family === 4 ? Number(prefix.address.value) : prefix.address.value;
}

/**
 * Prefixes with an owner, answering "does this prefix overlap any of them?"
 * in time proportional to the address length (33 or 129 look-ups), not to
 * the number of prefixes: a list of thousands of peers must plan quickly.
 */
export class PrefixIndex<Owner> {
  /** Every stored prefix, by itself. */
  private readonly exact = { 4: new ByLength<Owner>(32), 6: new ByLength<Owner>(128) };
  /** Every stored prefix, under each of its shorter ancestors (and itself). */
  private readonly under = { 4: new ByLength<Owner>(32), 6: new ByLength<Owner>(128) };

  add(prefix: IpPrefix, owner: Owner): void {
    const entry = { prefix, owner };
    const family = prefix.address.family;
    const value = valueOf(prefix);
    this.exact[family].set(prefix.length, value, entry);
    const under = this.under[family];
    for (let length = 0; length <= prefix.length; length++) under.setIfAbsent(length, under.network(value, length), entry);
  }

  /** A stored prefix that covers `prefix` or lies inside it, or undefined. */
  findOverlap(prefix: IpPrefix): Entry<Owner> | undefined {
    const family = prefix.address.family;
    const value = valueOf(prefix);
    const exact = this.exact[family];
    for (let length = 0; length <= prefix.length; length++) {
      const covering = exact.get(length, exact.network(value, length));
      if (covering) return covering;
    }
    return this.under[family].get(prefix.length, value);
  }
}
