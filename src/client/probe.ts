import { createSocket, type Socket } from 'node:dgram';
import { formatIp, type IpAddress } from '../ip/address';
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
const MAX_ECHO_BYTES = 64;

/**
 * Answers probes on the interface's overlay addresses. Bound to those
 * addresses only, so it is reachable through the tunnel and nowhere else.
 */
export class ProbeResponder {
  private readonly sockets = new Map<string, Socket>();

  constructor(private readonly logger: Logger) {}

  /** Binds any overlay address not yet bound; call again when the interface's addresses change. */
  async bind(addresses: readonly IpAddress[]): Promise<void> {
    for (const address of addresses) {
      const host = formatIp(address);
      // Link-local addresses need a scope to bind, and no peer probes them.
      if (this.sockets.has(host) || address.zone !== undefined || (address.family === 6 && address.value >> 118n === 0x3fan)) continue;
      const socket = createSocket({ type: address.family === 4 ? 'udp4' : 'udp6', reuseAddr: false });
      socket.on('message', (message, remote) => {
        // Never answer another responder: two of them would echo one datagram forever.
        if (message.length <= MAX_ECHO_BYTES && remote.port !== PROBE_PORT) socket.send(message, remote.port, remote.address);
      });
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind({ address: host, port: PROBE_PORT, exclusive: true }, () => {
            socket.removeListener('error', reject);
            socket.on('error', () => {});
            resolve();
          });
        });
        this.sockets.set(host, socket);
        this.logger.debug('probe-responder-listening', { listen: host, port: PROBE_PORT });
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
