import { formatEndpoint, formatIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';
import { parsePeerList } from '../peer-list/parse';
import type { RejectedEntry } from '../peer-list/peer-list';
import { findFangPeer } from '../plan/fang-peer';
import { planPeerChanges, type Activity, type Plan } from '../plan/plan';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardDriver } from '../wireguard/driver';
import { shortKey } from '../wireguard/key';
import { applyPlan } from './apply';
import type { HandshakeTrigger } from './punch';

/** The edges a sync needs, injected so tests can run it against fakes. */
export interface SyncDeps {
  readonly driver: WireGuardDriver;
  /** Fetches the undecoded peer list from the fang. */
  readonly fetchPeerList: () => Promise<unknown>;
  readonly triggerHandshakes: HandshakeTrigger;
  readonly logger: Logger;
  readonly clock: () => Date;
}

export interface SyncOptions {
  readonly serverAddress: IpAddress;
  readonly keepaliveSeconds: number;
  readonly flowingWithinSeconds: number;
  /** Plan and log, change nothing. */
  readonly dryRun: boolean;
}

export interface SyncResult {
  readonly device: DeviceState;
  readonly plan: Plan;
  readonly rejected: readonly RejectedEntry[];
}

/**
 * One round: read the interface, fetch the peer list, plan, apply in one
 * batch, punch. Throws (changing nothing) when the interface, the fang or the
 * reply as a whole is unusable; a bad entry only drops that entry.
 */
export async function syncOnce(deps: SyncDeps, options: SyncOptions, activity?: Activity): Promise<SyncResult> {
  const { driver, logger } = deps;
  const device = await driver.readDevice();
  const fangPeer = findFangPeer(device, options.serverAddress);
  const { list, rejected } = parsePeerList(await deps.fetchPeerList());

  if (list.fang.publicKey !== fangPeer.publicKey) {
    throw new SnakebiteError(
      'SB_FANG_MISMATCH',
      `the peer list comes from fang ${shortKey(list.fang.publicKey)}, but ${driver.interfaceName} routes ${formatIp(options.serverAddress)} through peer ${shortKey(fangPeer.publicKey)}`,
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
  for (const entry of rejected) {
    logger.warn('peer-refused', { peer: entry.publicKey, path: entry.path, reason: entry.reason });
  }

  const plan = planPeerChanges(
    device,
    list,
    {
      fangPublicKey: fangPeer.publicKey,
      serverAddress: options.serverAddress,
      keepaliveSeconds: options.keepaliveSeconds,
      flowingWithinSeconds: options.flowingWithinSeconds,
    },
    deps.clock(),
    activity,
  );
  for (const skip of plan.skipped) {
    if (skip.severity === 'refused') logger.warn('peer-refused', { peer: skip.publicKey, reason: skip.reason });
    else logger.debug('peer-kept', { peer: skip.publicKey, reason: skip.reason });
  }

  if (!options.dryRun) await applyPlan(driver, plan, deps.triggerHandshakes);
  for (const change of plan.changes) {
    logger.info(change.kind === 'add-peer' ? 'peer-added' : 'endpoint-set', {
      peer: change.publicKey,
      endpoint: change.endpoint && formatEndpoint(change.endpoint),
      previous: change.previousEndpoint ? formatEndpoint(change.previousEndpoint) : undefined,
      allowedIps: change.allowedIps?.map((p) => `${formatIp(p.address)}/${p.length}`).join(','),
      keepalive: change.persistentKeepalive,
      reason: change.reason,
      dryRun: options.dryRun || undefined,
    });
    for (const refused of change.refusedAllowedIps) {
      logger.warn('allowed-ip-refused', { peer: change.publicKey, prefix: refused.prefix, reason: refused.reason });
    }
  }
  logger.debug('sync-done', { interface: driver.interfaceName, listed: list.peers.length, changes: plan.changes.length });
  return { device, plan, rejected };
}
