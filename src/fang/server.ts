import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { formatIp, ipEquals, parseIp, unmapIpv4, type IpAddress } from '../ip/address';
import { describeError, SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';
import { parsePeerReport } from '../peer-list/parse';
import { PEER_LIST_LIMITS, type PeerReport } from '../peer-list/peer-list';
import { formatPeerListText, serializePeerList, serializePeerReport } from '../peer-list/serialize';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import type { WireGuardDriver } from '../wireguard/driver';
import { guardConnections, type ConnectionLimits, type ConnectionSource } from './connection-guard';
import { SharedDeviceView } from './device-view';
import { scopePeerList, settleChanges } from './list-scope';
import { learnableBy, mayLink, nameOf, type Policy } from './policy';
import { PunchRequestBook } from './punch-requests';
import { keepRelayFirewall, type RelayFirewallPort } from './relay-firewall';
import { RateLimitedLog } from './rate-limited-log';
import { buildPeerList, identifyAsker } from './peer-list-view';
import { PeerListEncoder } from './peer-list-encoder';
import { PeerWatch } from './peer-watch';

/** TCP port of the peer-list service when `--listen` gives none. */
export const DEFAULT_SERVER_PORT = 51821;

export interface FangServerOptions {
  readonly driver: WireGuardDriver;
  readonly listenAddress: IpAddress;
  readonly port: number;
  readonly logger: Logger;
  /** How long one interface read is shared between requests, in milliseconds. */
  readonly deviceMaxAgeMs?: number;
  /** How often the interface is read while clients wait for a change, in milliseconds. */
  readonly watchIntervalMs?: number;
  /** Connections held per peer and in all; see connection-guard.ts. */
  readonly connectionLimits?: ConnectionLimits;
  /** Who may learn whose endpoint; undefined: every peer learns every other. */
  readonly policy?: Policy;
  /** Limits relaying to the pairs the policy links (iptables on the real fang); none: relaying is not limited. */
  readonly relayFirewall?: RelayFirewallPort;
  /** Called with every answer's path and HTTP status (metrics). */
  readonly onReply?: (path: string, status: number) => void;
  /** More GET routes, answered only to peers like the peer list (the mesh page): path → body. */
  readonly peerRoutes?: ReadonlyMap<string, (context: PeerRouteContext) => { body: string; type: string }>;
}

/** What a peer-only route may show: the interface, the reports, who asks, and the policy in force (it must not show more than the policy lets the asker learn). */
export interface PeerRouteContext {
  readonly device: DeviceState;
  readonly reports: ReadonlyMap<WireGuardKey, PeerReport>;
  readonly asker: WireGuardKey;
  readonly policy: Policy | undefined;
}

/** Long polls held at once for one peer; more are answered at once. */
const MAX_WAITS_PER_PEER = 4;

/** Longest `wait` a client may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 60;

export interface FangServer {
  readonly port: number;
  readonly view: SharedDeviceView;
  readonly watch: PeerWatch;
  /** Puts a new policy in force: waiting clients are woken and every client gets a full list next. */
  setPolicy(policy: Policy | undefined): Promise<void>;
  /** The latest report of each peer. */
  readonly reports: ReadonlyMap<WireGuardKey, PeerReport>;
  close(): Promise<void>;
}

const ROUTES = new Set(['/v1/peers', '/v1/peers.txt']);
const REPORT_PATH = '/v1/report';

/** Reads a request body of at most `limit` bytes as UTF-8. */
function readBody(request: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        request.resume();
        reject(new Error(`a report is at most ${limit} bytes`));
      } else {
        chunks.push(chunk);
      }
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** undefined when absent, null when malformed or out of range. */
function optionalInteger(text: string | null, min: number, max: number): number | undefined | null {
  if (text === null) return undefined;
  if (!/^[0-9]{1,16}$/.test(text)) return null;
  const value = Number(text);
  return value >= min && value <= max ? value : null;
}

/**
 * Serves the peer list over HTTP on `listenAddress` only. The asker is the peer
 * whose allowed IPs contain the request's source address; anyone else gets 403.
 */
