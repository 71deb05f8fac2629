import { createSocket, type Socket } from 'node:dgram';
import { formatIp, longestMatch, parseIp, unmapIpv4, type IpAddress, type IpPrefix } from '../ip/address';
import type { Logger } from '../log/logger';
import type { WireGuardDriver } from '../wireguard/driver';
import type { WireGuardKey } from '../wireguard/key';
import type { HandshakeTrigger } from './punch';

/**
 * UDP port, inside the tunnel, where every `snakebite client` daemon answers
 * probes from other peers. A peer without the daemon answers too, with its
 * kernel's ICMP port-unreachable: either way the prober's rx counter grows
 * only if the path works.
 */
export const PROBE_PORT = 51822;
const MAX_PROBE_BYTES = 64;
/** What the responder sends back: always these bytes, never the datagram it got. */
export const PROBE_REPLY = Buffer.from('snakebite-probe-reply');
/** Replies per second from one responder, and to one source. */
const REPLIES_PER_SECOND = 50;
const REPLIES_PER_SOURCE_PER_SECOND = 5;

export interface ProbeResponderOptions {
  /**
   * Whether a datagram from `source` comes from a peer: its address lies in a
   * peer's allowed IPs on the interface. Anyone else gets no answer. Omitted:
   * every source is answered (tests only).
   */
  readonly isPeer?: (source: IpAddress) => Promise<boolean>;
  /** UDP port; PROBE_PORT unless a test needs another. */
  readonly port?: number;
}

/**
 * Answers probes on the interface's overlay addresses. Bound to those
 * addresses only. It answers only peers (a source inside a peer's allowed
 * IPs, so the reply is routed back into the tunnel), with a fixed reply
 * rather than an echo, and at most 50 replies a second (5 per source): a
 * datagram from a host on the LAN, or a spoofed one bounced off a UDP echo
 * service, can no longer start an endless loop.
 */
export class ProbeResponder {
  private readonly sockets = new Map<string, Socket>();
  private readonly port: number;
  private second = 0;
  private sent = 0;
  private readonly sentTo = new Map<string, number>();
  /** Datagrams not answered, by reason; for tests and logs. */
  readonly ignored = { notPeer: 0, rateLimited: 0, tooLarge: 0, reply: 0 };

  constructor(
    private readonly logger: Logger,
    private readonly options: ProbeResponderOptions = {},
  ) {
    this.port = options.port ?? PROBE_PORT;
  }

  /** Whether the budget allows one more reply to `source` this second. */
  private allowReply(source: string): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.sent = 0;
      this.sentTo.clear();
    }
    const toSource = this.sentTo.get(source) ?? 0;
    if (this.sent >= REPLIES_PER_SECOND || toSource >= REPLIES_PER_SOURCE_PER_SECOND) return false;
    this.sent++;
    this.sentTo.set(source, toSource + 1);
    return true;
  }

  private async answer(socket: Socket, message: Buffer, remote: { address: string; port: number }): Promise<void> {
    // Never answer another responder, nor our own reply bounced back: either would loop.
    if (remote.port === PROBE_PORT || remote.port === this.port || message.equals(PROBE_REPLY)) return void this.ignored.reply++;
    if (message.length > MAX_PROBE_BYTES) return void this.ignored.tooLarge++;
    const source = parseIp(remote.address);
    if (!source || (this.options.isPeer && !(await this.options.isPeer(unmapIpv4(source))))) return void this.ignored.notPeer++;
    if (!this.allowReply(remote.address)) return void this.ignored.rateLimited++;
    socket.send(PROBE_REPLY, remote.port, remote.address);
  }

  /** Binds any overlay address not yet bound; call again when the interface's addresses change. */
  async bind(addresses: readonly IpAddress[]): Promise<void> {
    for (const address of addresses) {
      const host = formatIp(address);
      // Link-local addresses need a scope to bind, and no peer probes them.
      if (this.sockets.has(host) || address.zone !== undefined || (address.family === 6 && address.value >> 118n === 0x3fan)) continue;
      const socket = createSocket({ type: address.family === 4 ? 'udp4' : 'udp6', reuseAddr: false });
      socket.on('message', (message, remote) => {
        this.answer(socket, message, remote).catch(() => {});
      });
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind({ address: host, port: this.port, exclusive: true }, () => {
            socket.removeListener('error', reject);
            socket.on('error', () => {});
            resolve();
          });
        });
        this.sockets.set(host, socket);
        this.logger.debug('probe-responder-listening', { listen: host, port: this.port });
      } catch (error) {
        socket.close();
        this.logger.debug('probe-responder-unavailable', { listen: host, error: (error as Error).message });
      }
    }
  }

  close(): void {
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }
}

/**
 * `isPeer` for the responder: a source is a peer's when it lies in the
 * allowed IPs of any peer of the interface (the fang peer's range included:
 * a peer relayed through the fang, or not yet added, probes from inside it),
 * read through `driver` at most once per `maxAgeMs`.
 */
export function peerSourceCheck(driver: WireGuardDriver, maxAgeMs = 1000): (source: IpAddress) => Promise<boolean> {
  let cached: { prefixes: IpPrefix[]; at: number } | undefined;
  let reading: Promise<IpPrefix[]> | undefined;
  const prefixes = async (): Promise<IpPrefix[]> => {
    if (cached && Date.now() - cached.at < maxAgeMs) return cached.prefixes;
    reading ??= driver
      .readDevice()
      .then((device) => {
        const all = device.peers.flatMap((peer) => peer.allowedIps);
        cached = { prefixes: all, at: Date.now() };
        return all;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
  return async (source) => {
    try {
      return longestMatch(await prefixes(), source) !== undefined;
    } catch {
      return false;
    }
  };
}

/**
 * Probes each peer through its current endpoint and watches its rx counter:
 * a peer whose counter grows within `timeoutMs` answered. Two probes are sent,
 * the second halfway, in case the first met a busy NAT.
 */
export async function probePeers(
  driver: WireGuardDriver,
  targets: readonly { publicKey: WireGuardKey; probeAddress: IpAddress }[],
  send: HandshakeTrigger,
  timeoutMs: number,
): Promise<{ answered: Set<WireGuardKey>; silent: Set<WireGuardKey> }> {
  const answered = new Set<WireGuardKey>();
  if (targets.length === 0) return { answered, silent: new Set() };
  const rxOf = async () => new Map((await driver.readDevice()).peers.map((peer) => [peer.publicKey, peer.rxBytes]));
  const before = await rxOf();
  await send(targets.map((t) => t.probeAddress));
  const started = Date.now();
  let resent = false;
  for (let round = 0; round < 100 && Date.now() - started < timeoutMs; round++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await rxOf();
    for (const target of targets) {
      if ((now.get(target.publicKey) ?? 0) > (before.get(target.publicKey) ?? 0)) answered.add(target.publicKey);
    }
    if (answered.size === targets.length) break;
    if (!resent && Date.now() - started >= timeoutMs / 2) {
      resent = true;
      await send(targets.filter((t) => !answered.has(t.publicKey)).map((t) => t.probeAddress));
    }
  }
  const silent = new Set(targets.map((t) => t.publicKey).filter((key) => !answered.has(key)));
  return { answered, silent };
}
