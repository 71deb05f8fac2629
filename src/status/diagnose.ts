import { formatEndpoint, formatIp, ipEquals, unmapIpv4, type Endpoint } from '../ip/address';
import type { PeerList, PeerListEntry } from '../peer-list/peer-list';
import { shortKey, type WireGuardKey } from '../wireguard/key';

/**
 * How a NAT maps a peer's ListenPort, as far as the reports show:
 * `symmetric`: two observers saw different ports (a new mapping per destination);
 * `independent`: two observers saw the same port (one mapping for every destination);
 * `rewrites-port`: the fang sees another port than the ListenPort (symmetric, or a port clash);
 * `keeps-port`: the fang sees the ListenPort itself (most likely one mapping for all);
 * `unknown`: nothing to go by.
 */
export type NatBehaviour = 'symmetric' | 'independent' | 'rewrites-port' | 'keeps-port' | 'unknown';

export interface NatFinding {
  readonly behaviour: NatBehaviour;
  /** The evidence, in words. */
  readonly detail: string;
}

/** What the fang's view, the peer's ListenPort and other peers' observations say about one peer's NAT. */
export function natBehaviour(
  atFang: Endpoint | null,
  listenPort: number | undefined,
  seenBy: readonly { readonly publicKey: WireGuardKey; readonly endpoint: Endpoint }[] = [],
): NatFinding {
  if (!atFang) return { behaviour: 'unknown', detail: 'the fang has no endpoint for it' };
  const sameAddress = seenBy.filter((s) => ipEquals(unmapIpv4(s.endpoint.address), unmapIpv4(atFang.address)));
  const other = sameAddress.find((s) => s.endpoint.port !== atFang.port);
  if (other) {
    return { behaviour: 'symmetric', detail: `the fang sees port ${atFang.port}, peer ${shortKey(other.publicKey)} sees port ${other.endpoint.port}: a new mapping per destination` };
  }
  if (sameAddress[0]) {
    return { behaviour: 'independent', detail: `the fang and peer ${shortKey(sameAddress[0].publicKey)} both see ${formatEndpoint(atFang)}` };
  }
  if (listenPort === undefined) return { behaviour: 'unknown', detail: `the fang sees ${formatEndpoint(atFang)}; its ListenPort is not reported` };
  if (listenPort !== atFang.port) {
    return { behaviour: 'rewrites-port', detail: `it maps ListenPort ${listenPort} to ${formatEndpoint(atFang)} towards the fang` };
  }
  return { behaviour: 'keeps-port', detail: `it keeps ListenPort ${listenPort} (${formatEndpoint(atFang)})` };
}

const HARD: ReadonlySet<NatBehaviour> = new Set(['symmetric', 'rewrites-port']);

/**
 * Why a direct path with `peer` does not come up, naming the side whose NAT
 * defeats the punch, or undefined when the reports point at neither.
 */
export function explainNoDirectPath(list: PeerList, ourListenPort: number, peer: PeerListEntry): string {
  const ours = natBehaviour(list.you.endpoint, ourListenPort, list.you.seenBy);
  const theirs = natBehaviour(peer.endpoint, peer.listenPort, peer.seenBy);
  const describe = (who: string, endpoint: Endpoint | null, finding: NatFinding) =>
    `${who} NAT${endpoint ? ` (${formatIp(endpoint.address)})` : ''}: ${finding.detail}`;
  const parts = [describe('our', list.you.endpoint, ours), describe('their', peer.endpoint, theirs)];
  const hardOurs = HARD.has(ours.behaviour);
  const hardTheirs = HARD.has(theirs.behaviour);
  let verdict: string;
  if (hardOurs && hardTheirs) verdict = 'both NATs give each destination its own port: a punch cannot pass two of them';
  else if (hardTheirs) verdict = 'their NAT gives each destination its own port, so we punch a port it never opens for us';
  else if (hardOurs) verdict = 'our NAT gives each destination its own port, so they punch a port it never opens for them';
  else verdict = 'neither NAT looks symmetric; a firewall may drop the punch (check UDP on the ListenPorts)';
  return `${verdict}; ${parts.join('; ')}`;
}

/** Groups of peers (by key, ourselves included as `self`) that share a public address and a ListenPort: the NAT must move all but one. */
export function listenPortClashes(list: PeerList, self: WireGuardKey, ourListenPort: number): string[] {
  const byPlace = new Map<string, string[]>();
  const add = (key: string, endpoint: Endpoint | null, listenPort: number | undefined) => {
    if (!endpoint || listenPort === undefined) return;
    const place = `${formatIp(unmapIpv4(endpoint.address))} port ${listenPort}`;
    byPlace.set(place, [...(byPlace.get(place) ?? []), key]);
  };
  add(self, list.you.endpoint, ourListenPort);
  for (const peer of list.peers) add(peer.publicKey, peer.endpoint, peer.listenPort);
  return [...byPlace]
    .filter(([, keys]) => keys.length > 1)
    .map(([place, keys]) => `listen-port clash behind ${place.split(' ')[0]}: ${keys.map((k) => (k === self ? 'this peer' : shortKey(k))).join(' and ')} all use ListenPort ${place.split(' ').pop()}; give each its own`);
}
