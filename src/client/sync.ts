import { formatEndpoint, formatPrefix, type Endpoint, type IpAddress, type IpPrefix } from '../ip/address';
import { describeError, SnakebiteError } from '../errors';
import { serializePeerReport } from '../peer-list/serialize';
import { buildReport } from './report';
import type { Logger } from '../log/logger';
import { parsePeerList } from '../peer-list/parse';
import type { PeerList, PeerReport, PunchRequest, RejectedEntry } from '../peer-list/peer-list';
import { findFangPeer } from '../plan/fang-peer';
import { planPeerChanges, type Activity, type PeerDecision, type Plan, type PlanObservations } from '../plan/plan';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardDriver } from '../wireguard/driver';
import { shortKey, type WireGuardKey } from '../wireguard/key';
import { applyPlan } from './apply';
import type { HandshakeTrigger } from './punch';

/** What to ask the fang for: everything, or what changed after `since`, possibly waiting for it. */
export interface PeerListRequest {
  readonly since?: number;
  readonly waitSeconds?: number;
  readonly signal?: AbortSignal;
}

/** The edges a sync needs, injected so tests can run it against fakes. */
export interface SyncDeps {
  readonly driver: WireGuardDriver;
  /** Fetches the undecoded peer list from the fang. */
  readonly fetchPeerList: (request?: PeerListRequest) => Promise<unknown>;
  /** Sends one datagram through the tunnel to each overlay address (starts handshakes, probes paths). */
  readonly triggerHandshakes: HandshakeTrigger;
  readonly logger: Logger;
  readonly clock: () => Date;
  /** The interface's own overlay addresses; none when absent. */
  readonly ownAddresses?: () => IpAddress[];
  /** The networks this machine is on besides the WireGuard interface; none when absent. */
  readonly localNetworks?: () => IpPrefix[];
  /** This machine's LAN candidate endpoints for a ListenPort; none when absent. */
  readonly localCandidates?: (listenPort: number) => Endpoint[];
  /** Sends a report to the fang; reports are skipped when absent. */
  readonly sendReport?: (report: PeerReport) => Promise<void>;
}

export interface SyncOptions {
  readonly serverAddress: IpAddress;
  readonly keepaliveSeconds: number;
  readonly flowingWithinSeconds: number;
  /** Plan and log, change nothing. */
  readonly dryRun: boolean;
  /** Relay a peer through the fang after this many seconds without a direct handshake; undefined never relays. */
  readonly relayAfterSeconds?: number;
}

export interface SyncResult {
  readonly device: DeviceState;
  readonly plan: Plan;
  readonly rejected: readonly RejectedEntry[];
}

/** What a daemon adds to a reconcile. */
export interface ReconcileHooks {
  /** Called with the plan just before it is applied (not in a dry run), e.g. to save what a change will overwrite. */
  readonly beforeApply?: (plan: Plan) => void;
  /**
   * The reason code last logged for each listed peer left unmanaged (refused,
   * or the user's to keep): a reason is logged when it first appears, not
   * every round. Undefined logs every round (`--once` has one round).
   */
  readonly explained?: Map<WireGuardKey, { code: string; reason: string }>;
}

/** The reason code when a decision leaves a listed peer unmanaged (refused, or the user's own), else undefined. */
export function unmanagedCode(decision: PeerDecision): string | undefined {
  if (decision.kind === 'refuse') return decision.why.code;
  if (decision.kind === 'keep' && (decision.why.code === 'routes-outside' || decision.why.code === 'routes-nothing')) return decision.why.code;
  return undefined;
}

/** What the caller has observed of the peers beyond the interface's own state. */
export type Observations = PlanObservations;

/** Decodes and validates a reply, logging each dropped entry. Throws on a bad envelope. */
export function acceptReply(body: unknown, logger: Logger): { list: PeerList; rejected: readonly RejectedEntry[] } {
  const parsed = parsePeerList(body);
  for (const entry of parsed.rejected) {
    logger.warn('peer-refused', { peer: entry.publicKey, path: entry.path, reason: entry.reason });
  }
  return parsed;
}

/**
 * Reads the interface, checks the list comes from its fang, plans and applies
 * in one batch, punches, and logs each change. Throws (changing nothing) when
 * the interface or the fang is not usable.
 */
