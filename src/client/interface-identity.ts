import { readFileSync } from 'node:fs';

/**
 * The kernel's index of an interface, or undefined when it cannot be read.
 * `wg-quick down; wg-quick up` makes a new interface with a new index: the
 * peers on it then come from the user's configuration, whatever an earlier
 * run of the client added to the old one.
 */
export function interfaceIndex(interfaceName: string): number | undefined {
  try {
    const value = Number(readFileSync(`/sys/class/net/${interfaceName}/ifindex`, 'utf8').trim());
    return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}
