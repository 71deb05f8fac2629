import { endpointEquals, firstHost, formatEndpoint, type IpAddress } from '../ip/address';
import { describeError, SnakebiteError } from '../errors';
import { mergePeerList } from '../peer-list/merge';
import type { PeerList } from '../peer-list/peer-list';
import type { DeviceState, PeerChange } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { PeerTracker, type ChangedRecord } from './peer-tracker';
import type { Plan } from '../plan/plan';

export { ActivityTracker } from './peer-tracker';
import { probePeers } from './probe';
import { acceptReply, reconcile, sendReportQuietly, unmanagedCode, type SyncDeps, type SyncOptions, type SyncResult } from './sync';

export interface DaemonOptions extends SyncOptions {
  /** Time between refreshes when the fang does not push, in milliseconds. */
  readonly intervalMs: number;
  /** How long the fang may hold a request open waiting for a change (push), in seconds; 0 polls instead. */
  readonly waitSeconds: number;
  /** Time between heartbeats to the fang, in milliseconds; 0 sends none. */
  readonly heartbeatMs: number;
  /** How long a probe of a contested peer waits for an answer, in milliseconds. */
  readonly probeTimeoutMs: number;
  /**
   * How often the interface itself is checked against the list held, in
   * milliseconds: this is when relay decisions are taken, and how a recreated
   * interface (wg-quick down/up) gets its peers back without waiting for the
   * fang; 0 checks only when the fang answers.
   */
  readonly localCheckMs: number;
  /** Shortest time between two rounds while the fang pushes, in milliseconds (default 250). */
  readonly minRoundGapMs?: number;
  /** Stops the loop; a reply that arrives after it aborts is not applied. */
  readonly signal: AbortSignal;
  /** Called after every round with what `snakebite status` may show; errors in it are ignored. */
  readonly publish?: (state: { identity?: number; lastSync: number; lastError?: string; relayed: Map<WireGuardKey, number>; added: WireGuardKey[]; changed: ChangedRecord[]; unmanaged: { publicKey: WireGuardKey; reason: string }[] }) => void;
  /** Peers an earlier run added (from its state file): they may be removed when the fang stops listing them. */
  readonly addedBefore?: readonly WireGuardKey[];
  /** Peers of the user's an earlier run relayed (from its state file), with what they routed before. */
  readonly changedBefore?: readonly ChangedRecord[];
  /** The interface's identity now (its kernel index); undefined when unknown. A change means it was re-created. */
  readonly interfaceIdentity?: () => number | undefined;
  /** The identity the earlier run saw (from its state file): when it differs, what that run added or changed is not ours any more. */
  readonly identityBefore?: number;
}

/** Shortest time between two rounds with the fang while it pushes, in milliseconds. */
const MIN_ROUND_GAP_MS = 250;

/** How long a "send me a packet" request stays in our reports, in seconds. */
const PUNCH_REQUEST_SECONDS = 30;

/** Waits `ms`, or less if `signal` aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** Longest retry delay while the fang's machine answers (the tunnel works, the server is down or failing), in milliseconds. */
export const FANG_ANSWERS_RETRY_MS = 1000;

/**
 * Retry delay after `failures` failures in a row: doubling from 1 s up to the
 * interval, with jitter. When the fang's machine itself answered the last
 * attempt (a refused connection or an HTTP error came back through the
 * tunnel), the tunnel is up and only the server is away: retrying costs one
 * packet, so it is retried within a second and a restarted server is noticed at once.
 */
export function retryDelayMs(failures: number, intervalMs: number, random: () => number = Math.random, fangAnswered = false): number {
  const base = Math.min(intervalMs, fangAnswered ? FANG_ANSWERS_RETRY_MS : 1000 * 2 ** Math.min(failures - 1, 16));
  return Math.round(base * (0.5 + random() / 2));
}

/** Failures in a row that get a warning: the first, then at every power of two, so a long outage logs a few lines, not one a second. */
export function warnsAfter(failures: number): boolean {
  return failures > 0 && (failures & (failures - 1)) === 0;
}

