/**
 * The client daemon's metrics, gathered without hooks in the daemon: changes
 * applied, counted from its log events (a documented contract, docs/logging.md),
 * whether the fang answers, from the state it publishes after every round, and
 * at scrape time the peers by path (as `snakebite status` tells them) and the
 * per-peer WireGuard metrics under prometheus_wireguard_exporter's names.
 */
import type { LogFields, Logger } from '../log/logger';
import { describePaths, type PathKind } from '../status/paths';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { Histogram, LabelledCounter, renderExposition, type MetricFamily } from './exposition';
import { wireguardFamilies } from './wireguard';

/** Log events that are changes applied to the interface, by kind. */
const CHANGE_EVENTS: Readonly<Record<string, string>> = {
  'peer-added': 'add-peer',
  'endpoint-set': 'set-endpoint',
  'peer-removed': 'remove-peer',
  'relay-started': 'relay',
  'relay-ended': 'direct-again',
  'direct-retried': 'retry-direct',
};

export const TIME_TO_DIRECT_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

export class ClientMetrics {
  private readonly changes = new LabelledCounter();
  private readonly timeToDirect = new Histogram(TIME_TO_DIRECT_BUCKETS);
  /** When each peer was added or re-pointed and has not gone direct yet, in ms. */
  private readonly punching = new Map<WireGuardKey, number>();
  private fangReachable: number | undefined;
  private relayed: ReadonlyMap<WireGuardKey, number> = new Map();

  constructor(private readonly clock: () => number = Date.now) {}

  /** A logger that also feeds these metrics; everything still reaches `inner`. */
  tap(inner: Logger): Logger {
    const observe = (event: string, fields?: LogFields) => this.onEvent(event, fields);
    const wrap = (logger: Logger, base: LogFields): Logger => ({
      debug: (event, fields) => logger.debug(event, fields),
      info: (event, fields) => {
        observe(event, { ...base, ...fields });
        logger.info(event, fields);
      },
      warn: (event, fields) => logger.warn(event, fields),
      error: (event, fields) => logger.error(event, fields),
      child: (fields) => wrap(logger.child(fields), { ...base, ...fields }),
    });
    return wrap(inner, {});
  }

  onEvent(event: string, fields: LogFields = {}): void {
    const kind = CHANGE_EVENTS[event];
    if (!kind || fields.dryRun === true) return;
    this.changes.inc(kind);
    const peer = typeof fields.peer === 'string' ? fields.peer : undefined;
    if (!peer) return;
    if (event === 'peer-added' || event === 'endpoint-set') {
      if (!this.punching.has(peer)) this.punching.set(peer, this.clock());
    } else if (event === 'relay-ended') {
      this.directNow(peer);
    } else if (event === 'peer-removed') {
      this.punching.delete(peer);
    }
  }

  private directNow(peer: WireGuardKey): void {
    const since = this.punching.get(peer);
    if (since === undefined) return;
    this.punching.delete(peer);
    this.timeToDirect.observe((this.clock() - since) / 1000);
  }

  /** What the daemon publishes after each round: whether the fang answered, and which peers it relays. */
  published(state: { lastError?: string; relayed: ReadonlyMap<WireGuardKey, number> }): void {
    this.fangReachable = state.lastError ? 0 : 1;
    this.relayed = state.relayed;
  }

  render(device: DeviceState, fangKey: WireGuardKey | undefined, now: Date): string {
    const paths = describePaths(device, fangKey, now, { relayedSince: this.relayed });
    // A peer added with its allowed IPs (not relayed first) goes direct without a relay-ended event.
    for (const p of paths) if ((p.path === 'direct' || p.path === 'lan') && this.punching.has(p.publicKey)) this.directNow(p.publicKey);
    const kinds: PathKind[] = ['direct', 'lan', 'relayed', 'none'];
    const families: MetricFamily[] = [
      { name: 'snakebite_client_changes_total', help: 'Changes applied to the interface, by kind', type: 'counter', samples: this.changes.entries().map(([kind, value]) => ({ labels: { kind }, value })) },
      { name: 'snakebite_client_peers', help: 'Peers by path: direct, lan, relayed (through the fang), none; the fang peer is not counted', type: 'gauge', samples: kinds.map((path) => ({ labels: { path }, value: paths.filter((p) => p.path === path).length })) },
      { name: 'snakebite_client_time_to_direct_seconds', help: 'From adding or re-pointing a peer to its first direct handshake', type: 'histogram', samples: this.timeToDirect.samples() },
      ...(this.fangReachable === undefined ? [] : [{ name: 'snakebite_client_fang_reachable', help: '1 when the latest round with the fang succeeded, else 0', type: 'gauge' as const, samples: [{ value: this.fangReachable }] }]),
      ...wireguardFamilies(device),
    ];
    return renderExposition(families);
  }
}
