import type { Plan, PlanObservations } from '../plan/plan';
import { repunchDue } from '../plan/relay';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';

/**
 * Remembers when each peer's rx and tx counters last grew, so a peer that
 * receives traffic but has not rekeyed recently still counts as flowing, and
 * a peer we send to that stopped answering can be told apart.
 */
export class ActivityTracker {
  private readonly seen = new Map<WireGuardKey, { rx: number; heardAt: number; tx: number; sentAt: number }>();

  observe(device: DeviceState, nowSeconds: number): void {
    for (const peer of device.peers) {
      const before = this.seen.get(peer.publicKey);
      this.seen.set(peer.publicKey, {
        rx: peer.rxBytes,
        heardAt: before !== undefined && peer.rxBytes > before.rx ? nowSeconds : before?.heardAt ?? 0,
        tx: peer.txBytes,
        sentAt: before !== undefined && peer.txBytes > before.tx ? nowSeconds : before?.sentAt ?? 0,
      });
    }
  }

  /** Unix seconds each peer was last seen receiving; 0 when not seen since start. */
  snapshot(): Map<WireGuardKey, number> {
    return new Map([...this.seen].map(([key, value]) => [key, value.heardAt]));
  }

  /** When a peer last sent to us (`heardAt`) and we to it (`sentAt`), unix seconds, 0 for not seen. */
  get(key: WireGuardKey): { heardAt: number; sentAt: number } | undefined {
    return this.seen.get(key);
  }

  /** Drops peers no longer on the interface. */
  forgetAllBut(keys: ReadonlySet<WireGuardKey>): void {
    for (const key of [...this.seen.keys()]) if (!keys.has(key)) this.seen.delete(key);
  }
}

/** A session older than this carries no traffic (WireGuard's REJECT_AFTER_TIME). */
const SESSION_SECONDS = 180;

/**
 * What the daemon remembers about each peer between rounds: when its rx last
 * grew, since when it has been punched without a handshake, since when it is
 * relayed, and when the direct path was last retried. Plain data; the planner
 * makes every decision from it.
 */
export class PeerTracker {
  private readonly traffic = new ActivityTracker();
  private readonly trying = new Map<WireGuardKey, number>();
  private readonly relayed = new Map<WireGuardKey, { since: number; punches: number; lastPunch: number }>();
  /** Peers this client added (and may remove again); kept across restarts in the state file. */
  private readonly added: Set<WireGuardKey>;

  constructor(addedBefore: Iterable<WireGuardKey> = []) {
    this.added = new Set(addedBefore);
  }

  /** The peers this client added and has not removed. */
  addedPeers(): WireGuardKey[] {
    return [...this.added];
  }

  /** Relayed peers that have had a handshake since they were relayed: ready to go direct. */
  readyForDirect(device: DeviceState): WireGuardKey[] {
    return device.peers.filter((peer) => {
      const state = this.relayed.get(peer.publicKey);
      return state !== undefined && peer.latestHandshake > 0 && peer.latestHandshake >= state.since;
    }).map((peer) => peer.publicKey);
  }

  get relayedCount(): number {
    return this.relayed.size;
  }

  /** Unix seconds since when each relayed peer has been relayed. */
  relayedPeers(): Map<WireGuardKey, number> {
    return new Map([...this.relayed].map(([key, value]) => [key, value.since]));
  }

  observations(): PlanObservations {
    return {
      activity: this.traffic.snapshot(),
      tryingSince: new Map(this.trying),
      relayedSince: new Map([...this.relayed].map(([key, value]) => [key, value.since])),
      addedByUs: new Set(this.added),
    };
  }