/** Overlay addresses of every peer with an endpoint, other than the fang: where to punch after we moved. */
function punchTargets(device: DeviceState, fangKey: WireGuardKey): IpAddress[] {
  return device.peers.filter((peer) => peer.publicKey !== fangKey && peer.endpoint && peer.allowedIps[0]).map((peer) => firstHost(peer.allowedIps[0]!));
}

/**
 * The changes that make WireGuard send a handshake to each peer now, though
 * its traffic goes through the fang: turning persistent keepalive off and on
 * again in one batch sends a keepalive at once, which starts a handshake.
 */
export function repunchChanges(device: DeviceState, keys: readonly WireGuardKey[], keepaliveSeconds: number): PeerChange[] {
  const byKey = new Map(device.peers.map((peer) => [peer.publicKey, peer]));
  return keys
    .filter((key) => byKey.get(key)?.endpoint)
    .flatMap((key) => [
      { publicKey: key, persistentKeepalive: 0 },
      { publicKey: key, persistentKeepalive: byKey.get(key)!.persistentKeepalive ?? keepaliveSeconds },
    ]);
}

/**
 * Keeps the interface in step with the fang until the signal aborts. It holds
 * a request open at the fang, which answers the moment a peer changes (push),
 * and falls back to polling every `intervalMs` when the fang does not push. A
 * failed round is logged and retried with backoff and jitter; it never undoes
 * what earlier rounds set.
 */
