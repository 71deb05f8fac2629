import type { ChangedPeer, Plan, PlanObservations } from '../plan/plan';
import { repunchDue } from '../plan/relay';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

/** When a peer's rx and tx counters last grew, unix seconds (0: not seen growing since start). */
export interface Traffic {
  readonly rx: number;
  readonly heardAt: number;
  readonly tx: number;
  readonly sentAt: number;
}

/** The traffic record after one more read of the peer's counters. A counter that shrank (interface recreated) is no sign of life. */
export function nextTraffic(before: Traffic | undefined, peer: PeerState, nowSeconds: number): Traffic {
  return {
    rx: peer.rxBytes,
    heardAt: before !== undefined && peer.rxBytes > before.rx ? nowSeconds : before?.heardAt ?? 0,
    tx: peer.txBytes,
    sentAt: before !== undefined && peer.txBytes > before.tx ? nowSeconds : before?.sentAt ?? 0,
  };
}

/**
 * Remembers when each peer's rx and tx counters last grew, so a peer that
 * receives traffic but has not rekeyed recently still counts as flowing.
 */
export class ActivityTracker {
  private readonly seen = new Map<WireGuardKey, Traffic>();

  observe(device: DeviceState, nowSeconds: number): void {
    for (const peer of device.peers) this.seen.set(peer.publicKey, nextTraffic(this.seen.get(peer.publicKey), peer, nowSeconds));
  }

  /** Unix seconds each peer was last seen receiving; 0 when not seen since start. */
  snapshot(): Map<WireGuardKey, number> {
    return new Map([...this.seen].map(([key, value]) => [key, value.heardAt]));
  }
}

/**
 * How the daemon reaches a peer, as far as it is concerned: `direct` (nothing
 * pending: a working or idle direct entry), `punching` towards it without a
 * handshake since `since`, or `relayed` through the fang since `since`, with
 * the direct path retried `punches` times, the latest at `lastPunch`. One
 * value, so a peer cannot be punching and relayed at once.
 */
export type Link =
  | { readonly kind: 'direct' }
  /** `rx`: the peer's received bytes when the punch began (undefined: unknown); any more proves the path. */
  | { readonly kind: 'punching'; readonly since: number; readonly rx?: number }
  | { readonly kind: 'relayed'; readonly since: number; readonly punches: number; readonly lastPunch: number };

/** Everything the daemon remembers about one peer on the interface. */
export interface PeerRecord {
  /** `ours`: this client added it (and may remove it); `users`: it was on the interface before, the user's. */
  readonly origin: 'ours' | 'users';
  readonly traffic: Traffic;
  readonly link: Link;
  /** Unix seconds we last asked it, through the fang, to send first; undefined when not. */
  readonly askedAt?: number;
  /** The time of the latest of its "send me a packet" requests that we answered. */
  readonly answeredAt?: number;
  /** A peer of the user's this client relays: what it routed before, to restore exactly. Only while `link` is relayed. */
  readonly original?: ChangedPeer;
}

/** A relayed peer of the user's as the state file keeps it: enough to restore it after a crash or restart. */
export interface ChangedRecord extends ChangedPeer {
  readonly publicKey: WireGuardKey;
  /** Unix seconds since when it is relayed. */
  readonly since: number;
}

/** A session older than this carries no traffic (WireGuard's REJECT_AFTER_TIME). */
const SESSION_SECONDS = 180;

const relayedNow = (nowSeconds: number): Link => ({ kind: 'relayed', since: nowSeconds, punches: 0, lastPunch: nowSeconds });

/**
 * What the daemon remembers about each peer between rounds, one record per
 * peer (the fang peer excluded). Plain data; the planner makes every decision
 * from the observations it hands out.
 */
export class PeerTracker {
  private readonly records = new Map<WireGuardKey, PeerRecord>();
  /** Peers an earlier run added, until the first read shows whether they are still there. */
  private pendingOurs: Set<WireGuardKey>;
  /** Peers of the user's an earlier run relayed, until the first read shows whether they still are. */
  private pendingChanged: Map<WireGuardKey, ChangedRecord>;

  constructor(addedBefore: Iterable<WireGuardKey> = [], changedBefore: Iterable<ChangedRecord> = []) {
    this.pendingOurs = new Set(addedBefore);
    this.pendingChanged = new Map([...changedBefore].map((c) => [c.publicKey, c]));
  }

  /**
   * An apply failed after the originals of these peers were written ahead:
   * some of its changes may have taken effect. The next read settles it, as
   * after a restart: a peer that routes nothing is relayed with these originals.
   */
  applyFailed(writtenAhead: Iterable<ChangedRecord>): void {
    for (const c of writtenAhead) this.pendingChanged.set(c.publicKey, c);
  }

  /**
   * Forgets everything: the interface was re-created (wg-quick down/up), so
   * every peer on it now is the user's, and nothing this client changed on
   * the old one is left to undo.
   */
  forgetAll(): void {
    this.records.clear();
    this.pendingOurs = new Set();
    this.pendingChanged = new Map();
  }