  /** Notes what a reconcile saw and did. `fangKey` is never tracked. */
  record(device: DeviceState, plan: Plan, fangKey: WireGuardKey, nowSeconds: number): void {
    this.traffic.observe({ ...device, peers: device.peers.filter((peer) => peer.publicKey !== fangKey) }, nowSeconds);
    for (const peer of device.peers) {
      if (peer.publicKey === fangKey) continue;
      // Only a peer with a keepalive is stuck without a handshake: one without may just be idle.
      const stuck =
        peer.endpoint !== null && peer.persistentKeepalive !== null && (peer.latestHandshake === 0 || nowSeconds - peer.latestHandshake > SESSION_SECONDS);
      const since = this.trying.get(peer.publicKey);
      if (since !== undefined && peer.latestHandshake >= since) this.trying.delete(peer.publicKey);
      else if (stuck && since === undefined && peer.allowedIps.length > 0) this.trying.set(peer.publicKey, nowSeconds);
    }
    for (const change of plan.changes) {
      if (change.kind === 'add-peer') this.added.add(change.publicKey);
      if (change.kind === 'remove-peer') {
        this.added.delete(change.publicKey);
        this.trying.delete(change.publicKey);
        this.relayed.delete(change.publicKey);
      }
      if (change.kind === 'add-peer' && change.allowedIps?.length === 0) {
        this.relayed.set(change.publicKey, { since: nowSeconds, punches: 0, lastPunch: nowSeconds });
      } else if (change.kind === 'add-peer' || change.kind === 'set-endpoint') {
        this.trying.set(change.publicKey, nowSeconds);
      }
      if (change.kind === 'relay') {
        this.trying.delete(change.publicKey);
        this.relayed.set(change.publicKey, { since: nowSeconds, punches: 0, lastPunch: nowSeconds });
      }
      if (change.kind === 'direct-again') this.relayed.delete(change.publicKey);
    }
    // A peer left relayed by an earlier run (no allowed IPs, an endpoint) is retried too.
    // `device` is the state before the plan was applied: a peer leaving the relay now is not one.
    const leaving = new Set(plan.changes.filter((c) => c.kind === 'direct-again' || c.kind === 'remove-peer').map((c) => c.publicKey));
    for (const peer of device.peers) {
      if (peer.publicKey !== fangKey && peer.endpoint && peer.allowedIps.length === 0 && !this.relayed.has(peer.publicKey) && !leaving.has(peer.publicKey)) {
        this.relayed.set(peer.publicKey, { since: nowSeconds, punches: 0, lastPunch: nowSeconds });
      }
    }
    // Peers the plan adds are not in `device` yet, but they are there now.
    const present = new Set([...device.peers.map((peer) => peer.publicKey), ...plan.changes.map((change) => change.publicKey)]);
    for (const key of [...this.relayed.keys()]) if (!present.has(key)) this.relayed.delete(key);
    // A peer gone from the interface is no longer ours: recreated by the user, it is theirs.
    for (const key of [...this.added]) if (!present.has(key)) this.added.delete(key);
    this.traffic.forgetAllBut(present);
    for (const key of [...this.trying.keys()]) if (!present.has(key)) this.trying.delete(key);
  }

  /**
   * Direct peers we keep sending to that stopped answering: we sent within the
   * last 3 s, and heard nothing (no bytes, no handshake) for 3 s though we
   * were sending for at least 2 s of that. Their NAT may have forgotten us.
   */
  oneWay(device: DeviceState, fangKey: WireGuardKey, nowSeconds: number): WireGuardKey[] {
    return device.peers
      .filter((peer) => {
        const state = this.traffic.get(peer.publicKey);
        if (peer.publicKey === fangKey || !peer.endpoint || peer.allowedIps.length === 0 || !state || state.sentAt === 0) return false;
        const heard = Math.max(state.heardAt, peer.latestHandshake);
        return nowSeconds - state.sentAt <= 3 && state.sentAt - heard >= 2 && nowSeconds - heard >= 3;
      })
      .map((peer) => peer.publicKey);
  }

  /** Relayed peers due for another try of the direct path now; marks them as tried. */
  takeRepunches(nowSeconds: number): WireGuardKey[] {
    const due: WireGuardKey[] = [];
    for (const [key, state] of this.relayed) {
      if (repunchDue(state.punches, state.lastPunch, nowSeconds)) {
        due.push(key);
        state.punches++;
        state.lastPunch = nowSeconds;
      }
    }
    return due;
  }
}
