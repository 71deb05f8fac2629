/**
 * Pure IPv4/IPv6 address, prefix and endpoint values. No node:net here: the
 * planner and the peer-list parser need exact, total functions they can unit
 * test, and prefix arithmetic that node:net does not offer.
 */

export type IpFamily = 4 | 6;

/** An IP address as a number; `zone` is an IPv6 scope such as `eth0` in `fe80::1%eth0`. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
  readonly zone?: string;
}

/** A network prefix (`10.10.10.0/24`); host bits of `address` are always zero. */
export interface IpPrefix {
  readonly address: IpAddress;
  readonly length: number;
}

/** Where a peer's UDP packets go, outside the tunnel. */
export interface Endpoint {
  readonly address: IpAddress;
  readonly port: number;
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

function parseIpv4Value(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  // Summed as a number and made a bigint once: peer lists carry tens of thousands of these.
  let value = 0;
  for (const part of parts) {
    // Leading zeros are refused: "010" is octal to some parsers and decimal to others.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return BigInt(value);
}

function parseIpv6Value(text: string): bigint | undefined {
  let head = text;
  let tailIpv4: bigint | undefined;
  const lastColon = head.lastIndexOf(':');
  if (lastColon !== -1 && head.includes('.', lastColon)) {
    tailIpv4 = parseIpv4Value(head.slice(lastColon + 1));
    if (tailIpv4 === undefined) return undefined;
    // Replace the dotted tail by two placeholder groups so the group count works out.
    head = `${head.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const group of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  const left = parseGroups(halves[0] ?? '');
  const right = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (!left || !right) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  if (tailIpv4 !== undefined) value = (value & ~0xffffffffn) | tailIpv4;
  return value;
}

/** Parses `192.0.2.1`, `2001:db8::1` or `fe80::1%eth0`; undefined when it is none of these. */
export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return undefined;
  if (text.includes(':')) {
    const percent = text.indexOf('%');
    const zone = percent === -1 ? undefined : text.slice(percent + 1);
    if (zone !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(zone)) return undefined;
    const value = parseIpv6Value(percent === -1 ? text : text.slice(0, percent));
    if (value === undefined) return undefined;
    return zone === undefined ? { family: 6, value } : { family: 6, value, zone };
  }
  const value = parseIpv4Value(text);
  return value === undefined ? undefined : { family: 4, value };
}

/** Formats an address the way `ip` and `wg` print it (RFC 5952 for IPv6). */
export function formatIp(address: IpAddress): string {
  if (address.family === 4) {
    const v = address.value;
    return [24n, 16n, 8n, 0n].map((shift) => String((v >> shift) & 0xffn)).join('.');
  }
  const zone = address.zone ? `%${address.zone}` : '';
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted tail, as inet_ntop and `wg` print them.
  if (address.value >> 32n === 0xffffn) return `::ffff:${formatIp({ family: 4, value: address.value & 0xffffffffn })}${zone}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((address.value >> BigInt(i * 16)) & 0xffffn));
  // The longest run of two or more zero groups becomes "::" (first one on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((n) => n.toString(16)).join(':');
  let text: string;
  if (bestStart === -1) text = hex(groups);
  else text = `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
  return `${text}${zone}`;
}

/** `::ffff:192.0.2.1` (how a dual-stack socket reports IPv4 peers) becomes `192.0.2.1`. */
export function unmapIpv4(address: IpAddress): IpAddress {
  if (address.family === 6 && address.value >> 32n === 0xffffn) {
    return { family: 4, value: address.value & 0xffffffffn };
  }
  return address;
}

export function ipEquals(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value && (a.zone ?? '') === (b.zone ?? '');
}

const MASKS: Record<IpFamily, readonly bigint[]> = {
  4: Array.from({ length: 33 }, (_, length) => (length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(32 - length))),
  6: Array.from({ length: 129 }, (_, length) => (length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(128 - length))),
};

function maskFor(family: IpFamily, length: number): bigint {
  return MASKS[family][length] ?? 0n;
}

/**
 * Parses `10.10.10.0/24` or `fd00::/64`. A bare address is a host prefix (/32, /128).
 * Host bits are cleared, as WireGuard itself does with allowed IPs.
 */
export function parsePrefix(text: string): IpPrefix | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  const address = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!address || address.zone !== undefined) return undefined;
  const bits = BITS[address.family];
  let length = bits;
  if (slash !== -1) {
    const lengthText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return undefined;
    length = Number(lengthText);
    if (length > bits) return undefined;
  }
  return { address: { family: address.family, value: address.value & maskFor(address.family, length) }, length };
}

export function formatPrefix(prefix: IpPrefix): string {
  return `${formatIp(prefix.address)}/${prefix.length}`;
}

export function prefixContainsIp(prefix: IpPrefix, address: IpAddress): boolean {
  const ip = unmapIpv4(address);
  if (ip.family !== prefix.address.family) return false;
  return (ip.value & maskFor(ip.family, prefix.length)) === prefix.address.value;
}

/** True when every address of `inner` is also in `outer`. */
export function prefixCovers(outer: IpPrefix, inner: IpPrefix): boolean {
  return (
    outer.address.family === inner.address.family &&
    outer.length <= inner.length &&
    (inner.address.value & maskFor(outer.address.family, outer.length)) === outer.address.value
  );
}

/** Parses `192.0.2.1:51820` or `[2001:db8::1]:51820`; undefined otherwise. Port 0 is refused. */
export function parseEndpoint(text: string): Endpoint | undefined {
  if (typeof text !== 'string' || text.length > 80) return undefined;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']:');
    if (close === -1) return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!host.includes(':')) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return undefined;
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  const address = parseIp(host);
  return address ? { address, port } : undefined;
}

export function formatEndpoint(endpoint: Endpoint): string {
  const host = formatIp(endpoint.address);
  return endpoint.address.family === 6 ? `[${host}]:${endpoint.port}` : `${host}:${endpoint.port}`;
}

export function endpointEquals(a: Endpoint | null, b: Endpoint | null): boolean {
  if (a === null || b === null) return a === b;
  return a.port === b.port && ipEquals(unmapIpv4(a.address), unmapIpv4(b.address));
}

/** The longest of `prefixes` that contains `address`, with its index; undefined when none does. */
export function longestMatch(prefixes: readonly IpPrefix[], address: IpAddress): IpPrefix | undefined {
  let best: IpPrefix | undefined;
  for (const prefix of prefixes) {
    if (prefixContainsIp(prefix, address) && (!best || prefix.length > best.length)) best = prefix;
  }
  return best;
}

/** The first host address inside `prefix`: the address itself for /32 and /128, else network+1. */
export function firstHost(prefix: IpPrefix): IpAddress {
  const bits = BITS[prefix.address.family];
  if (prefix.length >= bits - 1) return prefix.address;
  return { family: prefix.address.family, value: prefix.address.value + 1n };
}

const SPECIAL_RANGES: readonly [string, string][] = [
  ['0.0.0.0/8', 'unspecified'],
  ['127.0.0.0/8', 'loopback'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['ff00::/8', 'multicast'],
];

/**
 * Why a remote endpoint address is unusable for another machine's WireGuard
 * (loopback, unspecified, multicast, broadcast, or scoped to an interface
 * name that only means something on the machine that printed it), or
 * undefined when it is an ordinary unicast address.
 */
export function endpointAddressProblem(address: IpAddress): string | undefined {
  if (address.zone !== undefined) return `scoped to interface "${address.zone}" of another machine`;
  specialRanges ??= SPECIAL_RANGES.map(([range, what]) => [parsePrefix(range)!, what] as const);
  for (const [range, what] of specialRanges) {
    if (prefixContainsIp(range, address)) return `${what === 'unspecified' ? 'an' : 'a'} ${what} address`;
  }
  return undefined;
}

/** SPECIAL_RANGES parsed, once. */
let specialRanges: readonly (readonly [IpPrefix, string])[] | undefined;
