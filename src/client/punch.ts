import { createSocket } from 'node:dgram';
import { formatIp, type IpAddress } from '../ip/address';
import { PROBE_PORT } from './probe';

/**
 * Makes WireGuard start a handshake with each peer now: one empty datagram to
 * an overlay address of the peer leaves through the interface, and WireGuard,
 * having no session, sends a handshake initiation at once instead of after a
 * keepalive period or the 5 s rekey timeout.
 */
export type HandshakeTrigger = (overlayAddresses: readonly IpAddress[]) => Promise<void>;

export const sendProbeDatagrams: HandshakeTrigger = async (addresses) => {
  for (const family of [4, 6] as const) {
    const targets = addresses.filter((address) => address.family === family);
    if (targets.length === 0) continue;
    const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    try {
      await Promise.all(
        targets.map(
          (address) =>
            new Promise<void>((resolve) => {
              // A send error (no route yet, interface going down) only means no early punch.
              socket.send(Buffer.alloc(0), PROBE_PORT, formatIp(address), () => resolve());
            }),
        ),
      );
    } finally {
      socket.close();
    }
  }
};
