import { readFileSync } from 'node:fs';

/** Which IP families the kernel forwards; relaying peers through the fang needs it. */
export function forwardingEnabled(read: (path: string) => string = (path) => readFileSync(path, 'utf8')): { ipv4: boolean; ipv6: boolean } {
  const on = (path: string) => {
    try {
      return read(path).trim() === '1';
    } catch {
      return false;
    }
  };
  return { ipv4: on('/proc/sys/net/ipv4/ip_forward'), ipv6: on('/proc/sys/net/ipv6/conf/all/forwarding') };
}
