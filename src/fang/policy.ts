import { SnakebiteError } from '../errors';
import { isWireGuardKey, type WireGuardKey } from '../wireguard/key';

/**
 * Who may learn whose endpoint, from the server's `--policy` file. Every peer
 * is in the group `all`; a peer the file names is also in the groups its
 * line lists. `allow X Y` lets every peer of X and every peer of Y learn each
 * other's endpoints (and be relayed to each other); nothing else is allowed.
 * No policy at all (no `--policy`) means every peer learns every other.
 */
export interface Policy {
  /** Friendly name by key; only named peers are here. */
  readonly names: ReadonlyMap<WireGuardKey, string>;
  /** Groups of each named peer, `all` included. */
  readonly groups: ReadonlyMap<WireGuardKey, readonly string[]>;
  /** Allowed group pairs, both orders, as `a\u0000b`. */
  readonly links: ReadonlySet<string>;
  /** The same as a map: the groups each group is linked to. */
  readonly linked: ReadonlyMap<string, ReadonlySet<string>>;
  /** The file's lines that mattered, for the log at load: counts only. */
  readonly summary: { readonly peers: number; readonly groups: number; readonly allows: number };
}

/** The group every peer is in. */
export const ALL_GROUP = 'all';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
/** Longest file read, in bytes; a policy is a few lines per peer. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** A policy line that is wrong, with its number (1-based) and why. */
export class PolicyError extends SnakebiteError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super('SB_POLICY_INVALID', `${file}:${line}: ${reason}`, 'fix that line; the server keeps the policy it had (or does not start)');
  }
}

/**
 * Parses a policy file. Line format (`#` starts a comment; blank lines ignored):
 *
 *     peer NAME PUBLIC-KEY [GROUP ...]
 *     allow GROUP GROUP
 *
 * Throws PolicyError naming the first bad line and the reason.
 */
export function parsePolicy(text: string, file = 'policy'): Policy {
  const names = new Map<WireGuardKey, string>();
  const keysByName = new Map<string, WireGuardKey>();
  const groups = new Map<WireGuardKey, string[]>();
  const declared = new Set<string>([ALL_GROUP]);
  const allows: { a: string; b: string; line: number }[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const number = index + 1;
    const fail = (reason: string) => new PolicyError(file, number, reason);
    const words = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    const [verb, ...args] = words;
    if (verb === 'peer') {
      const [name, key, ...peerGroups] = args;
      if (!name || !key) throw fail('expected "peer NAME PUBLIC-KEY [GROUP ...]"');
      if (!NAME.test(name)) throw fail(`"${name.slice(0, 40)}" is not a name: 1 to 32 letters, digits, ".", "_" or "-", starting with a letter or digit`);
      if (!isWireGuardKey(key)) throw fail(`"${String(key).slice(0, 60)}" is not a WireGuard public key (44 characters of base64 ending in "=")`);
      if (keysByName.has(name)) throw fail(`the name "${name}" is already used by another peer`);
      if (names.has(key)) throw fail(`this key is already named "${names.get(key)}"`);
      for (const group of peerGroups) {
        if (!NAME.test(group)) throw fail(`"${group.slice(0, 40)}" is not a group name: 1 to 32 letters, digits, ".", "_" or "-"`);
        declared.add(group);
      }
      names.set(key, name);
      keysByName.set(name, key);
      groups.set(key, [...new Set([ALL_GROUP, ...peerGroups])]);
    } else if (verb === 'allow') {
      if (args.length !== 2) throw fail('expected "allow GROUP GROUP" (the two groups may learn each other\'s endpoints)');
      allows.push({ a: args[0]!, b: args[1]!, line: number });
    } else {
      throw fail(`unknown word "${String(verb).slice(0, 40)}": a line is "peer NAME KEY [GROUP ...]", "allow GROUP GROUP", or a # comment`);
    }
  }
  const links = new Set<string>();
  const linked = new Map<string, Set<string>>();
  const link = (x: string, y: string) => {
    const set = linked.get(x);
    if (set) set.add(y);
    else linked.set(x, new Set([y]));
  };
  for (const { a, b, line } of allows) {
    for (const group of [a, b]) {
      if (!declared.has(group)) throw new PolicyError(file, line, `no peer is in the group "${group.slice(0, 40)}" (a typo?); groups come from "peer" lines, and "all" holds every peer`);
    }
    links.add(`${a}\u0000${b}`);
    links.add(`${b}\u0000${a}`);
    link(a, b);
    link(b, a);
  }
  return { names, groups, links, linked, summary: { peers: names.size, groups: declared.size, allows: allows.length } };
}

const ONLY_ALL = [ALL_GROUP];

/** Whether peers `a` and `b` may learn each other's endpoints and be relayed to each other. Symmetric. */
export function mayLink(policy: Policy | undefined, a: WireGuardKey, b: WireGuardKey): boolean {
  if (!policy) return true;
  const groupsA = policy.groups.get(a) ?? ONLY_ALL;
  const groupsB = policy.groups.get(b) ?? ONLY_ALL;
  for (const x of groupsA) for (const y of groupsB) if (policy.links.has(`${x}\u0000${y}`)) return true;
  return false;
}

/**
 * `mayLink(policy, asker, ·)` for one asker, with the asker's side worked out
 * once: building a list asks it for every peer.
 */
export function learnableBy(policy: Policy | undefined, asker: WireGuardKey): (key: WireGuardKey) => boolean {
  if (!policy) return () => true;
  const reachable = new Set<string>();
  for (const group of policy.groups.get(asker) ?? ONLY_ALL) for (const other of policy.linked.get(group) ?? []) reachable.add(other);
  if (reachable.has(ALL_GROUP)) return () => true;
  return (key) => (policy.groups.get(key) ?? ONLY_ALL).some((group) => reachable.has(group));
}

/** The friendly name of `key`, or undefined when the policy does not name it. */
export function nameOf(policy: Policy | undefined, key: WireGuardKey): string | undefined {
  return policy?.names.get(key);
}