  /** The user's peers this client relays now, with what they routed before: for the state file and `status`. */
  changedPeers(): ChangedRecord[] {
    const out: ChangedRecord[] = [...this.pendingChanged.values()];
    for (const [publicKey, record] of this.records) {
      if (record.original && record.link.kind === 'relayed') out.push({ publicKey, since: record.link.since, ...record.original });
    }
    return out;
  }

  /** The record of one peer, undefined when it is not tracked. */
  get(key: WireGuardKey): PeerRecord | undefined {
    return this.records.get(key);
  }

  /** The peers this client added and has not removed. */
  addedPeers(): WireGuardKey[] {
    return [...this.records].filter(([, r]) => r.origin === 'ours').map(([key]) => key).concat([...this.pendingOurs]);
  }

  /** Relayed peers that have had a handshake since they were relayed: ready to go direct. */
  readyForDirect(device: DeviceState): WireGuardKey[] {
    return device.peers
      .filter((peer) => {
        const link = this.records.get(peer.publicKey)?.link;
        return link?.kind === 'relayed' && peer.latestHandshake > 0 && peer.latestHandshake >= link.since;
      })
      .map((peer) => peer.publicKey);
  }

  get relayedCount(): number {
    return [...this.records.values()].filter((r) => r.link.kind === 'relayed').length;
  }

  /** Unix seconds since when each relayed peer has been relayed. */
  relayedPeers(): Map<WireGuardKey, number> {
    const out = new Map<WireGuardKey, number>([...this.pendingChanged.values()].map((c) => [c.publicKey, c.since]));
    for (const [key, record] of this.records) if (record.link.kind === 'relayed') out.set(key, record.link.since);
    return out;
  }

  observations(): PlanObservations {
    const activity = new Map<WireGuardKey, number>();
    const tryingSince = new Map<WireGuardKey, number>();
    for (const [key, record] of this.records) {
      activity.set(key, record.traffic.heardAt);
      if (record.link.kind === 'punching') tryingSince.set(key, record.link.since);
    }
    const changed = new Map(this.changedPeers().map((c) => [c.publicKey, { allowedIps: c.allowedIps, viaFang: c.viaFang }]));
    return { activity, tryingSince, relayedSince: this.relayedPeers(), addedByUs: new Set(this.addedPeers()), changed };
  }

  private update(key: WireGuardKey, change: Partial<PeerRecord>): void {
    const record = this.records.get(key);
    if (record) this.records.set(key, { ...record, ...change });
  }

  /** Notes what a reconcile saw (`device`, read before the plan was applied) and did. `fangKey` is never tracked. */
  record(device: DeviceState, plan: Plan, fangKey: WireGuardKey, nowSeconds: number): void {
    const peers = device.peers.filter((peer) => peer.publicKey !== fangKey);
    // Peers the plan adds are not in `device` yet, but they are there now.
    const present = new Set([...peers.map((peer) => peer.publicKey), ...plan.changes.filter((c) => c.publicKey !== fangKey && !c.remove).map((c) => c.publicKey)]);
    // A peer gone from the interface is forgotten: recreated by the user, it is theirs.
    for (const key of [...this.records.keys()]) if (!present.has(key)) this.records.delete(key);
    for (const peer of peers) {
      let before = this.records.get(peer.publicKey);
      const pending = this.pendingChanged.get(peer.publicKey);
      // Relayed by an earlier run (or by an apply that failed half-way) and still routing nothing: go on where it left off.
      if (pending && peer.allowedIps.length === 0 && !before?.original) {
        before = {
          origin: before?.origin ?? 'users',
          traffic: before?.traffic ?? nextTraffic(undefined, peer, nowSeconds),
          link: { kind: 'relayed', since: pending.since, punches: 0, lastPunch: nowSeconds },
          original: { allowedIps: pending.allowedIps, viaFang: pending.viaFang },
        };
      }
      // Routing again though we relay it: the user (or wg-quick up) restored it; nothing left to undo.
      if (before?.original && peer.allowedIps.length > 0) {
        const { original: _restored, ...rest } = before;
        before = { ...rest, link: { kind: 'direct' } };
      }
      const origin = before?.origin ?? (this.pendingOurs.has(peer.publicKey) ? 'ours' : 'users');
      let link: Link = before?.link ?? { kind: 'direct' };
      // Only a peer with a keepalive is stuck without a handshake: one without may just be idle.
      const stuck =
        peer.endpoint !== null && peer.persistentKeepalive !== null && (peer.latestHandshake === 0 || nowSeconds - peer.latestHandshake > SESSION_SECONDS);
      const traffic = nextTraffic(before?.traffic, peer, nowSeconds);
      // A punch worked when a handshake or any packet came from the peer since it began: a
      // peer re-pointed while its session lives may not handshake again for two minutes,
      // and relaying it then would break a path its other side uses directly.
      if (link.kind === 'punching' && (peer.latestHandshake >= link.since || (link.rx !== undefined && peer.rxBytes > link.rx))) link = { kind: 'direct' };
      else if (link.kind === 'direct' && stuck && peer.allowedIps.length > 0) link = { kind: 'punching', since: nowSeconds, rx: peer.rxBytes };
      // A peer of ours left relayed by an earlier run (an endpoint, no allowed IPs) is retried too.
      if (link.kind !== 'relayed' && origin === 'ours' && peer.endpoint && peer.allowedIps.length === 0) link = relayedNow(nowSeconds);
      this.records.set(peer.publicKey, { ...before, origin, traffic, link });
    }
    this.pendingOurs = new Set();
    this.pendingChanged = new Map();
    const rxBefore = new Map(peers.map((peer) => [peer.publicKey, peer.rxBytes]));
    const rxOf = (key: WireGuardKey) => rxBefore.get(key);
    for (const change of plan.changes) {
      if (change.publicKey === fangKey) continue;
      switch (change.kind) {
        case 'add-peer':
          this.records.set(change.publicKey, {
            origin: 'ours',
            traffic: { rx: 0, heardAt: 0, tx: 0, sentAt: 0 },
            link: change.allowedIps?.length === 0 ? relayedNow(nowSeconds) : { kind: 'punching', since: nowSeconds, rx: 0 },
          });
          break;
        case 'set-endpoint':
          this.update(change.publicKey, { link: { kind: 'punching', since: nowSeconds, rx: rxOf(change.publicKey) } });
          break;
        case 'rebuild-peer': {
          const d = change.decision;
          if (d.kind === 'rebuild' && d.relayFirst) this.update(change.publicKey, { link: relayedNow(nowSeconds), original: { allowedIps: d.allowedIps, viaFang: d.viaFang } });
          // Re-created: its counters start again from zero.
          else this.update(change.publicKey, { link: { kind: 'punching', since: nowSeconds, rx: 0 } });
          break;
        }
        case 'relay': {
          const d = change.decision;
          this.update(change.publicKey, { link: relayedNow(nowSeconds), ...(d.kind === 'relay' && d.origin === 'users' ? { original: { allowedIps: d.original, viaFang: d.viaFang } } : {}) });
          break;
        }
        case 'direct-again': {
          const record = this.records.get(change.publicKey);
          if (record) {
            const { original: _restored, ...rest } = record;
            this.records.set(change.publicKey, { ...rest, link: { kind: 'direct' } });
          }
          break;
        }
        case 'remove-peer':
          this.records.delete(change.publicKey);
          break;
      }
    }
  }

