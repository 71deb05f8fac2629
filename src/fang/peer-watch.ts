import { randomInt } from 'node:crypto';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { SLOW_READ_FACTOR, type SharedDeviceView } from './device-view';
import { diffStates } from './peer-diff';

/** How many revisions of changes are kept to answer deltas; an older `since` gets the full list. */
const HISTORY = 1024;

export interface ChangesSince {
  readonly changed: ReadonlySet<WireGuardKey>;
  readonly removed: ReadonlySet<WireGuardKey>;
}


interface Waiter {
  readonly since: number;
  readonly wake: () => void;
}

/**
 * Watches the fang's interface for peers that appear, leave or change endpoint
 * or allowed IPs, numbering each such state with a revision. One poll serves
 * every waiting client, and polling runs only while someone waits.
 */
export class PeerWatch {
  /** Starts at a random point so a restarted fang never mistakes a client's old revision for its own. */
  revision = randomInt(1, 2 ** 40);
  private byKey: ReadonlyMap<WireGuardKey, PeerState> = new Map();
  private latest: DeviceState | undefined;
  /** The last changesSince answer: every client parked at one revision asks the same question. */
  private lastChanges: { since: number; revision: number; changes: ChangesSince | undefined } | undefined;
  private readonly history: { revision: number; changed: WireGuardKey[]; removed: WireGuardKey[] }[] = [];
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | undefined;
  private primed = false;

  constructor(
    private readonly view: SharedDeviceView,
    /** Milliseconds between reads while clients wait. */
    private readonly pollMs: number,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  /** Reads the interface (shared with concurrent callers) and records any change. */
  async refresh(maxAgeMs?: number): Promise<{ device: DeviceState; revision: number }> {
    const device = await this.view.read(maxAgeMs);
    if (device !== this.latest) {
      this.latest = device;
      const diff = diffStates(this.byKey, device);
      this.byKey = diff.byKey;
      if (!this.primed) {
        this.primed = true;
      } else if (diff.changed.length > 0 || diff.removed.length > 0) {
        this.revision++;
        this.history.push({ revision: this.revision, changed: [...diff.changed], removed: [...diff.removed] });
        if (this.history.length > HISTORY) this.history.shift();
        for (const waiter of this.waiters) if (waiter.since !== this.revision) waiter.wake();
      }
    }
    return { device, revision: this.revision };
  }

  /**
   * Records a change the interface does not show (a peer's report) for
   * `keys`, so waiting clients get it like any other change.
   */
  touch(keys: readonly WireGuardKey[]): void {
    if (keys.length === 0) return;
    this.revision++;
    this.history.push({ revision: this.revision, changed: [...keys], removed: [] });
    if (this.history.length > HISTORY) this.history.shift();
    for (const waiter of this.waiters) if (waiter.since !== this.revision) waiter.wake();
  }

  /** The peer with `key` as last read, if the interface has it. */
  peer(key: WireGuardKey): PeerState | undefined {
    return this.byKey.get(key);
  }

  /**
   * What changed after revision `since`; undefined when `since` is unknown
   * (then send the full list). Shared: callers must not modify the sets.
   */
  changesSince(since: number): ChangesSince | undefined {
    const last = this.lastChanges;
    if (last && last.since === since && last.revision === this.revision) return last.changes;
    const changes = this.computeChangesSince(since);
    this.lastChanges = { since, revision: this.revision, changes };
    return changes;
  }

  private computeChangesSince(since: number): ChangesSince | undefined {
    if (since === this.revision) return { changed: new Set(), removed: new Set() };
    const first = this.history[0];
    if (since > this.revision || !first || since < first.revision - 1) return undefined;
    const changed = new Set<WireGuardKey>();
    const removed = new Set<WireGuardKey>();
    // Revisions in the history are consecutive: start at the first one after `since`.
    for (let i = Math.max(0, since + 1 - first.revision); i < this.history.length; i++) {
      const entry = this.history[i]!;
      if (entry.revision <= since) continue;
      for (const key of entry.changed) {
        changed.add(key);
        removed.delete(key);
      }
      for (const key of entry.removed) {
        removed.add(key);
        changed.delete(key);
      }
    }
    return { changed, removed };
  }

  /** Resolves when the revision moves past `since`, after `timeoutMs`, or when `signal` aborts. */
  waitForChange(since: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (since !== this.revision || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        since,
        wake: () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', waiter.wake);
          this.waiters.delete(waiter);
          if (this.waiters.size === 0) this.stopPolling();
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      signal.addEventListener('abort', waiter.wake);
      this.waiters.add(waiter);
      this.startPolling();
    });
  }

  get waiting(): number {
    return this.waiters.size;
  }

  private startPolling(): void {
    if (this.timer) return;
    const tick = () => {
      const started = Date.now();
      // A poll wants a read newer than the last poll, not one the request cache still serves.
      this.refresh(this.pollMs / 2).then(
        () => {
          // A slow interface (wireguard-go takes about a second to print 10,000 peers) is read at most a quarter of the time.
          if (this.timer) this.timer = setTimeout(tick, Math.max(this.pollMs, SLOW_READ_FACTOR * (Date.now() - started)));
        },
        (error: unknown) => {
          this.onError(error);
          if (this.timer) this.timer = setTimeout(tick, this.pollMs * 4);
        },
      );
    };
    this.timer = setTimeout(tick, this.pollMs);
  }

  private stopPolling(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  close(): void {
    for (const waiter of [...this.waiters]) waiter.wake();
    this.stopPolling();
  }
}
