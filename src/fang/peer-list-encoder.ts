import { formatEndpoint } from '../ip/address';
import { PEER_LIST_VERSION, type PeerReport } from '../peer-list/peer-list';
import { serializePeerListEntry } from '../peer-list/serialize';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { gatherSeenBy, listEntry, type PeerListDelta, type SeenBy } from './peer-list-view';

/** One peer's entry as JSON, with what it was made from (compared by identity). */
interface CachedEntry {
  readonly endpoint: PeerState['endpoint'];
  readonly allowedIps: PeerState['allowedIps'];
  readonly latestHandshake: number;
  readonly report: PeerReport | undefined;
  readonly seenText: string;
  readonly json: Buffer;
}

/** Entries joined by commas, shared by every asker; each asker's own entry is cut out when it is sent. */
interface SharedPeers {
  readonly body: Buffer;
  /** Byte offset of each entry in `body`. */
  readonly starts: readonly number[];
  readonly indexOf: ReadonlyMap<WireGuardKey, number>;
}

interface Built {
  readonly device: DeviceState;
  readonly revision: number;
  readonly since: number | undefined;
  readonly peers: SharedPeers;
}

const COMMA = Buffer.from(',');

/**
 * Encodes `GET /v1/peers` replies, the same document as
 * `serializePeerList(buildPeerList(...))`, but encodes each peer's entry once
 * (again only when it changes) and the list once per interface read and
 * revision, shared by every asker: a reply is then the asker's own `you`
 * around a slice of shared bytes. With 10,000 clients parked on one revision,
 * waking them costs one delta encoding plus a copy per client, not a walk
 * over every peer per client.
 */
export class PeerListEncoder {
  private readonly entries = new Map<WireGuardKey, CachedEntry>();
  private seen: { revision: number; reports: ReadonlyMap<WireGuardKey, PeerReport>; byKey: Map<WireGuardKey, SeenBy> } | undefined;
  private full: Built | undefined;
  private delta: Built | undefined;
  private positions: { device: DeviceState; indexOf: Map<WireGuardKey, number> } | undefined;

  /** The JSON body for `asker`: everything, or with `delta` only what changed after `delta.since`. */
  encode(device: DeviceState, asker: PeerState, revision: number, delta: PeerListDelta | undefined, reports: ReadonlyMap<WireGuardKey, PeerReport>): Buffer {
    if (device.publicKey === null) throw new Error('the fang interface has no key');
    const seenBy = this.seenByAt(revision, reports);
    const built = delta ? this.buildDelta(device, revision, delta, reports, seenBy) : this.buildFull(device, revision, reports, seenBy);
    const askerSeen = seenBy.get(asker.publicKey);
    const you = {
      publicKey: asker.publicKey,
      endpoint: asker.endpoint && formatEndpoint(asker.endpoint),
      ...(askerSeen ? { seenBy: askerSeen.map((s) => ({ publicKey: s.publicKey, endpoint: formatEndpoint(s.endpoint) })) } : {}),
    };
    const head = `{"version":${PEER_LIST_VERSION},"fang":${JSON.stringify({ publicKey: device.publicKey })},"you":${JSON.stringify(you)},"peers":[`;
    let tail = `],"revision":${revision}`;
    if (delta) tail += `,"since":${delta.since},"removed":${JSON.stringify([...delta.removed].filter((key) => key !== asker.publicKey))}`;
    tail += '}\n';
    return Buffer.concat([Buffer.from(head), ...without(built.peers, asker.publicKey), Buffer.from(tail)]);
  }

  private seenByAt(revision: number, reports: ReadonlyMap<WireGuardKey, PeerReport>): Map<WireGuardKey, SeenBy> {
    // Reports count as changed when they move the revision (the server touches the keys they concern).
    if (!this.seen || this.seen.revision !== revision || this.seen.reports !== reports) this.seen = { revision, reports, byKey: gatherSeenBy(reports) };
    return this.seen.byKey;
  }

