import { execFile } from 'node:child_process';
import { formatPrefix, type IpPrefix } from '../ip/address';
import type { Logger } from '../log/logger';
import type { DeviceState } from '../wireguard/device-state';
import { mayLink, type Policy } from './policy';

/**
 * Relaying is the fang's kernel forwarding packets from one peer to another
 * on the WireGuard interface; the server cannot refuse a packet itself. Under
 * a policy it keeps a chain in the filter table's FORWARD path, entered for
 * traffic in and out of the WireGuard interface, that returns (lets the rest
 * of FORWARD decide) only for pairs of peers the policy links, and drops the
 * rest. The chain is replaced atomically with `iptables-restore --noflush`.
 */
export interface RelayRules {
  /** The chain's name: SNAKEBITE-<interface>. */
  readonly chain: string;
  /** iptables-restore input, per family; undefined when the family has no peers. */
  readonly ipv4: string;
  readonly ipv6: string;
  /** Rules written, both families. */
  readonly count: number;
}

/** More rules than this are not written: the chain is linear, and every relayed packet walks it. */
export const MAX_RELAY_RULES = 20_000;

/** The chain for `policy` over the peers of `device`: pure. */
export function relayRules(policy: Policy, device: DeviceState): RelayRules {
  const chain = `SNAKEBITE-${device.interfaceName}`.slice(0, 28);
  const lines: Record<4 | 6, string[]> = { 4: [], 6: [] };
  const peers = device.peers;
  let count = 0;
  for (let i = 0; i < peers.length; i++) {
    for (let j = i + 1; j < peers.length; j++) {
      const a = peers[i]!;
      const b = peers[j]!;
      if (!mayLink(policy, a.publicKey, b.publicKey)) continue;
      // Past the limit the chain is not written at all: stop building it.
      if (count > MAX_RELAY_RULES) return { chain, ipv4: '', ipv6: '', count };
      for (const pa of a.allowedIps) {
        for (const pb of b.allowedIps) {
          if (pa.address.family !== pb.address.family) continue;
          const family = pa.address.family;
          lines[family].push(rule(chain, pa, pb), rule(chain, pb, pa));
          count += 2;
        }
      }
    }
  }
  const script = (family: 4 | 6) => ['*filter', `:${chain} - [0:0]`, ...lines[family], `-A ${chain} -j DROP`, 'COMMIT', ''].join('\n');
  return { chain, ipv4: script(4), ipv6: script(6), count };
}

function rule(chain: string, from: IpPrefix, to: IpPrefix): string {
  return `-A ${chain} -s ${formatPrefix(from)} -d ${formatPrefix(to)} -j RETURN`;
}

/** Runs a command with an argument array and optional stdin; rejects with argv and stderr. */
function run(file: string, args: readonly string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { env: { ...process.env, LC_ALL: 'C' }, timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
    // A command that exits without reading its input must fail this run, not crash the server with EPIPE.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * The edge: writes the chain for IPv4 and IPv6 and hooks it into FORWARD
 * (`-i IF -o IF`), only when the rules changed. `remove` undoes both.
 */
export class RelayFirewall {
  private applied: { ipv4: string; ipv6: string } | undefined;
  private hooked = new Set<string>();
  private tooLarge = false;

  constructor(
    private readonly interfaceName: string,
    private readonly logger: Logger,
  ) {}

  async apply(rules: RelayRules): Promise<void> {
    if (rules.count > MAX_RELAY_RULES) {
      // Said once, and made true: a stale chain would limit relaying by an older policy.
      if (!this.tooLarge) this.logger.error('relay-firewall-too-large', { interface: this.interfaceName, rules: rules.count, limit: MAX_RELAY_RULES, reason: 'relaying is not limited by the policy', hint: 'use wider allowed IPs or fewer allow lines; or write the FORWARD rules yourself (docs/policy.md)' });
      this.tooLarge = true;
      if (this.applied) await this.remove(rules.chain);
      return;
    }
    this.tooLarge = false;
    if (this.applied && this.applied.ipv4 === rules.ipv4 && this.applied.ipv6 === rules.ipv6) return;
    for (const [tool, script] of [['iptables', rules.ipv4], ['ip6tables', rules.ipv6]] as const) {
      await run(`${tool}-restore`, ['--noflush'], script);
      const hook = ['FORWARD', '-i', this.interfaceName, '-o', this.interfaceName, '-j', rules.chain];
      if (!this.hooked.has(tool)) {
        await run(tool, ['-C', ...hook]).catch(() => run(tool, ['-I', ...hook.slice(0, 1), '1', ...hook.slice(1)]));
        this.hooked.add(tool);
      }
    }
    this.applied = { ipv4: rules.ipv4, ipv6: rules.ipv6 };
    this.logger.info('relay-firewall-applied', { interface: this.interfaceName, chain: rules.chain, rules: rules.count });
  }

  async remove(chain: string): Promise<void> {
    for (const tool of ['iptables', 'ip6tables']) {
      await run(tool, ['-D', 'FORWARD', '-i', this.interfaceName, '-o', this.interfaceName, '-j', chain]).catch(() => {});
      await run(tool, ['-F', chain]).catch(() => {});
      await run(tool, ['-X', chain]).catch(() => {});
    }
    this.hooked.clear();
    this.applied = undefined;
  }
}

/** What the server needs of a firewall: tests pass a fake that records the rules. */
export interface RelayFirewallPort {
  apply(rules: RelayRules): Promise<void>;
  remove(chain: string): Promise<void>;
}

/**
 * Keeps the chain in step with the policy and the interface's peers: now,
 * every `everyMs`, and when `sync` is called (a new policy). Failures are
 * logged (the peer lists stay filtered; only relaying is then unlimited).
 */
export function keepRelayFirewall(
  firewall: RelayFirewallPort,
  policy: () => Policy | undefined,
  readDevice: () => Promise<DeviceState>,
  logger: Logger,
  everyMs = 2000,
): { sync(): Promise<void>; stop(): Promise<void> } {
  let chain: string | undefined;
  let failing = false;
  let running = Promise.resolve();
  const once = async () => {
    const current = policy();
    if (!current) return;
    try {
      const rules = relayRules(current, await readDevice());
      chain = rules.chain;
      await firewall.apply(rules);
      failing = false;
    } catch (error) {
      if (!failing) logger.error('relay-firewall-failed', { error: (error as Error).message, reason: 'relaying through the fang is not limited by the policy', hint: 'run the server as root with iptables and ip6tables installed, or write the FORWARD rules yourself (docs/policy.md)' });
      failing = true;
    }
  };
  const sync = () => (running = running.then(once));
  // A tick while a pass still runs is skipped, so slow passes never queue up.
  let busy = false;
  const tick = () => {
    if (busy) return;
    busy = true;
    void sync().finally(() => (busy = false));
  };
  const timer = setInterval(tick, everyMs);
  timer.unref();
  void sync();
  return {
    sync,
    stop: async () => {
      clearInterval(timer);
      await running;
      if (chain) await firewall.remove(chain).catch(() => {});
    },
  };
}
