import { formatEndpoint } from '../ip/address';
import { PEER_LIST_VERSION, type PeerReport } from '../peer-list/peer-list';
import { serializePeerListEntry } from '../peer-list/serialize';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import { gatherSeenBy, listEntry, type PeerListDelta, type SeenBy } from './peer-list-view';
import { punchRequestsFor } from './punch-requests';

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
  /** The peer each entry was made from, by index. */
  readonly peerStates: readonly PeerState[];
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
  private seen:
    | {
        revision: number;
        reports: ReadonlyMap<WireGuardKey, PeerReport>;
        byKey: Map<WireGuardKey, SeenBy>;
        /** Who asked each peer to send first: the entries that differ for that one asker. */
        askedBy: Map<WireGuardKey, WireGuardKey[]>;
      }
    | undefined;
  private full: Built | undefined;
  private delta: Built | undefined;
  private positions: { device: DeviceState; indexOf: Map<WireGuardKey, number> } | undefined;

  /**
   * The JSON body for `asker`: everything, or with `delta` only what changed
   * after `delta.since`. Shared entries carry no punch requests: a request is
   * shown only to the peer it names (see punchRequestsFor), so the few
   * entries that ask `asker` to send first are encoded for it alone.
   */
  encode(device: DeviceState, asker: PeerState, revision: number, delta: PeerListDelta | undefined, reports: ReadonlyMap<WireGuardKey, PeerReport>, nowSeconds: number): Buffer {
    return Buffer.concat(this.encodeParts(device, asker, revision, delta, reports, nowSeconds));
  }

  /**
   * The same body as `encode`, as pieces to write in order: most are slices of
   * the shared encoding, so a 7.8 MB list sent to 256 clients at once is held
   * once, not 256 times.
   */
  encodeParts(device: DeviceState, asker: PeerState, revision: number, delta: PeerListDelta | undefined, reports: ReadonlyMap<WireGuardKey, PeerReport>, nowSeconds: number): Buffer[] {
    if (device.publicKey === null) throw new Error('the fang interface has no key');
    const { byKey: seenBy, askedBy } = this.seenAt(revision, reports);
    const built = delta ? this.buildDelta(device, revision, delta, reports, seenBy) : this.buildFull(device, revision, reports, seenBy);
    const askerSeen = seenBy.get(asker.publicKey);
    const you = {
      publicKey: asker.publicKey,
      endpoint: asker.endpoint && formatEndpoint(asker.endpoint),
      ...(askerSeen ? { seenBy: askerSeen.map((s) => ({ publicKey: s.publicKey, endpoint: formatEndpoint(s.endpoint) })) } : {}),
    };
    const personal: Buffer[] = [];
    const cut = new Set<number>();
    const own = built.peers.indexOf.get(asker.publicKey);
    if (own !== undefined) cut.add(own);
    for (const reporter of askedBy.get(asker.publicKey) ?? []) {
      const index = built.peers.indexOf.get(reporter);
      const requests = punchRequestsFor(reports.get(reporter)?.punchRequests, asker.publicKey, nowSeconds);
      if (index === undefined || requests.length === 0) continue;
      cut.add(index);
      const entry = serializePeerListEntry({ ...listEntry(built.peers.peerStates[index]!, reports, seenBy), punchRequests: requests });
      personal.push(Buffer.from(JSON.stringify(entry)));
    }
    const head = `{"version":${PEER_LIST_VERSION},"fang":${JSON.stringify({ publicKey: device.publicKey })},"you":${JSON.stringify(you)},"peers":[`;
    let tail = `],"revision":${revision}`;
    if (delta) tail += `,"since":${delta.since},"removed":${JSON.stringify([...delta.removed].filter((key) => key !== asker.publicKey))}`;
    tail += '}\n';
    const pieces = joinWithCommas([...without(built.peers, cut), ...personal]);
    return [Buffer.from(head), ...pieces, Buffer.from(tail)];
  }

  private seenAt(revision: number, reports: ReadonlyMap<WireGuardKey, PeerReport>): NonNullable<PeerListEncoder['seen']> {
    // Reports count as changed when they move the revision (the server touches the keys they concern).
    if (!this.seen || this.seen.revision !== revision || this.seen.reports !== reports) {
      const askedBy = new Map<WireGuardKey, WireGuardKey[]>();
      for (const [reporter, report] of reports) {
        for (const request of report.punchRequests ?? []) {
          const list = askedBy.get(request.publicKey);
          if (list) list.push(reporter);
          else askedBy.set(request.publicKey, [reporter]);
        }
      }
      this.seen = { revision, reports, byKey: gatherSeenBy(reports), askedBy };
    }
    return this.seen;
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
    const { punchRequests: _personal, ...shared } = listEntry(peer, reports, seenBy);
    const json = Buffer.from(JSON.stringify(serializePeerListEntry(shared)));
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
  return { body: Buffer.concat(pieces, offset), starts, indexOf, peerStates: peers };
}

/** The shared entries without those at the `cut` indices, as slices of the shared bytes (no copy), each run without its trailing comma. */
function without(peers: SharedPeers, cut: ReadonlySet<number>): Buffer[] {
  const count = peers.starts.length;
  if (cut.size === 0) return count === 0 ? [] : [peers.body];
  const runs: Buffer[] = [];
  let runStart = -1;
  for (let i = 0; i <= count; i++) {
    const kept = i < count && !cut.has(i);
    if (kept && runStart < 0) runStart = i;
    if (!kept && runStart >= 0) {
      const end = i < count ? peers.starts[i]! - 1 : peers.body.length;
      runs.push(peers.body.subarray(peers.starts[runStart]!, end));
      runStart = -1;
    }
  }
  return runs;
}

/** `parts` with a comma between each two. */
function joinWithCommas(parts: readonly Buffer[]): Buffer[] {
  return parts.flatMap((part, i) => (i === 0 ? [part] : [COMMA, part]));
}