  private buildFull(device: DeviceState, revision: number, reports: ReadonlyMap<WireGuardKey, PeerReport>, seenBy: Map<WireGuardKey, SeenBy>): Built {
    const full = this.full;
    if (full && full.device === device && full.revision === revision) return full;
    const parts = device.peers.map((peer) => this.entry(peer, reports, seenBy));
    // Entries of peers that left are no longer needed.
    if (this.entries.size > device.peers.length) {
      const present = new Set(device.peers.map((peer) => peer.publicKey));
      for (const key of this.entries.keys()) if (!present.has(key)) this.entries.delete(key);
    }
    this.full = { device, revision, since: undefined, peers: share(parts, device.peers) };
    return this.full;
  }

  private buildDelta(device: DeviceState, revision: number, delta: PeerListDelta, reports: ReadonlyMap<WireGuardKey, PeerReport>, seenBy: Map<WireGuardKey, SeenBy>): Built {
    const cached = this.delta;
    if (cached && cached.device === device && cached.revision === revision && cached.since === delta.since) return cached;
    const indexOf = this.positionsOf(device);
    const positions: number[] = [];
    for (const key of delta.changed) {
      const index = indexOf.get(key);
      if (index !== undefined) positions.push(index);
    }
    positions.sort((a, b) => a - b);
    const peers = positions.map((i) => device.peers[i]!);
    this.delta = { device, revision, since: delta.since, peers: share(peers.map((peer) => this.entry(peer, reports, seenBy)), peers) };
    return this.delta;
  }

  private positionsOf(device: DeviceState): Map<WireGuardKey, number> {
    if (this.positions?.device !== device) this.positions = { device, indexOf: new Map(device.peers.map((peer, i) => [peer.publicKey, i])) };
    return this.positions.indexOf;
  }

  private entry(peer: PeerState, reports: ReadonlyMap<WireGuardKey, PeerReport>, seenBy: Map<WireGuardKey, SeenBy>): Buffer {
    const report = reports.get(peer.publicKey);
    const seen = seenBy.get(peer.publicKey);
    const seenText = seen ? seen.map((s) => `${s.publicKey}@${formatEndpoint(s.endpoint)}`).join(' ') : '';
    const cached = this.entries.get(peer.publicKey);
    if (
      cached &&
      cached.endpoint === peer.endpoint &&
      cached.allowedIps === peer.allowedIps &&
      cached.latestHandshake === peer.latestHandshake &&
      cached.report === report &&
      cached.seenText === seenText
    ) {
      return cached.json;
    }
    const json = Buffer.from(JSON.stringify(serializePeerListEntry(listEntry(peer, reports, seenBy))));
    this.entries.set(peer.publicKey, { endpoint: peer.endpoint, allowedIps: peer.allowedIps, latestHandshake: peer.latestHandshake, report, seenText, json });
    return json;
  }
}

function share(parts: readonly Buffer[], peers: readonly PeerState[]): SharedPeers {
  const pieces: Buffer[] = [];
  const starts: number[] = [];
  const indexOf = new Map<WireGuardKey, number>();
  let offset = 0;
  parts.forEach((part, i) => {
    if (i > 0) {
      pieces.push(COMMA);
      offset += 1;
    }
    starts.push(offset);
    indexOf.set(peers[i]!.publicKey, i);
    pieces.push(part);
    offset += part.length;
  });
  return { body: Buffer.concat(pieces, offset), starts, indexOf };
}

/** The shared entries without `key`'s own, as slices of the shared bytes (no copy). */
function without(peers: SharedPeers, key: WireGuardKey): Buffer[] {
  const i = peers.indexOf.get(key);
  if (i === undefined) return [peers.body];
  const count = peers.starts.length;
  if (count === 1) return [];
  if (i === count - 1) return [peers.body.subarray(0, peers.starts[i]! - 1)];
  return [peers.body.subarray(0, peers.starts[i]!), peers.body.subarray(peers.starts[i + 1]!)];
}
