import { formatEndpoint, formatPrefix } from '../ip/address';
import type { PeerList, PeerListEntry, PeerReport } from './peer-list';

/** The JSON body of `GET /v1/peers`; `parsePeerList(JSON.parse(JSON.stringify(x)))` gives the list back. */
export function serializePeerList(list: PeerList): unknown {
  return {
    version: list.version,
    fang: { publicKey: list.fang.publicKey },
    you: {
      publicKey: list.you.publicKey,
      endpoint: list.you.endpoint && formatEndpoint(list.you.endpoint),
      ...(list.you.name !== undefined ? { name: list.you.name } : {}),
      ...(list.you.seenBy ? { seenBy: list.you.seenBy.map((s) => ({ publicKey: s.publicKey, endpoint: formatEndpoint(s.endpoint) })) } : {}),
    },
    peers: list.peers.map(serializePeerListEntry),
    ...(list.revision !== undefined ? { revision: list.revision } : {}),
    ...(list.since !== undefined ? { since: list.since } : {}),
    ...(list.removed !== undefined ? { removed: list.removed } : {}),
  };
}

/** One entry of `peers` in the JSON body. */
export function serializePeerListEntry(peer: PeerListEntry): unknown {
  return {
    publicKey: peer.publicKey,
    ...(peer.name !== undefined ? { name: peer.name } : {}),
    endpoint: peer.endpoint && formatEndpoint(peer.endpoint),
    allowedIps: peer.allowedIps.map(formatPrefix),
    latestHandshake: peer.latestHandshake,
    ...(peer.listenPort !== undefined ? { listenPort: peer.listenPort } : {}),
    ...(peer.candidates ? { candidates: peer.candidates.map(formatEndpoint) } : {}),
    ...(peer.seenBy ? { seenBy: peer.seenBy.map((s) => ({ publicKey: s.publicKey, endpoint: formatEndpoint(s.endpoint) })) } : {}),
    ...(peer.punchRequests ? { punchRequests: peer.punchRequests.map((r) => ({ publicKey: r.publicKey, at: r.at })) } : {}),
  };
}

/**
 * The body of `GET /v1/peers.txt`: one `<public-key> <endpoint>` line per peer
 * with a known endpoint, like the seed's server, so that
 * `while read key endpoint; do wg set wg0 peer "$key" endpoint "$endpoint"; done` works.
 */
export function formatPeerListText(list: PeerList): string {
  return list.peers
    .filter((peer) => peer.endpoint !== null)
    .map((peer) => `${peer.publicKey} ${formatEndpoint(peer.endpoint!)}\n`)
    .join('');
}

/** The JSON body of `POST /v1/report`. */
export function serializePeerReport(report: PeerReport): unknown {
  return {
    listenPort: report.listenPort,
    candidates: report.candidates.map(formatEndpoint),
    seen: report.seen.map((s) => ({ publicKey: s.publicKey, endpoint: formatEndpoint(s.endpoint) })),
    ...(report.punchRequests?.length ? { punchRequests: report.punchRequests.map((r) => ({ publicKey: r.publicKey, at: r.at })) } : {}),
  };
}
