/**
 * Would the firewall let a packet through? A small, pure walk of one
 * `iptables-save` filter table: the rules of a chain in order, following
 * jumps to user chains, until ACCEPT, DROP or REJECT, else the chain's policy.
 * It understands the matches that decide the cases doctor asks about (`-i`,
 * `-o`, `-p`, `--dport`, `-s`, `-d`, conntrack/state); a rule with a match it
 * does not understand is taken as not matching, and the verdict says so.
 */
import { parsePrefix, prefixContainsIp, type IpAddress } from '../ip/address';

export interface Packet {
  readonly inInterface?: string;
  readonly outInterface?: string;
  readonly protocol: 'udp' | 'tcp' | 'icmp';
  readonly destinationPort?: number;
  readonly source?: IpAddress;
  readonly destination?: IpAddress;
  /** NEW for a first packet, ESTABLISHED for a reply. */
  readonly state: 'NEW' | 'ESTABLISHED';
}

export type FirewallVerdict =
  | { readonly kind: 'accept'; readonly rule?: string; readonly unsure: readonly string[] }
  | { readonly kind: 'drop'; readonly rule: string; readonly unsure: readonly string[] }
  | { readonly kind: 'no-rules' };

interface Rule {
  readonly text: string;
  readonly args: readonly string[];
}

interface Table {
  readonly policies: Map<string, string>;
  readonly rules: Map<string, Rule[]>;
}

/** The filter table of `iptables-save` (or `ip6tables-save`) output; undefined when there is none. */
export function parseFilterTable(text: string): Table | undefined {
  let inFilter = false;
  let found = false;
  const policies = new Map<string, string>();
  const rules = new Map<string, Rule[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inFilter = line === '*filter';
      found ||= inFilter;
      continue;
    }
    if (!inFilter) continue;
    if (line === 'COMMIT') {
      inFilter = false;
      continue;
    }
    const chain = /^:(\S+)\s+(\S+)/.exec(line);
    if (chain) {
      policies.set(chain[1]!, chain[2]!);
      rules.set(chain[1]!, rules.get(chain[1]!) ?? []);
      continue;
    }
    if (line.startsWith('-A ')) {
      const args = line.match(/"[^"]*"|\S+/g)?.map((a) => a.replace(/^"|"$/g, '')) ?? [];
      const name = args[1]!;
      rules.set(name, [...(rules.get(name) ?? []), { text: line, args: args.slice(2) }]);
    }
  }
  return found ? { policies, rules } : undefined;
}

type Match = 'yes' | 'no' | 'unknown';

/** Whether one rule's matches hold for the packet; `unknown` when it uses one we do not model. */
function matches(args: readonly string[], packet: Packet): { match: Match; target?: string } {
  let target: string | undefined;
  let result: Match = 'yes';
  const fail = () => (result = 'no');
  for (let i = 0; i < args.length; i++) {
    let negate = false;
    let arg = args[i]!;
    if (arg === '!') {
      negate = true;
      arg = args[++i]!;
    }
    const value = args[i + 1];
    const check = (holds: boolean) => {
      if (holds === negate) fail();
      i++;
    };
    switch (arg) {
      case '-j':
      case '-g':
        target = value;
        i++;
        break;
      case '-i':
        check(packet.inInterface !== undefined && wildcard(value!, packet.inInterface));
        break;
      case '-o':
        check(packet.outInterface !== undefined && wildcard(value!, packet.outInterface));
        break;
      case '-p':
        check(value === packet.protocol || value === 'all');
        break;
      case '--dport':
      case '--dports':
      case '--destination-port':
        check(packet.destinationPort !== undefined && portIn(value!, packet.destinationPort));
        break;
      case '-s':
        check(packet.source !== undefined && inPrefix(value!, packet.source));
        break;
      case '-d':
        check(packet.destination !== undefined && inPrefix(value!, packet.destination));
        break;
      case '--ctstate':
      case '--state':
        check(value!.split(',').includes(packet.state));
        break;
      case '-m':
        i++; // the module's own options follow and are read as above
        break;
      case '--reject-with':
      case '--log-prefix':
      case '--log-level':
      case '--comment':
        i++;
        break;
      default:
        if (arg.startsWith('-')) result = result === 'no' ? 'no' : 'unknown';
    }
  }
  return { match: result, ...(target ? { target } : {}) };
}

function wildcard(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

function portIn(spec: string, port: number): boolean {
  return spec.split(',').some((part) => {
    const [low, high] = part.split(':').map(Number);
    return high === undefined ? low === port : port >= (low ?? 0) && port <= high;
  });
}

function inPrefix(text: string, address: IpAddress): boolean {
  const prefix = parsePrefix(text.includes('/') ? text : `${text}/${address.family === 4 ? 32 : 128}`);
  return prefix !== undefined && prefix.address.family === address.family && prefixContainsIp(prefix, address);
}

/** Walks `chain` (INPUT or FORWARD) of the filter table for `packet`. */
export function firewallVerdict(table: Table | undefined, chain: string, packet: Packet): FirewallVerdict {
  if (!table || !table.rules.has(chain)) return { kind: 'no-rules' };
  const unsure: string[] = [];
  const walk = (name: string, depth: number): { kind: 'accept' | 'drop'; rule: string } | undefined => {
    if (depth > 16) return undefined;
    for (const rule of table.rules.get(name) ?? []) {
      const { match, target } = matches(rule.args, packet);
      if (match === 'no' || !target) continue;
      if (match === 'unknown') {
        unsure.push(rule.text);
        continue;
      }
      if (target === 'ACCEPT') return { kind: 'accept', rule: rule.text };
      if (target === 'DROP' || target === 'REJECT') return { kind: 'drop', rule: rule.text };
      if (target === 'RETURN') return undefined;
      if (table.rules.has(target)) {
        const inner = walk(target, depth + 1);
        if (inner) return inner;
      }
      // LOG, MARK and the like go on to the next rule.
    }
    return undefined;
  };
  const decided = walk(chain, 0);
  if (decided) return decided.kind === 'accept' ? { kind: 'accept', rule: decided.rule, unsure } : { kind: 'drop', rule: decided.rule, unsure };
  const policy = table.policies.get(chain) ?? 'ACCEPT';
  return policy === 'ACCEPT' ? { kind: 'accept', unsure } : { kind: 'drop', rule: `policy ${chain} ${policy}`, unsure };
}
