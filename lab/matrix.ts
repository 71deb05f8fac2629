/**
 * The lab's matrix of configuration styles × NAT combinations, shared by the
 * lab tests (a representative part) and `npm run bench:paths` (all of it),
 * and the path the README promises for each pair of peers.
 */
import type { ConfigStyle, HostName, LabPath, NatKind, NatLab, NatLabOptions, PeerName } from './nat-lab';
import { STYLE_LABEL } from './nat-lab';

/** A configuration style for the whole network, or a mix of them, by name. */
export interface StyleCase {
  readonly name: string;
  readonly style: ConfigStyle | Partial<Record<PeerName, ConfigStyle>>;
}

/** A NAT combination: A's and B's NATs, and whether C sits on A's LAN behind A's NAT. */
export interface NatCase {
  readonly name: string;
  readonly natA: NatKind;
  readonly natB: NatKind;
  readonly withHostC?: boolean;
}

export const STYLE_CASES: readonly StyleCase[] = [
  { name: 'S1', style: 'unlisted' },
  { name: 'S2', style: 'listed' },
  { name: 'S3', style: 'fang-only' },
  // A phone (B, or C on A's LAN) runs no client and lists only the fang.
  { name: 'S4+S1', style: { b: 'no-client', c: 'no-client' } },
  { name: 'S4+S2', style: { a: 'listed', b: 'no-client', c: 'no-client' } },
  // One network, every kind of config: A as the README, B as the seed, C (with same-lan) a phone.
  { name: 'mix', style: { a: 'unlisted', b: 'listed', c: 'no-client' } },
  { name: 'mix-S3', style: { a: 'fang-only', b: 'listed', c: 'unlisted' } },
];

export const NAT_CASES: readonly NatCase[] = [
  { name: 'cone-cone', natA: 'cone', natB: 'cone' },
  { name: 'cone-symmetric', natA: 'cone', natB: 'symmetric' },
  { name: 'symmetric-symmetric', natA: 'symmetric', natB: 'symmetric' },
  { name: 'forwarded-symmetric', natA: 'forwarded', natB: 'symmetric' },
  { name: 'forwarded-cone', natA: 'forwarded', natB: 'cone' },
  // A and C behind one cone NAT (no hairpin), B behind another.
  { name: 'same-lan', natA: 'cone', natB: 'cone', withHostC: true },
];

export function styleCase(name: string): StyleCase {
  const found = STYLE_CASES.find((s) => s.name === name);
  if (!found) throw new Error(`no style case ${name}; have ${STYLE_CASES.map((s) => s.name).join(', ')}`);
  return found;
}

export function natCase(name: string): NatCase {
  const found = NAT_CASES.find((n) => n.name === name);
  if (!found) throw new Error(`no NAT case ${name}; have ${NAT_CASES.map((n) => n.name).join(', ')}`);
  return found;
}

/** The lab options for one cell. */
export function cellOptions(style: StyleCase, nat: NatCase): NatLabOptions {
  return { style: style.style, natA: nat.natA, natB: nat.natB, ...(nat.withHostC ? { withHostC: true } : {}) };
}

/** What each host's config is in a built lab, e.g. `a:S2 b:S4`. */
export function describeStyles(lab: NatLab): string {
  return lab.peers().map((h) => `${h.name}:${STYLE_LABEL[h.style]}`).join(' ');
}

/**
 * The path the README promises for two peers: `lan` behind one NAT (unless
 * one of them runs no client); `relayed` when either runs no client (it lists
 * only the fang, so it accepts nobody else's handshake), or when a punch
 * cannot pass (a symmetric NAT facing anything but a forwarded port);
 * `direct` otherwise.
 */
export function promisedPath(lab: NatLab, x: HostName, y: HostName): LabPath {
  const [hx, hy] = [lab.host(x), lab.host(y)];
  if (hx.style === 'no-client' || hy.style === 'no-client') return 'relayed';
  if (hx.router === hy.router) return 'lan';
  const nats = [lab.router(hx.router!).nat, lab.router(hy.router!).nat].sort().join('/');
  return nats === 'symmetric/symmetric' || nats === 'cone/symmetric' ? 'relayed' : 'direct';
}

/** Every unordered pair of the lab's peers, the one that runs a client first. */
export function pairsOf(lab: NatLab): [HostName, HostName][] {
  const peers = lab.peers();
  const pairs: [HostName, HostName][] = [];
  for (const [i, x] of peers.entries()) {
    for (const y of peers.slice(i + 1)) pairs.push(x.style === 'no-client' ? [y.name, x.name] : [x.name, y.name]);
  }
  return pairs;
}

/** What one pair did in one run of a cell. */
export interface PairResult {
  readonly pair: string;
  readonly promised: LabPath;
  /** ms from the clients starting to the first ping reply over any path; null: none within the limit. */
  readonly firstReplyMs: number | null;
  /** ms from the clients starting until both sides show the promised direct or LAN path; null for relayed promises or never. */
  readonly connectMs: number | null;
  /** The path each side shows once settled (`settleMs` after the clients started): `x>y` and `y>x`. */
  readonly settled: { readonly there: LabPath; readonly back: LabPath };
  /** Replies to 5 pings sent once settled. */
  readonly settledReplies: number;
}

/**
 * One run of a cell on a built lab: starts `snakebite server` and a client
 * daemon on every peer that runs one, all at once, then for every pair at the
 * same time: the first ping reply, the moment the promised direct or LAN path
 * is up on both sides, and the path and a few pings once settled.
 */
export async function runCell(lab: NatLab, options: { limitMs: number; settleMs: number; clientArgs?: readonly string[] }): Promise<PairResult[]> {
  await lab.startServer();
  const started = Date.now();
  for (const host of lab.clientPeers()) lab.startSnakebite(host.name, lab.clientArgs(host.name, options.clientArgs ?? []));
  return Promise.all(
    pairsOf(lab).map(async ([x, y]): Promise<PairResult> => {
      const promised = promisedPath(lab, x, y);
      const connecting = promised === 'relayed' ? Promise.resolve(null) : bothShow(lab, x, y, promised, started, options.limitMs);
      const [firstReplyMs, connectMs] = await Promise.all([lab.firstReply(x, y, started, options.limitMs), connecting]);
      await new Promise((r) => setTimeout(r, Math.max(0, started + options.settleMs - Date.now())));
      const [there, back] = await Promise.all([lab.pathOf(x, y), lab.pathOf(y, x)]);
      const ping = await lab.ping(x, lab.host(y).overlayAddress, 5, { intervalS: 0.1 });
      return { pair: `${x}-${y}`, promised, firstReplyMs, connectMs, settled: { there: there.path, back: back.path }, settledReplies: ping.received };
    }),
  );
}

/** ms from `started` until both x and y show `path` to each other, or null within `limitMs`. */
async function bothShow(lab: NatLab, x: HostName, y: HostName, path: LabPath, started: number, limitMs: number): Promise<number | null> {
  for (let i = 0; i < 10_000 && Date.now() - started < limitMs; i++) {
    const [there, back] = await Promise.all([lab.pathOf(x, y), lab.pathOf(y, x)]);
    if (there.path === path && back.path === path) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}