export async function runClientDaemon(deps: SyncDeps, options: DaemonOptions): Promise<void> {
  const { logger } = deps;
  const tracker = new PeerTracker(options.addedBefore, options.changedBefore);
  // The interface as the peers in `tracker` knew it: a new one (wg-quick down/up) holds only the user's peers.
  let identity = options.identityBefore;
  const checkIdentity = () => {
    const now = options.interfaceIdentity?.();
    if (now === undefined) return;
    if (identity !== undefined && now !== identity) {
      tracker.forgetAll();
      logger.info('interface-recreated', { reason: `the interface was re-created (index ${identity} -> ${now}): every peer on it now is the user's; nothing added or changed before is ours to remove or restore` });
    }
    identity = now;
  };
  const nowSeconds = () => Math.floor(deps.clock().getTime() / 1000);
  let held: PeerList | undefined;
  let failures = 0;
  let pushing = options.waitSeconds > 0;
  let lastReport: string | undefined;
  let lastSync = 0;
  const publish = (lastError?: string, extraChanged: ChangedRecord[] = []) => {
    try {
      options.publish?.({ ...(identity !== undefined ? { identity } : {}), lastSync, ...(lastError ? { lastError } : {}), relayed: tracker.relayedPeers(), added: tracker.addedPeers(), changed: [...tracker.changedPeers(), ...extraChanged], unmanaged: [...explained].map(([publicKey, { reason }]) => ({ publicKey, reason })) });
    } catch {
      /* status is a convenience; never let it stop the daemon */
    }
  };

  // Heartbeats keep F's view of our endpoint fresh: after a NAT rebind, F learns
  // the new one within a heartbeat and pushes it to the other peers.
  const heartbeat =
    options.heartbeatMs > 0
      ? setInterval(() => void deps.triggerHandshakes([options.serverAddress]).catch(() => undefined), options.heartbeatMs)
      : undefined;
  const hangUp = new AbortController();
  const onAbort = () => hangUp.abort();
  options.signal.addEventListener('abort', onAbort);

  // Reconciles never overlap: the fang's answers and the local checks take turns.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const next = turn.then(work, work);
    turn = next.catch(() => undefined);
    return next;
  };

  // Why each listed peer is left alone, as last logged; and whether "manages nothing" was said.
  const explained = new Map<WireGuardKey, { code: string; reason: string }>();
  let saidNothingManaged = false;
  /** After the first round: a fang that lists peers none of which this client may manage gets one warning, with the fix. */
  const sayIfNothingManaged = (result: SyncResult, list: PeerList): boolean => {
    const others = result.plan.decisions.filter((d) => d.publicKey !== list.you.publicKey && d.publicKey !== list.fang.publicKey && d.kind !== 'remove');
    if (others.length === 0) return false;
    const codes = others.map((d) => unmanagedCode(d));
    if (codes.some((code) => code === undefined)) return true;
    const outside = codes.filter((code) => code === 'routes-outside' || code === 'outside-fang-range' || code === 'no-acceptable-allowed-ip').length;
    logger.warn('nothing-managed', {
      listed: others.length,
      reason: `the fang lists ${others.length} peers and this client may manage none of them (${[...new Set(codes)].join(', ')})`,
      hint:
        outside > 0
          ? "give the fang peer AllowedIPs that cover the overlay (e.g. 10.10.10.0/24), or list the peers yourself with the AllowedIPs the fang has for them; `snakebite status` shows each peer's reason"
          : '`snakebite status` shows why for each peer',
    });
    return true;
  };

  /** Reconcile with what the tracker knows, remember what happened, retry relayed peers' direct paths. */
  let rounds = 0;
  const reconcileTracked = async (list: PeerList, extra: Parameters<typeof reconcile>[3] = {}, readAlready?: DeviceState): Promise<SyncResult> => {
    rounds++;
    checkIdentity();
    // Write-ahead: the originals of a user's peer about to be relayed reach the state file before
    // its allowed IPs change, so a crash in between never loses them.
    const beforeApply = (plan: Plan) => {
      const now = nowSeconds();
      const relaying = plan.decisions.flatMap((d) =>
        d.kind === 'relay' && d.origin === 'users'
          ? [{ publicKey: d.publicKey, since: now, allowedIps: d.original, viaFang: d.viaFang }]
          : d.kind === 'rebuild' && d.relayFirst
            ? [{ publicKey: d.publicKey, since: now, allowedIps: d.allowedIps, viaFang: d.viaFang }]
            : [],
      );
      writtenAhead = relaying;
      if (relaying.length > 0) publish(undefined, relaying);
    };
    let writtenAhead: ChangedRecord[] = [];
    let result: SyncResult;
    try {
      result = await reconcile(deps, options, list, { ...tracker.observations(), ...extra }, readAlready, { ...(options.dryRun ? {} : { beforeApply }), explained });
    } catch (error) {
      // Part of the batch may have been applied: keep the originals until a read shows where each peer is.
      tracker.applyFailed(writtenAhead);
      throw error;
    }
    if (!saidNothingManaged) saidNothingManaged = sayIfNothingManaged(result, list);
    // A dry run applies nothing, so it must not remember anything as done.
    if (!options.dryRun) tracker.record(result.device, result.plan, list.fang.publicKey, nowSeconds());
    if (!options.dryRun) {
      const due = tracker.takeRepunches(nowSeconds());
      const changes = repunchChanges(result.device, due, options.keepaliveSeconds);
      if (changes.length > 0) {
        await deps.driver.applyPeerChanges(changes);
        for (const key of due) logger.info('direct-retried', { peer: key, reason: 'relayed: trying the direct path again (keepalive off and on starts a handshake)' });
      }
      if (changes.length > 0 || result.plan.changes.some((c) => c.kind === 'add-peer' || c.kind === 'set-endpoint' || c.kind === 'rebuild-peer')) watchForHandshakes();
      if (result.plan.changes.some((c) => c.kind === 'relay' || c.kind === 'direct-again' || c.kind === 'rebuild-peer')) publish();
    }
    return result;
  };

  // After a punch, watch closely for the handshake, so a relayed peer goes
  // direct within a tenth of a second of it rather than at the next local check.
  let watching = false;
  const watchForHandshakes = () => {
    if (watching || options.signal.aborted) return;
    watching = true;
    void (async () => {
      for (let i = 0; i < 30 && !options.signal.aborted; i++) {
        await sleep(100, options.signal);
        const before = rounds;
        const device = await deps.driver.readDevice();
        if (tracker.relayedCount === 0) return;
        // The newest list: a push may have arrived since the punch.
        const list = held;
        if (list && tracker.readyForDirect(device).length > 0) {
          // The read just made serves the round, unless another round changed the interface since.
          await exclusive(async () => {
            if (!options.signal.aborted) await reconcileTracked(list, {}, rounds === before ? device : undefined);
          });
        }
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        watching = false;
      });
  };

  // "Send me a packet" requests: ours stay in our reports for a while; each of theirs is answered once.
  const activeRequests = () => tracker.activeRequests(nowSeconds(), PUNCH_REQUEST_SECONDS);
  /** Peers we send to that stopped answering: probe them, and ask the silent ones (through the fang) to send first. */
  const askOneWayPeers = async (list: PeerList, result: SyncResult) => {
    const now = nowSeconds();
    const fangKey = list.fang.publicKey;
    const keys = tracker.oneWay(result.device, fangKey, now).filter((key) => !tracker.askedWithin(key, now, PUNCH_REQUEST_SECONDS / 2));
    if (keys.length === 0) return;
    const byKey = new Map(result.device.peers.map((peer) => [peer.publicKey, peer]));
    const targets = keys.map((key) => ({ publicKey: key, probeAddress: firstHost(byKey.get(key)!.allowedIps[0]!) }));
    const { silent } = await probePeers(deps.driver, targets, deps.triggerHandshakes, options.probeTimeoutMs);
    if (silent.size === 0) return;
    for (const key of silent) {
      tracker.noteAsked(key, now);
      logger.info('punch-requested', { peer: key, reason: 'our packets get no answer: asking it through the fang to send first (its NAT may have forgotten us)' });
    }
    lastReport = (await sendReportQuietly(deps, result.device, fangKey, undefined, activeRequests())) ?? lastReport;
  };
  /** Answers other peers' requests to send to them. */
  const answerRequests = async (list: PeerList, device: DeviceState) => {
    const me = list.you.publicKey;
    const byKey = new Map(device.peers.map((peer) => [peer.publicKey, peer]));
    const targets: IpAddress[] = [];
    for (const entry of list.peers) {
      const request = entry.punchRequests?.find((r) => r.publicKey === me);
      if (!request || !tracker.takeRequest(entry.publicKey, request.at)) continue;
      const local = byKey.get(entry.publicKey);
      if (!local?.endpoint || !local.allowedIps[0]) continue;
      targets.push(firstHost(local.allowedIps[0]));
      logger.info('punch-answered', { peer: entry.publicKey, endpoint: formatEndpoint(local.endpoint), reason: 'it asked us to send first' });
    }
    if (targets.length > 0) await deps.triggerHandshakes(targets);
  };

  let localFailing = false;
  let checking = false;
  const localCheck =
    options.localCheckMs > 0
      ? setInterval(() => {
          const list = held;
          // One check at a time: a slow `wg` or plan must not pile checks up.
          if (!list || options.signal.aborted || checking) return;
          checking = true;
          void exclusive(async () => {
            if (options.signal.aborted) return;
            const result = await reconcileTracked(list);
            if (!options.dryRun) await askOneWayPeers(list, result);
            publish();
            if (localFailing) logger.info('interface-back', { reason: 'the interface can be read again' });
            localFailing = false;
          }).catch((error: unknown) => {
            // The main loop reports failures; here only note the first one.
            if (!localFailing) logger.debug('local-check-failed', { error: describeError(error) });
            localFailing = true;
          }).finally(() => {
            checking = false;
          });
        }, options.localCheckMs)
      : undefined;

  try {
    while (!options.signal.aborted) {
      let delay = 0;
      try {
        const waiting = pushing && held?.revision !== undefined;
        const body = await deps.fetchPeerList(
          held?.revision !== undefined ? { since: held.revision, ...(waiting ? { waitSeconds: options.waitSeconds } : {}), signal: hangUp.signal } : { signal: hangUp.signal },
        );
        if (options.signal.aborted) break;
        const { list: incoming } = acceptReply(body, logger);
        if (incoming.since !== undefined && held === undefined) {
          throw new SnakebiteError('SB_REPLY_MALFORMED', 'the fang answered a request for the full list with a delta', 'check that the fang runs the same Snakebite version');
        }
        const merged = mergePeerList(held, incoming);
        if (!merged) {
          // The delta does not follow what we hold (the fang restarted): start over with a full list.
          held = undefined;
          continue;
        }
        // Follow the fang as it is now: one that stopped sending revisions (an
        // older server during an upgrade) is polled, and pushes again once it can.
        const canPush = options.waitSeconds > 0 && incoming.revision !== undefined;
        if (canPush !== pushing && options.waitSeconds > 0) {
          logger.info(canPush ? 'push-available' : 'push-unavailable', {
            reason: canPush ? 'the fang sends revisions again; waiting for its pushes' : 'the fang sends no revisions; polling every interval instead',
          });
        }
        pushing = canPush;
        const movedFrom = held?.you.endpoint ?? null;
        const moved = held !== undefined && !endpointEquals(movedFrom, merged.you.endpoint);
        const listedBefore = new Map((held?.peers ?? []).map((peer) => [peer.publicKey, peer.endpoint]));
        held = merged;

        const list = held;
        const result = await exclusive(async () => {
          const first = await reconcileTracked(list, { listedBefore });
          if (first.plan.contested.length === 0 || options.dryRun) return first;
          // The fang sees these flowing peers elsewhere than we reach them: ask the path itself.
          // Silence means a dead path only from a peer that answers probes: one that
          // reports to the fang runs a client; others keep their endpoint.
          const reporting = new Set(list.peers.filter((entry) => entry.listenPort !== undefined).map((entry) => entry.publicKey));
          const targets = first.plan.contested.filter((target) => reporting.has(target.publicKey));
          if (targets.length === 0) return first;
          const { answered, silent } = await probePeers(deps.driver, targets, deps.triggerHandshakes, options.probeTimeoutMs);
          logger.debug('peers-probed', { answered: answered.size, silent: silent.size });
          return silent.size > 0 ? reconcileTracked(list, { silent }) : first;
        });
        if (!options.dryRun) await answerRequests(list, result.device);
        if (moved && !options.dryRun) {
          const targets = punchTargets(result.device, list.fang.publicKey);
          logger.info('endpoint-moved', {
            previous: movedFrom ? formatEndpoint(movedFrom) : undefined,
            endpoint: list.you.endpoint ? formatEndpoint(list.you.endpoint) : undefined,
            reason: `the fang sees us at a new endpoint; punching ${targets.length} peers again`,
          });
          await deps.triggerHandshakes(targets);
        }
        // A full list means a new fang (or a restarted one), which has no report of ours yet.
        lastReport = (await sendReportQuietly(deps, result.device, list.fang.publicKey, incoming.since === undefined ? undefined : lastReport, activeRequests())) ?? lastReport;
        if (failures > 0) logger.info('sync-recovered', { after: failures });
        failures = 0;
        lastSync = nowSeconds();
        publish();
        // Even a fang that answers every wait at once gets at most four rounds a second.
        delay = pushing ? options.minRoundGapMs ?? MIN_ROUND_GAP_MS : options.intervalMs;
      } catch (error) {
        if (options.signal.aborted) break;
        failures++;
        delay = retryDelayMs(failures, options.intervalMs, Math.random, error instanceof SnakebiteError && error.fangAnswered);
        (warnsAfter(failures) ? logger.warn : logger.debug).call(logger, 'sync-failed', {
          code: error instanceof SnakebiteError ? error.code : undefined,
          error: describeError(error),
          failures,
          retryInMs: delay,
        });
        publish(describeError(error));
      }
      await sleep(delay, options.signal);
    }
  } finally {
    clearInterval(heartbeat);
    clearInterval(localCheck);
    options.signal.removeEventListener('abort', onAbort);
    await turn;
  }
}
