/**
 * The lab's matrix of configuration styles × NAT combinations, shared by the
 * lab tests (a representative part) and `npm run bench:paths` (all of it),
 * and the path the README promises for each pair of peers.
 */
import type { ConfigStyle, HostName, LabPath, NatKind, NatLab, NatLabOptions, PeerName } from './nat-lab';
import { STYLE_LABEL } from './nat-lab';
import { waitFor, type LabProcess } from './exec';

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

/**
 * The lab options for one cell. The server runs before the peers come up, so
 * the clients (started by `runCell` right after) meet WireGuard's own
 * interface-up attempts to listed peers, and the retry they armed, at their freshest.
 */
export function cellOptions(style: StyleCase, nat: NatCase): NatLabOptions {
  return { style: style.style, natA: nat.natA, natB: nat.natB, serverFirst: true, ...(nat.withHostC ? { withHostC: true } : {}) };
}

/** What each host's config is in a built lab, e.g. `a:S2 b:S4`. */
export function describeStyles(lab: NatLab): string {
  return lab.peers().map((h) => `${h.name}:${STYLE_LABEL[h.style]}`).join(' ');
}

/** What decides the path the README promises for one side of a pair. */
export interface PathSide {
  readonly style: ConfigStyle;
  /** The NAT router it sits behind (same router: same LAN). */
  readonly router: string;
  readonly nat: NatKind;
}

/**
 * The path the README promises for two peers: `relayed` when either runs no
 * client (it lists only the fang, so it accepts nobody else's handshake);
 * `lan` behind one NAT; `relayed` when a punch cannot pass (a symmetric NAT
 * facing a cone or symmetric one); `direct` otherwise.
 */
export function promisedPathFor(x: PathSide, y: PathSide): LabPath {
  if (x.style === 'no-client' || y.style === 'no-client') return 'relayed';
  if (x.router === y.router) return 'lan';
  const nats = [x.nat, y.nat].sort().join('/');
  return nats === 'symmetric/symmetric' || nats === 'cone/symmetric' ? 'relayed' : 'direct';
}

/** `promisedPathFor` two hosts of a built lab, with their routers' NATs as they are now. */
export function promisedPath(lab: NatLab, x: HostName, y: HostName): LabPath {
  const side = (name: HostName): PathSide => {
    const host = lab.host(name);
    return { style: host.style, router: host.router!, nat: lab.router(host.router!).nat };
  };
  return promisedPathFor(side(x), side(y));
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

/** What one pair did in one run of a cell; times count from every client running (`clientsUpMs` after they were spawned). */
export interface PairResult {
  readonly pair: string;
  readonly promised: LabPath;
  /** ms to the first ping reply over any path; null: none within the limit. */
  readonly firstReplyMs: number | null;
  /** ms until both sides show the promised direct or LAN path; null for relayed promises or never. */
  readonly connectMs: number | null;
  /**
   * ms from the clients being spawned until the last of them logged
   * `client-started`: Node.js starting up, 0.15 s on a quiet machine, seconds
   * on a loaded one. Add it for times from the spawn.
   */
  readonly clientsUpMs: number;
  /** The path each side shows once settled (`settleMs` after every client ran): `x>y` and `y>x`. */
  readonly settled: { readonly there: LabPath; readonly back: LabPath };
  /** Replies to 5 pings sent once settled. */
  readonly settledReplies: number;
}

/**
 * One run of a cell on a lab just built: starts `snakebite server` (unless it
 * runs already) and a client daemon on every peer that runs one, all at once,
 * and once every client runs (has logged `client-started`), for every pair at
 * the same time: the first ping reply, the moment the promised direct or LAN
 * path is up on both sides, and the path and a few pings once settled.
 */
export async function runCell(lab: NatLab, options: { limitMs: number; settleMs: number; clientArgs?: readonly string[] }): Promise<PairResult[]> {
  await lab.startServer();
  const spawned = Date.now();
  const clients = lab.clientPeers().map((host) => lab.startSnakebite(host.name, lab.clientArgs(host.name, options.clientArgs ?? [])));
  const up = await clientsRunning(clients, spawned);
  return Promise.all(
    pairsOf(lab).map(async ([x, y]): Promise<PairResult> => {
      const promised = promisedPath(lab, x, y);
      const connecting = promised === 'relayed' ? Promise.resolve(null) : bothShow(lab, x, y, promised, up, options.limitMs);
      const [firstReplyMs, connectMs] = await Promise.all([lab.firstReply(x, y, up, options.limitMs), connecting]);
      await new Promise((r) => setTimeout(r, Math.max(0, up + options.settleMs - Date.now())));
      const [there, back] = await Promise.all([lab.pathOf(x, y), lab.pathOf(y, x)]);
      const ping = await lab.ping(x, lab.host(y).overlayAddress, 5, { intervalS: 0.1 });
      return { pair: `${x}-${y}`, promised, firstReplyMs, connectMs, clientsUpMs: up - spawned, settled: { there: there.path, back: back.path }, settledReplies: ping.received };
    }),
  );
}

/**
 * Resolves, once every one of `clients` has logged `client-started`, with the
 * latest such moment (ms since the epoch, at least `spawned`).
 */
export function clientsRunning(clients: readonly LabProcess[], spawned: number): Promise<number> {
  const startedAt = (proc: LabProcess): number | undefined => {
    const line = proc.output.all().find((l) => /client-started/.test(l));
    const at = line ? Date.parse(line.split(' ')[0]!) : NaN;
    return Number.isNaN(at) ? undefined : at;
  };
  return waitFor('every client to start', async () => {
    const times = clients.map(startedAt);
    if (clients.some((c) => c.child.exitCode !== null)) throw new Error(`a client exited: ${clients.map((c) => c.output.text()).join('\n')}`);
    return times.every((t) => t !== undefined) ? Math.max(spawned, ...(times as number[])) : undefined;
  }, { timeoutMs: 30_000, intervalMs: 20 });
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
