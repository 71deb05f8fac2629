import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { formatIp, parseIp, unmapIpv4, type IpAddress } from '../ip/address';
import type { WireGuardKey } from '../wireguard/key';
import type { RateLimitedLog } from './rate-limited-log';

/** How many connections the fang holds open, per peer and in all. */
export interface ConnectionLimits {
  /** Open connections one peer may hold (long polls, a report, a `status`). */
  readonly perPeer: number;
  /** The global limit is `perPeer` × peers + this. */
  readonly headroom: number;
  /** Connections while the interface cannot be read (answered 503), and from the fang itself (answered 403). */
  readonly unknown: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { perPeer: 8, headroom: 64, unknown: 16 };

/** Who a connection comes from, as far as the interface says at accept time. */
export type ConnectionSource =
  | { kind: 'peer'; publicKey: WireGuardKey; peers: number; name?: string | undefined }
  | { kind: 'not-a-peer'; peers: number }
  /** The interface could not be read: the request will get 503. */
  | { kind: 'unknown' }
  /** The fang itself (its listen address): no peer, but `doctor` on F checks that the server answers (403). */
  | { kind: 'local' };

export type Admission =
  | { kind: 'admit'; owner: string }
  | { kind: 'refuse'; why: 'not-a-peer' | 'peer-limit' | 'global-limit' | 'unknown-limit' | 'local-limit'; limit: number };

/** Open connections now: in all, and by owner (a peer's key, or `?` while the interface is unreadable). */
export interface OpenConnections {
  readonly total: number;
  readonly byOwner: ReadonlyMap<string, number>;
}

/** Whether to take a new connection: pure, so every limit is a table row in the tests. */
export function decideAdmission(source: ConnectionSource, open: OpenConnections, limits: ConnectionLimits): Admission {
  if (source.kind === 'not-a-peer') return { kind: 'refuse', why: 'not-a-peer', limit: 0 };
  if (source.kind === 'local') {
    const held = open.byOwner.get('local') ?? 0;
    return held < limits.unknown ? { kind: 'admit', owner: 'local' } : { kind: 'refuse', why: 'local-limit', limit: limits.unknown };
  }
  if (source.kind === 'unknown') {
    const held = open.byOwner.get('?') ?? 0;
    return held < limits.unknown ? { kind: 'admit', owner: '?' } : { kind: 'refuse', why: 'unknown-limit', limit: limits.unknown };
  }
  const global = source.peers * limits.perPeer + limits.headroom;
  if (open.total >= global) return { kind: 'refuse', why: 'global-limit', limit: global };
  const held = open.byOwner.get(source.publicKey) ?? 0;
  if (held >= limits.perPeer) return { kind: 'refuse', why: 'peer-limit', limit: limits.perPeer };
  return { kind: 'admit', owner: source.publicKey };
}

const REASONS: Record<Extract<Admission, { kind: 'refuse' }>['why'], string> = {
  'not-a-peer': "source is in no peer's allowed IPs",
  'peer-limit': 'this peer already holds as many connections as one peer may',
  'global-limit': 'the fang holds as many connections as its peers may',
  'unknown-limit': 'the interface cannot be read and enough requests already wait for it',
  'local-limit': 'the fang itself already holds as many connections as it may',
};

/**
 * Decides at accept time, before a byte of HTTP is read, whether the fang
 * takes a connection: the socket is created paused (`pauseOnConnect`), and
 * only an admitted one is handed to the HTTP server. A non-peer or a peer
 * over its limit costs one `accept` and one `close`.
 */
export function guardConnections(
  server: Server,
  /** Who `source` is; may read the interface (shared and cached by the caller). */
  identify: (source: IpAddress) => Promise<ConnectionSource>,
  log: RateLimitedLog,
  limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
): { readonly open: OpenConnections } {
  const byOwner = new Map<string, number>();
  const open = { total: 0, byOwner };
  const [httpListener] = server.listeners('connection') as ((socket: Socket) => void)[];
  if (!httpListener) throw new Error('guardConnections: the HTTP server has no connection listener');
  server.removeListener('connection', httpListener);
  (server as unknown as { pauseOnConnect: boolean }).pauseOnConnect = true;
  server.on('connection', (socket: Socket) => {
    const text = socket.remoteAddress ?? '';
    const parsed = parseIp(text);
    const source = parsed ? unmapIpv4(parsed) : undefined;
    socket.on('error', () => {});
    (source ? identify(source) : Promise.resolve<ConnectionSource>({ kind: 'not-a-peer', peers: 0 }))
      .catch((): ConnectionSource => ({ kind: 'unknown' }))
      .then((who) => {
        if (socket.destroyed) return;
        const decision = decideAdmission(who, open, limits);
        if (decision.kind === 'refuse') {
          if (decision.why === 'not-a-peer') log.warn('request-refused', { source: source ? formatIp(source) : text, reason: REASONS[decision.why] });
          else log.warn('connection-limit', { source: source ? formatIp(source) : text, ...(who.kind === 'peer' ? { peer: who.publicKey, name: who.name } : {}), limit: decision.limit, reason: REASONS[decision.why] });
          socket.destroy();
          return;
        }
        open.total++;
        byOwner.set(decision.owner, (byOwner.get(decision.owner) ?? 0) + 1);
        socket.once('close', () => {
          open.total--;
          const left = (byOwner.get(decision.owner) ?? 1) - 1;
          if (left > 0) byOwner.set(decision.owner, left);
          else byOwner.delete(decision.owner);
        });
        httpListener.call(server, socket);
        socket.resume();
      });
  });
  return { open };
}
