import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { formatIp, ipEquals, parseIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';

export type InterfaceTable = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** The addresses the kernel has on `interfaceName` (empty when it does not exist). */
export function addressesOf(interfaceName: string, table: InterfaceTable = networkInterfaces()): IpAddress[] {
  return (table[interfaceName] ?? []).flatMap((info) => {
    const address = parseIp(info.address.split('%')[0] ?? '');
    return address ? [address] : [];
  });
}

/**
 * Refuses to serve on an address that is not the WireGuard interface's own:
 * the peer list must only be reachable through the tunnel, where the source
 * address proves who is asking.
 */
export function assertListenAddressOnInterface(interfaceName: string, listen: IpAddress, table?: InterfaceTable): void {
  const addresses = addressesOf(interfaceName, table);
  if (addresses.some((address) => ipEquals(address, { family: listen.family, value: listen.value }))) return;
  const have = addresses.length ? addresses.map(formatIp).join(', ') : 'no addresses (or it does not exist)';
  throw new SnakebiteError(
    'SB_LISTEN_NOT_ON_INTERFACE',
    `${formatIp(listen)} is not an address of ${interfaceName}; ${interfaceName} has ${have}`,
    `listen on ${interfaceName}'s overlay address (the Address in its wg-quick config), e.g. --listen ${addresses[0] ? formatIp(addresses[0]) : '10.10.10.1'}`,
  );
}