export async function startFangServer(options: FangServerOptions): Promise<FangServer> {
  const { driver, logger } = options;
  /** Long polls held per peer: one peer may not take every connection. */
  const waitingBy = new Map<WireGuardKey, number>();
  const view = new SharedDeviceView(driver, options.deviceMaxAgeMs ?? 200);
  const encoder = new PeerListEncoder();
  const watch = new PeerWatch(view, options.watchIntervalMs ?? 100, (error) =>
    logger.error('interface-read-failed', { error: describeError(error) }),
  );

  // Lines a stranger or a misbehaving peer can cause are rate-limited.
  const refusals = new RateLimitedLog(logger);
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  let policy = options.policy;
  /** Deltas from before this revision are not given: the policy changed what each peer may see. */
  let policyEpoch = 0;
  const named = (key: WireGuardKey) => ({ peer: key, name: nameOf(policy, key) });

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    // Listen for the hang-up before the first await: a 'close' during the interface read would be missed.
    const hangUp = new AbortController();
    response.on('close', () => hangUp.abort());
    const sourceText = request.socket.remoteAddress ?? '';
    const source = parseIp(sourceText);
    const [path = '', query = ''] = (request.url ?? '').split('?', 2);
    const reply = (status: number, body: string | Buffer | readonly Buffer[], type = 'text/plain; charset=utf-8') => {
      options.onReply?.(path, status);
      response.writeHead(status, {
        'content-type': type,
        'content-length': Array.isArray(body) ? body.reduce((sum: number, part: Buffer) => sum + part.length, 0) : Buffer.byteLength(body as string | Buffer),
        'cache-control': 'no-store',
        ...(status === 405 ? { allow: path === REPORT_PATH ? 'POST' : 'GET, HEAD' } : {}),
      });
      if (request.method === 'HEAD') return void response.end();
      if (!Array.isArray(body)) return void response.end(body as string | Buffer);
      const parts = body as readonly Buffer[];
      // A small reply goes out in one write; a large one as the shared slices of the encoded list, not a copy per asker.
      if (parts.reduce((sum, part) => sum + part.length, 0) < 65_536) return void response.end(Buffer.concat(parts));
      for (const part of parts) response.write(part);
      response.end();
    };

    if (path === REPORT_PATH) {
      if (request.method !== 'POST') {
        request.resume();
        return reply(405, 'a report is POSTed\n');
      }
      return receiveReport(request, source, reply);
    }
    // GET carries no body; drain anything sent so the socket stays usable.
    request.resume();
    const extra = options.peerRoutes?.get(path);
    if (!ROUTES.has(path) && !extra) return reply(404, 'not found; the peer list is at /v1/peers and /v1/peers.txt\n');
    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'only GET is served here\n');

    const params = new URLSearchParams(query);
    const since = optionalInteger(params.get('since'), 0, Number.MAX_SAFE_INTEGER);
    const wait = optionalInteger(params.get('wait'), 0, MAX_WAIT_SECONDS);
    if (since === null || wait === null) return reply(400, `since must be a revision and wait 0 to ${MAX_WAIT_SECONDS} seconds\n`);

    let current;
    try {
      current = await watch.refresh();
    } catch (error) {
      logger.error('interface-read-failed', { error: describeError(error) });
      return reply(503, 'the fang cannot read its WireGuard interface right now\n');
    }
    let asker = source ? identifyAsker(current.device, unmapIpv4(source)) : undefined;
    if (!asker) {
      refusals.warn('request-refused', { source: sourceText, path, reason: "source is in no peer's allowed IPs" });
      return reply(403, 'this service answers WireGuard peers of the fang only, through the tunnel\n');
    }
    if (extra) {
      const page = extra({ device: current.device, reports, asker: asker.publicKey, policy });
      return reply(200, page.body, page.type);
    }
    const holding = waitingBy.get(asker.publicKey) ?? 0;
    if (since !== undefined && wait && holding < MAX_WAITS_PER_PEER) {
      // Long poll: hold the request until a peer changes, the wait ends or the asker hangs up.
      waitingBy.set(asker.publicKey, holding + 1);
      current = undefined; // a parked request holds no interface state
      try {
        await watch.waitForChange(since, wait * 1000, hangUp.signal);
      } finally {
        const left = (waitingBy.get(asker.publicKey) ?? 1) - 1;
        if (left > 0) waitingBy.set(asker.publicKey, left);
        else waitingBy.delete(asker.publicKey);
      }
      if (hangUp.signal.aborted) return;
      try {
        current = await watch.refresh();
      } catch (error) {
        logger.error('interface-read-failed', { error: describeError(error) });
        return reply(503, 'the fang cannot read its WireGuard interface right now\n');
      }
      // The asker itself may have moved while it waited: report its endpoint as it is now.
      asker = identifyAsker(current.device, unmapIpv4(source!)) ?? asker;
    }
    // The text form has no way to say "removed": it is always the whole list (`since` only lets it wait).
    const raw = since === undefined || since < policyEpoch || path === '/v1/peers.txt' ? undefined : watch.changesSince(since);
    const changes = raw && settleChanges(raw, current.device);
    const delta = changes && since !== undefined ? { since, ...changes } : undefined;
    logger.debug('request-served', { ...named(asker.publicKey), source: formatIp(unmapIpv4(source!)), path, delta: delta !== undefined });
    if (path === '/v1/peers.txt' || policy) {
      // Under a policy each asker sees its own set of peers: built for it alone (policy.ts, list-scope.ts).
      const askerKey = asker.publicKey;
      const list = scopePeerList(buildPeerList(current.device, asker, current.revision, delta, reports), learnableBy(policy, askerKey), nowSeconds(), (key) => nameOf(policy, key));
      if (path === '/v1/peers.txt') return reply(200, formatPeerListText(list));
      return reply(200, `${JSON.stringify(serializePeerList(list))}\n`, 'application/json');
    }
    // The same document as serializePeerList(scopePeerList(buildPeerList(...))), encoded once per revision and shared.
    return reply(200, encoder.encodeParts(current.device, asker, current.revision, delta, reports, nowSeconds()), 'application/json');
  };

  /** The latest report of each peer, by key; lost on restart (clients report again on a full list). */
  const reports = new Map<WireGuardKey, PeerReport>();
  const punchBook = new PunchRequestBook();
  // A report wakes every waiting client; one reporter may do that at most once a second.
  const lastTouch = new Map<WireGuardKey, number>();
  const pendingTouch = new Map<WireGuardKey, { keys: Set<WireGuardKey>; timer: NodeJS.Timeout }>();
  const touchSoon = (reporter: WireGuardKey, keys: readonly WireGuardKey[]) => {
    const pending = pendingTouch.get(reporter);
    if (pending) {
      for (const key of keys) pending.keys.add(key);
      return;
    }
    const wait = 1000 - (Date.now() - (lastTouch.get(reporter) ?? 0));
    const fire = (all: readonly WireGuardKey[]) => {
      pendingTouch.delete(reporter);
      lastTouch.set(reporter, Date.now());
      watch.touch(all);
    };
    if (wait <= 0) return fire(keys);
    const entry = { keys: new Set(keys), timer: setTimeout(() => fire([...entry.keys]), wait) };
    pendingTouch.set(reporter, entry);
  };

  const receiveReport = async (request: IncomingMessage, source: IpAddress | undefined, reply: (status: number, body: string) => void): Promise<void> => {
    // Who asks is settled before a byte of the body is read.
    let device;
    try {
      ({ device } = await watch.refresh());
    } catch (error) {
      request.resume();
      logger.error('interface-read-failed', { error: describeError(error) });
      return reply(503, 'the fang cannot read its WireGuard interface right now\n');
    }
    const asker = source ? identifyAsker(device, unmapIpv4(source)) : undefined;
    if (!asker) {
      request.resume();
      refusals.warn('request-refused', { source: request.socket.remoteAddress, path: REPORT_PATH, reason: "source is in no peer's allowed IPs" });
      return reply(403, 'this service answers WireGuard peers of the fang only, through the tunnel\n');
    }
    let text: string;
    try {
      text = await readBody(request, PEER_LIST_LIMITS.maxReportBytes);
    } catch (error) {
      return reply(413, `${(error as Error).message}\n`);
    }
    let report: PeerReport;
    try {
      report = parsePeerReport(JSON.parse(text));
    } catch (error) {
      refusals.warn('report-refused', { ...named(asker.publicKey), reason: describeError(error) });
      return reply(400, `${error instanceof Error ? error.message : String(error)}\n`);
    }
    const before = reports.get(asker.publicKey);
    const known = { has: (key: WireGuardKey) => watch.peer(key) !== undefined }; // the interface as just read, without a set per report
    // Only observations of this fang's own peers are kept.
    const ours = (key: WireGuardKey) => known.has(key) && key !== asker.publicKey;
    report = {
      ...report,
      seen: [...new Map(report.seen.filter((s) => ours(s.publicKey)).map((s) => [s.publicKey, s])).values()],
    };
    const punchRequests = punchBook.take(asker.publicKey, report.punchRequests ?? [], ours, nowSeconds());
    report = { ...report, punchRequests };
    reports.set(asker.publicKey, report);
    for (const key of reports.keys()) {
      if (known.has(key)) continue;
      reports.delete(key);
      punchBook.forget(key);
    }
    if (!before || JSON.stringify(serializePeerReport(before)) !== JSON.stringify(serializePeerReport(report))) {
      logger.debug('report-received', { ...named(asker.publicKey), candidates: report.candidates.length, seen: report.seen.length });
      touchSoon(asker.publicKey, [asker.publicKey, ...report.seen.map((s) => s.publicKey), ...(before?.seen.map((s) => s.publicKey) ?? [])]);
    }
    return reply(204, '');
  };

  // Who a new connection comes from, before any HTTP, from a read of the
  // interface shared with requests: at most 2 s old for a known peer (a peer
  // removed since is refused within 2 s), and at most 0.5 s old before a
  // source is refused as a stranger (a new peer waits at most that long; a
  // flood of strangers costs at most two reads a second).
  let known: { device: DeviceState; at: number } | undefined;
  const readKnown = async () => (known = { device: (await watch.refresh()).device, at: Date.now() });
  const identifySource = async (source: IpAddress): Promise<ConnectionSource> => {
    if (!known || Date.now() - known.at >= 2000) await readKnown();
    let peer = identifyAsker(known!.device, source);
    if (!peer && Date.now() - known!.at >= 500) peer = identifyAsker((await readKnown()).device, source);
    const peers = known!.device.peers.length;
    if (peer) return { kind: 'peer', publicKey: peer.publicKey, peers, name: nameOf(policy, peer.publicKey) };
    // F itself, from its listen address (only F can send from it): answered, with 403, so `doctor` on F sees the server.
    return ipEquals(source, options.listenAddress) ? { kind: 'local' } : { kind: 'not-a-peer', peers };
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error('request-failed', { error: describeError(error) });
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
    });
  });
  // Bounds on what one client can hold open; the replies are small and fast.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;
  guardConnections(server, identifySource, refusals, options.connectionLimits);
  server.on('clientError', (error, socket) => {
    logger.debug('request-malformed', { error: error.message });
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  const host = formatIp(options.listenAddress);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new SnakebiteError(
          'SB_LISTEN_FAILED',
          `cannot listen on ${host} port ${options.port}: ${error.code ?? error.message}`,
          error.code === 'EADDRINUSE' ? 'another process holds that port; stop it or pick another with --listen IP:PORT' : undefined,
          { cause: error },
        ),
      );
    });
    // Every waiting peer reconnects at once when a change wakes them: a deep accept queue keeps that burst from being dropped.
    server.listen({ host, port: options.port, exclusive: true, backlog: 4096 }, () => resolve());
  });
  const relay = options.relayFirewall && keepRelayFirewall(options.relayFirewall, () => policy, async () => (await watch.refresh()).device, logger);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info('server-listening', { interface: driver.interfaceName, listen: host, port });

  return {
    port,
    view,
    watch,
    reports,
    setPolicy: async (next) => {
      policy = next;
      await relay?.sync();
      const { device } = await watch.refresh();
      watch.touch(device.peers.map((peer) => peer.publicKey));
      policyEpoch = watch.revision;
    },
    close: async () => {
      await relay?.stop();
      await new Promise<void>((resolve) => {
        watch.close();
        refusals.close();
        for (const pending of pendingTouch.values()) clearTimeout(pending.timer);
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
