/**
 * Per-peer WireGuard metrics under the names and labels of
 * prometheus_wireguard_exporter (interface, public_key, allowed_ips), so its
 * dashboards work on a Snakebite machine: bytes sent and received, and the
 * latest handshake as unix seconds (0 = never).
 */
import { formatPrefix } from '../ip/address';
import type { DeviceState } from '../wireguard/device-state';
import type { MetricFamily } from './exposition';

export function wireguardFamilies(device: DeviceState, names: ReadonlyMap<string, string> = new Map()): MetricFamily[] {
  const labels = (peer: DeviceState['peers'][number]) => ({
    interface: device.interfaceName,
    public_key: peer.publicKey,
    allowed_ips: peer.allowedIps.map(formatPrefix).join(','),
    ...(names.get(peer.publicKey) ? { friendly_name: names.get(peer.publicKey)! } : {}),
  });
  return [
    { name: 'wireguard_sent_bytes_total', help: 'Bytes sent to the peer', type: 'counter', samples: device.peers.map((p) => ({ labels: labels(p), value: p.txBytes })) },
    { name: 'wireguard_received_bytes_total', help: 'Bytes received from the peer', type: 'counter', samples: device.peers.map((p) => ({ labels: labels(p), value: p.rxBytes })) },
    { name: 'wireguard_latest_handshake_seconds', help: 'UNIX timestamp seconds of the last handshake', type: 'gauge', samples: device.peers.map((p) => ({ labels: labels(p), value: p.latestHandshake })) },
  ];
}
