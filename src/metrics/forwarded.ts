/**
 * Bytes F forwarded between peers: the byte counters of FORWARD rules that
 * match traffic in and out of the WireGuard interface (`iptables -I FORWARD
 * -i wg0 -o wg0 -j ACCEPT`, the rule `snakebite doctor` asks for). The kernel
 * counts nothing else per interface pair; without such a rule the metric is absent.
 */
import { execFile } from 'node:child_process';

/** Sums the bytes column of `iptables -nvxL FORWARD` rows with in = out = `interfaceName`; undefined when there is none. */
export function parseForwardedBytes(text: string, interfaceName: string): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    // pkts bytes target prot opt in out source destination
    const cols = line.trim().split(/\s+/);
    if (cols.length < 9 || !/^[0-9]+$/.test(cols[0]!) || !/^[0-9]+$/.test(cols[1]!)) continue;
    const [inIf, outIf] = cols[4] === '--' || /^!?-/.test(cols[4]!) ? [cols[5], cols[6]] : [cols[4], cols[5]];
    if (inIf === interfaceName && outIf === interfaceName) total = (total ?? 0) + Number(cols[1]);
  }
  return total;
}

export function readForwardedBytes(interfaceName: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('iptables', ['-w', '2', '-t', 'filter', '-nvxL', 'FORWARD'], { env: { ...process.env, LC_ALL: 'C' }, timeout: 3000 }, (error, stdout) => {
      resolve(error ? undefined : parseForwardedBytes(stdout, interfaceName));
    });
  });
}
