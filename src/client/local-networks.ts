import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { InterfaceTable } from '../fang/listen-address';
import { parseIp, parsePrefix, type Endpoint, type IpPrefix } from '../ip/address';

export type { InterfaceTable } from '../fang/listen-address';

function usable(info: NetworkInterfaceInfo): boolean {
  // Loopback and link-local addresses mean nothing to another machine.
  return !info.internal && !info.address.toLowerCase().startsWith('fe80:') && !info.address.startsWith('169.254.');
}

/** The networks this machine is on, other than through the WireGuard interface itself. */
export function localNetworks(wgInterface: string, table: InterfaceTable = networkInterfaces()): IpPrefix[] {
  return Object.entries(table).flatMap(([name, infos]) =>
    name === wgInterface ? [] : (infos ?? []).filter(usable).flatMap((info) => parsePrefix(info.cidr ?? '') ?? []),
  );
}

/** This machine's LAN addresses with WireGuard's ListenPort: where a peer behind the same NAT can reach it. */
export function localCandidates(wgInterface: string, listenPort: number, table: InterfaceTable = networkInterfaces(), max = 16): Endpoint[] {
  if (listenPort === 0) return [];
  return Object.entries(table)
    .flatMap(([name, infos]) => (name === wgInterface ? [] : (infos ?? []).filter(usable)))
    .flatMap((info) => parseIp(info.address) ?? [])
    .slice(0, max)
    .map((address) => ({ address, port: listenPort }));
}
