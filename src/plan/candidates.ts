import { ipEquals, prefixContainsIp, unmapIpv4, type Endpoint, type IpPrefix } from '../ip/address';
import type { PeerList, PeerListEntry } from '../peer-list/peer-list';

/** Where to send to a peer, and why there. */
export interface EndpointChoice {
  readonly endpoint: Endpoint | null;
  /**
   * `lan`: one of the peer's own candidates on a network we are on too;
   * `public`: where the fang sees it; `wait`: it shares our public address
   * but has not reported its candidates yet (its traffic keeps going through
   * the fang meanwhile; punching its public endpoint would only hit our own NAT).
   */
  readonly via: 'public' | 'lan' | 'wait';
}

/**
 * Picks the endpoint for a listed peer. A peer behind the same public address
 * as us sits behind the same NAT, which most routers do not hairpin: then one
 * of its LAN candidates on a network we share is used instead of the public
 * endpoint. Otherwise the endpoint the fang sees.
 */
export function chooseEndpoint(entry: PeerListEntry, you: PeerList['you'], localNetworks: readonly IpPrefix[]): EndpointChoice {
  const pub = entry.endpoint;
  if (pub && you.endpoint && ipEquals(unmapIpv4(pub.address), unmapIpv4(you.endpoint.address))) {
    if (entry.candidates === undefined && localNetworks.length > 0) return { endpoint: null, via: 'wait' };
    const lan = entry.candidates?.find((candidate) => localNetworks.some((network) => prefixContainsIp(network, candidate.address)));
    if (lan) return { endpoint: lan, via: 'lan' };
  }
  return { endpoint: pub, via: 'public' };
}
