import { endpointAddressProblem, parseEndpoint, parsePrefix, type Endpoint, type IpPrefix } from '../ip/address';
import { SnakebiteError } from '../errors';
import { isWireGuardKey } from '../wireguard/key';
import { PEER_LIST_LIMITS, PEER_LIST_VERSION, type PeerList, type PeerListEntry, type PeerReport, type PunchRequest, type RejectedEntry } from './peer-list';

export interface ParsedPeerList {
  readonly list: PeerList;
  /** Entries of `peers` that were malformed and left out; the rest of the list is still good. */
  readonly rejected: readonly RejectedEntry[];
}

function malformed(path: string, what: string): SnakebiteError {
  return new SnakebiteError('SB_REPLY_MALFORMED', `peer list: ${path}: ${what}`, 'the fang server sent a reply this client cannot use; check that both run the same Snakebite version');
}

/** `"peers[1].listenPort: expected …"` as its path and its reason. */
function fieldError(text: string): [string, string] {
  const colon = text.indexOf(': ');
  return [text.slice(0, colon), text.slice(colon + 2)];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A short quote of `value` for an error message; never throws, however deep or large the value. */
function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // JSON.stringify recurses: a hostile reply nested a million deep overflows the stack.
    text = Array.isArray(value) ? 'an array nested too deeply' : 'an object nested too deeply';
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function parseEndpointField(value: unknown): Endpoint | null | string {
  if (value === null) return null;
  if (typeof value !== 'string') return `expected ip:port or null, got ${show(value)}`;
  const endpoint = parseEndpoint(value);
  if (!endpoint) return `expected ip:port or [ipv6]:port, got ${show(value)}`;
  const problem = endpointAddressProblem(endpoint.address);
  return problem ? `${show(value)} is ${problem}` : endpoint;
}

/**
 * Validates a decoded `GET /v1/peers` body. The envelope (version, fang, you,
 * peers) must be right or the whole reply is refused with SB_REPLY_MALFORMED;
 * a bad entry inside `peers` is only dropped and reported in `rejected`, so
 * one broken peer cannot keep a client from reaching the others.
 */
export function parsePeerList(body: unknown): ParsedPeerList {
  if (!isRecord(body)) throw malformed('(root)', `expected an object, got ${show(body)}`);
  if (body.version !== PEER_LIST_VERSION) {
    throw malformed('version', `expected ${PEER_LIST_VERSION}, got ${show(body.version)}`);
  }
  if (!isRecord(body.fang) || !isWireGuardKey(body.fang.publicKey)) {
    throw malformed('fang.publicKey', `expected a WireGuard public key, got ${show(isRecord(body.fang) ? body.fang.publicKey : body.fang)}`);
  }
  if (!isRecord(body.you) || !isWireGuardKey(body.you.publicKey)) {
    throw malformed('you.publicKey', `expected a WireGuard public key, got ${show(isRecord(body.you) ? body.you.publicKey : body.you)}`);
  }
  const youEndpoint = parseEndpointField(body.you.endpoint);
  if (typeof youEndpoint === 'string') throw malformed('you.endpoint', youEndpoint);
  const youSeenBy = body.you.seenBy === undefined ? undefined : parseSeen(body.you.seenBy, 'you.seenBy');
  if (typeof youSeenBy === 'string') throw malformed(...fieldError(youSeenBy));
  if (!Array.isArray(body.peers)) throw malformed('peers', `expected an array, got ${show(body.peers)}`);
  if (body.peers.length > PEER_LIST_LIMITS.maxPeers) {
    throw malformed('peers', `${body.peers.length} entries, more than the limit of ${PEER_LIST_LIMITS.maxPeers}`);
  }

  const revision = parseRevision(body.revision, 'revision');
  const since = parseRevision(body.since, 'since');
  let removed: string[] | undefined;
  if (body.removed !== undefined) {
    if (!Array.isArray(body.removed) || body.removed.length > PEER_LIST_LIMITS.maxPeers || !body.removed.every(isWireGuardKey)) {
      throw malformed('removed', `expected an array of WireGuard public keys, got ${show(body.removed)}`);
    }
    removed = body.removed as string[];
  }

  const total = body.peers.reduce((sum: number, item: unknown) => sum + (isRecord(item) && Array.isArray(item.allowedIps) ? item.allowedIps.length : 0), 0);
  if (total > PEER_LIST_LIMITS.maxAllowedIpsTotal) {
    throw malformed('peers', `${total} allowed IPs in all, more than the limit of ${PEER_LIST_LIMITS.maxAllowedIpsTotal}`);
  }
  const peers: PeerListEntry[] = [];
  const rejected: RejectedEntry[] = [];
  const seen = new Set<string>();
  body.peers.forEach((item: unknown, index: number) => {
    const result = parseEntry(item, `peers[${index}]`);
    if ('reason' in result) {
      rejected.push(result);
    } else if (seen.has(result.publicKey)) {
      rejected.push({ path: `peers[${index}].publicKey`, publicKey: result.publicKey, reason: 'listed twice; the first entry is used' });
    } else {
      seen.add(result.publicKey);
      peers.push(result);
    }
  });

  return {
    list: {
      version: PEER_LIST_VERSION,
      fang: { publicKey: body.fang.publicKey },
      you: { publicKey: body.you.publicKey, endpoint: youEndpoint, ...nameField(body.you.name), ...(youSeenBy ? { seenBy: youSeenBy } : {}) },
      peers,
      ...(revision !== undefined ? { revision } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(removed !== undefined ? { removed } : {}),
    },
    rejected,
  };
}

const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

/**
 * A friendly name from the fang's policy: shown in `status` and logs, so only
 * 1 to 32 letters, digits, ".", "_", "-"; anything else (control characters,
 * escapes) is left out rather than refusing the entry over a label.
 */
function nameField(value: unknown): { name?: string } {
  return typeof value === 'string' && PEER_NAME.test(value) ? { name: value } : {};
}

function parseRevision(value: unknown, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw malformed(path, `expected a non-negative integer, got ${show(value)}`);
  }
  return value;
}

function parseEntry(item: unknown, path: string): PeerListEntry | RejectedEntry {
  if (!isRecord(item)) return { path, reason: `expected an object, got ${show(item)}` };
  const publicKey = item.publicKey;
  if (!isWireGuardKey(publicKey)) return { path: `${path}.publicKey`, reason: `expected a WireGuard public key, got ${show(publicKey)}` };
  const reject = (field: string, reason: string): RejectedEntry => ({ path: `${path}.${field}`, publicKey, reason });

  const endpoint = parseEndpointField(item.endpoint);
  if (typeof endpoint === 'string') return reject('endpoint', endpoint);

  if (!Array.isArray(item.allowedIps)) return reject('allowedIps', `expected an array, got ${show(item.allowedIps)}`);
  if (item.allowedIps.length > PEER_LIST_LIMITS.maxAllowedIpsPerPeer) {
    return reject('allowedIps', `${item.allowedIps.length} entries, more than the limit of ${PEER_LIST_LIMITS.maxAllowedIpsPerPeer}`);
  }
  const allowedIps: IpPrefix[] = [];
  for (const [i, text] of item.allowedIps.entries()) {
    const prefix = typeof text === 'string' ? parsePrefix(text) : undefined;
    if (!prefix) return reject(`allowedIps[${i}]`, `expected a prefix like 10.10.10.2/32, got ${show(text)}`);
    allowedIps.push(prefix);
  }

  const latestHandshake = item.latestHandshake;
  if (typeof latestHandshake !== 'number' || !Number.isSafeInteger(latestHandshake) || latestHandshake < 0) {
    return reject('latestHandshake', `expected unix seconds (0 for never), got ${show(latestHandshake)}`);
  }
  const extras = parseExtras(item);
  if (typeof extras === 'string') return reject(...fieldError(extras));
  return { publicKey, ...nameField(item.name), endpoint, allowedIps, latestHandshake, ...extras };
}

function parsePort(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
}

function parseEndpointList(value: unknown, path: string, max: number): Endpoint[] | string {
  if (!Array.isArray(value) || value.length > max) return `${path}: expected an array of at most ${max} endpoints, got ${show(value)}`;
  const endpoints: Endpoint[] = [];
  for (const [i, text] of value.entries()) {
    const endpoint = parseEndpointField(text);
    if (endpoint === null || typeof endpoint === 'string') return `${path}[${i}]: ${endpoint ?? 'expected an endpoint, got null'}`;
    endpoints.push(endpoint);
  }
  return endpoints;
}

function parseSeen(value: unknown, path: string): { publicKey: string; endpoint: Endpoint }[] | string {
  if (!Array.isArray(value) || value.length > PEER_LIST_LIMITS.maxPeers) return `${path}: expected an array, got ${show(value)}`;
  const seen: { publicKey: string; endpoint: Endpoint }[] = [];
  for (const [i, item] of value.entries()) {
    if (!isRecord(item) || !isWireGuardKey(item.publicKey)) return `${path}[${i}].publicKey: expected a WireGuard public key`;
    const endpoint = parseEndpointField(item.endpoint);
    if (endpoint === null || typeof endpoint === 'string') return `${path}[${i}].endpoint: ${endpoint ?? 'expected an endpoint, got null'}`;
    seen.push({ publicKey: item.publicKey, endpoint });
  }
  return seen;
}

function parsePunchRequests(value: unknown, path: string): PunchRequest[] | string {
  if (!Array.isArray(value) || value.length > PEER_LIST_LIMITS.maxPeers) return `${path}: expected an array, got ${show(value)}`;
  const requests: PunchRequest[] = [];
  for (const [i, item] of value.entries()) {
    if (!isRecord(item) || !isWireGuardKey(item.publicKey)) return `${path}[${i}].publicKey: expected a WireGuard public key`;
    if (typeof item.at !== 'number' || !Number.isSafeInteger(item.at) || item.at < 0) return `${path}[${i}].at: expected unix seconds, got ${show(item.at)}`;
    requests.push({ publicKey: item.publicKey, at: item.at });
  }
  return requests;
}

/** The optional fields a peer's report adds to its entry; a string names what is wrong (`field: reason`). */
function parseExtras(item: Record<string, unknown>): Pick<PeerListEntry, 'listenPort' | 'candidates' | 'seenBy' | 'punchRequests'> | string {
  const extras: { listenPort?: number; candidates?: Endpoint[]; seenBy?: { publicKey: string; endpoint: Endpoint }[]; punchRequests?: PunchRequest[] } = {};
  if (item.listenPort !== undefined) {
    const port = parsePort(item.listenPort);
    if (port === undefined) return `listenPort: expected a port from 1 to 65535, got ${show(item.listenPort)}`;
    extras.listenPort = port;
  }
  if (item.candidates !== undefined) {
    const candidates = parseEndpointList(item.candidates, 'candidates', PEER_LIST_LIMITS.maxCandidates);
    if (typeof candidates === 'string') return candidates;
    extras.candidates = candidates;
  }
  if (item.seenBy !== undefined) {
    const seenBy = parseSeen(item.seenBy, 'seenBy');
    if (typeof seenBy === 'string') return seenBy;
    extras.seenBy = seenBy;
  }
  if (item.punchRequests !== undefined) {
    const requests = parsePunchRequests(item.punchRequests, 'punchRequests');
    if (typeof requests === 'string') return requests;
    extras.punchRequests = requests;
  }
  return extras;
}

/**
 * Validates a decoded `POST /v1/report` body. Throws SB_REPLY_MALFORMED (the
 * fang answers 400 with the message) naming the first bad field.
 */
export function parsePeerReport(body: unknown): PeerReport {
  const malformed = (path: string, what: string) =>
    new SnakebiteError('SB_REPLY_MALFORMED', `report: ${path}: ${what}`, 'the client sent a report this fang cannot use; check that both run the same Snakebite version');
  if (!isRecord(body)) throw malformed('(root)', `expected an object, got ${show(body)}`);
  const listenPort = parsePort(body.listenPort);
  if (listenPort === undefined) throw malformed('listenPort', `expected a port from 1 to 65535, got ${show(body.listenPort)}`);
  const candidates = parseEndpointList(body.candidates ?? [], 'candidates', PEER_LIST_LIMITS.maxCandidates);
  if (typeof candidates === 'string') throw malformed(...fieldError(candidates));
  const seen = parseSeen(body.seen ?? [], 'seen');
  if (typeof seen === 'string') throw malformed(...fieldError(seen));
  if (body.punchRequests === undefined) return { listenPort, candidates, seen };
  const punchRequests = parsePunchRequests(body.punchRequests, 'punchRequests');
  if (typeof punchRequests === 'string') throw malformed(...fieldError(punchRequests));
  return { listenPort, candidates, seen, punchRequests };
}