  /**
   * Direct peers we keep sending to that stopped answering: we sent within the
   * last 3 s, and heard nothing (no bytes, no handshake) for 3 s though we
   * were sending for at least 2 s of that. Their NAT may have forgotten us.
   */
  oneWay(device: DeviceState, fangKey: WireGuardKey, nowSeconds: number): WireGuardKey[] {
    return device.peers
      .filter((peer) => {
        const state = this.records.get(peer.publicKey)?.traffic;
        if (peer.publicKey === fangKey || !peer.endpoint || peer.allowedIps.length === 0 || !state || state.sentAt === 0) return false;
        const heard = Math.max(state.heardAt, peer.latestHandshake);
        return nowSeconds - state.sentAt <= 3 && state.sentAt - heard >= 2 && nowSeconds - heard >= 3;
      })
      .map((peer) => peer.publicKey);
  }

  /** Relayed peers due for another try of the direct path now; marks them as tried. */
  takeRepunches(nowSeconds: number): WireGuardKey[] {
    const due: WireGuardKey[] = [];
    for (const [key, record] of this.records) {
      const link = record.link;
      if (link.kind === 'relayed' && repunchDue(link.punches, link.lastPunch, nowSeconds)) {
        due.push(key);
        this.records.set(key, { ...record, link: { ...link, punches: link.punches + 1, lastPunch: nowSeconds } });
      }
    }
    return due;
  }

  /** Notes that we asked `key`, through the fang, to send first. */
  noteAsked(key: WireGuardKey, nowSeconds: number): void {
    this.update(key, { askedAt: nowSeconds });
  }

  /** Whether we asked `key` within the last `withinSeconds`. */
  askedWithin(key: WireGuardKey, nowSeconds: number, withinSeconds: number): boolean {
    const at = this.records.get(key)?.askedAt;
    return at !== undefined && nowSeconds - at <= withinSeconds;
  }

  /** Our "send me a packet" requests younger than `withinSeconds`, for our reports. */
  activeRequests(nowSeconds: number, withinSeconds: number): { publicKey: WireGuardKey; at: number }[] {
    const out: { publicKey: WireGuardKey; at: number }[] = [];
    for (const [key, record] of this.records) if (record.askedAt !== undefined && nowSeconds - record.askedAt <= withinSeconds) out.push({ publicKey: key, at: record.askedAt });
    return out;
  }

  /** Whether a request of `key`'s made `at` is new (not answered yet); marks it answered. False for a peer not on the interface. */
  takeRequest(key: WireGuardKey, at: number): boolean {
    const record = this.records.get(key);
    if (!record || at <= (record.answeredAt ?? 0)) return false;
    this.records.set(key, { ...record, answeredAt: at });
    return true;
  }
}
