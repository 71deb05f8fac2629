import { formatIp, longestMatch, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { DeviceState, PeerState } from '../wireguard/device-state';

/**
 * The fang peer: the peer whose allowed IPs route the server's address, as
 * WireGuard itself would choose it (longest prefix wins).
 */
export function findFangPeer(device: DeviceState, serverAddress: IpAddress): PeerState {
  let best: { peer: PeerState; length: number } | undefined;
  for (const peer of device.peers) {
    const match = longestMatch(peer.allowedIps, serverAddress);
    if (match && (!best || match.length > best.length)) best = { peer, length: match.length };
  }
  if (!best) {
    throw new SnakebiteError(
      'SB_NO_FANG_PEER',
      `no peer of ${device.interfaceName} routes the server address ${formatIp(serverAddress)}`,
      `add the fang as a peer whose AllowedIPs contain ${formatIp(serverAddress)} (e.g. the whole overlay range)`,
    );
  }
  return best.peer;
}
