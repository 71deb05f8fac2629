import { describeError, SnakebiteError } from '../errors';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { syncOnce, type SyncDeps, type SyncOptions } from './sync';

export interface DaemonOptions extends SyncOptions {
  /** Time between refreshes when all is well, in milliseconds. */
  readonly intervalMs: number;
  /** Stops the loop; the current round finishes first. */
  readonly signal: AbortSignal;
}

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

/**
 * Remembers when each peer's rx counter last grew, so a peer that receives
 * traffic but has not rekeyed recently still counts as flowing.
 */
export class ActivityTracker {
  private readonly seen = new Map<WireGuardKey, { rx: number; heardAt: number }>();

  observe(device: DeviceState, nowSeconds: number): void {
    for (const peer of device.peers) {
      const before = this.seen.get(peer.publicKey);
      const grew = before !== undefined && peer.rxBytes > before.rx;
      this.seen.set(peer.publicKey, { rx: peer.rxBytes, heardAt: grew ? nowSeconds : before?.heardAt ?? 0 });
    }
  }

  /** Unix seconds each peer was last seen receiving; 0 when not seen since start. */
  snapshot(): Map<WireGuardKey, number> {
    return new Map([...this.seen].map(([key, value]) => [key, value.heardAt]));
  }
}

/** Retry delay after `failures` failures in a row: doubling from 1 s up to the interval, with jitter. */
export function retryDelayMs(failures: number, intervalMs: number, random: () => number = Math.random): number {
  const base = Math.min(intervalMs, 1000 * 2 ** Math.min(failures - 1, 16));
  return Math.round(base * (0.5 + random() / 2));
}

/**
 * Syncs now and then every `intervalMs` until the signal aborts. A failed round
 * is logged and retried with backoff; it never undoes what earlier rounds set.
 */
export async function runClientDaemon(deps: SyncDeps, options: DaemonOptions): Promise<void> {
  const activity = new ActivityTracker();
  let failures = 0;
  while (!options.signal.aborted) {
    let delay = options.intervalMs;
    try {
      const result = await syncOnce(deps, options, activity.snapshot());
      activity.observe(result.device, Math.floor(deps.clock().getTime() / 1000));
      if (failures > 0) deps.logger.info('sync-recovered', { after: failures });
      failures = 0;
    } catch (error) {
      failures++;
      delay = retryDelayMs(failures, options.intervalMs);
      deps.logger.warn('sync-failed', {
        code: error instanceof SnakebiteError ? error.code : undefined,
        error: describeError(error),
        retryInMs: delay,
      });
    }
    await sleep(delay, options.signal);
  }
}