export async function reconcile(
  deps: SyncDeps,
  options: SyncOptions,
  list: PeerList,
  observations: Observations = {},
  /** The interface as just read, when the caller has it; read here otherwise. */
  readAlready?: DeviceState,
  hooks: ReconcileHooks = {},
): Promise<SyncResult> {
  const { beforeApply, explained } = hooks;
  const { driver, logger } = deps;
  let device = readAlready ?? (await driver.readDevice());
  const fangPeer = findFangPeer(device, options.serverAddress);
  if (list.fang.publicKey !== fangPeer.publicKey) {
    throw new SnakebiteError(
      'SB_FANG_MISMATCH',
      `the peer list comes from fang ${shortKey(list.fang.publicKey)}, but ${driver.interfaceName} routes the server address through peer ${shortKey(fangPeer.publicKey)}`,
      "point --server at the fang's own overlay address, or fix the fang peer's public key",
    );
  }
  if (device.publicKey !== null && list.you.publicKey !== device.publicKey) {
    logger.warn('fang-misidentifies-us', {
      you: list.you.publicKey,
      peer: device.publicKey,
      reason: "the fang maps this interface's source address to another peer; check AllowedIPs on the fang",
    });
  }

  const policy = {
    fangPublicKey: fangPeer.publicKey,
    serverAddress: options.serverAddress,
    keepaliveSeconds: options.keepaliveSeconds,
    flowingWithinSeconds: options.flowingWithinSeconds,
    localNetworks: deps.localNetworks?.() ?? [],
    ownAddresses: deps.ownAddresses?.() ?? [],
    ...(options.relayAfterSeconds !== undefined ? { relayAfterSeconds: options.relayAfterSeconds } : {}),
  };
  let plan = planPeerChanges(device, list, policy, deps.clock(), observations);
  // Re-creating a peer is right only while it has never had a handshake: the other side may have
  // completed one since the read (WireGuard answers an initiation through an entry with no endpoint).
  // Plan again on a fresh read, so a session a moment old is never thrown away.
  if (!options.dryRun && plan.changes.some((c) => c.kind === 'rebuild-peer')) {
    const fresh = await driver.readDevice();
    const stale = plan.changes.some((c) => c.kind === 'rebuild-peer' && fresh.peers.some((p) => p.publicKey === c.publicKey && (p.latestHandshake > 0 || p.rxBytes > 0)));
    if (stale) {
      device = fresh;
      plan = planPeerChanges(fresh, list, policy, deps.clock(), observations);
    }
  }
  for (const skip of plan.skipped) {
    const code = unmanagedCode(skip.decision);
    // A daemon says why it leaves a peer alone once, when the reason first appears, not every round.
    const fresh = explained === undefined || (code !== undefined && explained.get(skip.publicKey)?.code !== code);
    if (code !== undefined && explained) explained.set(skip.publicKey, { code, reason: skip.reason });
    if (skip.severity === 'refused' && fresh) logger.warn('peer-refused', { peer: skip.publicKey, reason: skip.reason });
    else if (code !== undefined && fresh) logger.info('peer-unmanaged', { peer: skip.publicKey, reason: skip.reason });
    else logger.debug('peer-kept', { peer: skip.publicKey, reason: skip.reason });
  }
  if (explained) {
    // A peer managed again (or no longer listed) gets its line again if the reason comes back.
    const now = new Set(plan.skipped.filter((s) => unmanagedCode(s.decision) !== undefined).map((s) => s.publicKey));
    for (const key of [...explained.keys()]) if (!now.has(key)) explained.delete(key);
  }

  if (!options.dryRun) {
    beforeApply?.(plan);
    await applyPlan(driver, plan, deps.triggerHandshakes);
  }
  const EVENTS = { 'add-peer': 'peer-added', 'set-endpoint': 'endpoint-set', 'rebuild-peer': 'peer-rebuilt', relay: 'relay-started', 'direct-again': 'relay-ended', 'remove-peer': 'peer-removed', 'fang-routes': 'fang-routes-set' } as const;
  for (const change of plan.changes) {
    logger.info(EVENTS[change.kind], {
      peer: change.publicKey,
      endpoint: change.endpoint && formatEndpoint(change.endpoint),
      previous: change.previousEndpoint ? formatEndpoint(change.previousEndpoint) : undefined,
      allowedIps: change.allowedIps?.length ? change.allowedIps.map(formatPrefix).join(',') : undefined,
      keepalive: change.persistentKeepalive,
      reason: change.reason,
      dryRun: options.dryRun || undefined,
    });
    for (const refused of change.refusedAllowedIps) {
      logger.warn('allowed-ip-refused', { peer: change.publicKey, prefix: refused.prefix, reason: refused.reason });
    }
  }
  logger.debug('sync-done', { interface: driver.interfaceName, listed: list.peers.length, changes: plan.changes.length });
  return { device, plan, rejected: [] };
}

/**
 * One round, as `--once` runs it: fetch the full list, then reconcile.
 * Throws (changing nothing) when the interface, the fang or the reply as a
 * whole is unusable; a bad entry only drops that entry.
 */
export async function syncOnce(deps: SyncDeps, options: SyncOptions, activity?: Activity): Promise<SyncResult> {
  // Read first so a missing interface or wg fails before any request leaves.
  const device = await deps.driver.readDevice();
  const fangPeer = findFangPeer(device, options.serverAddress);
  await sendReportQuietly(deps, device, fangPeer.publicKey);
  const { list, rejected } = acceptReply(await deps.fetchPeerList(), deps.logger);
  // --once remembers nothing it added: it removes nothing, and a peer routing nothing is the user's.
  const result = await reconcile(deps, options, list, { addedByUs: new Set(), ...(activity ? { activity } : {}) }, device);
  return { ...result, rejected };
}

/**
 * Tells the fang our ListenPort, LAN candidates and the endpoints we see peers
 * at; returns what was sent, or undefined when nothing was (no way to report,
 * or it failed: reports only help, so a failure is logged and passed over).
 */
export async function sendReportQuietly(
  deps: SyncDeps,
  device: DeviceState,
  fangKey: WireGuardKey,
  unless?: string,
  punchRequests: readonly PunchRequest[] = [],
): Promise<string | undefined> {
  if (!deps.sendReport) return undefined;
  const report = buildReport(device, fangKey, deps.localCandidates?.(device.listenPort) ?? [], Math.floor(deps.clock().getTime() / 1000), punchRequests);
  const text = JSON.stringify(serializePeerReport(report));
  if (text === unless) return text;
  try {
    await deps.sendReport(report);
    deps.logger.debug('report-sent', { candidates: report.candidates.length, seen: report.seen.length });
    return text;
  } catch (error) {
    deps.logger.debug('report-failed', { error: describeError(error) });
    return undefined;
  }
}
