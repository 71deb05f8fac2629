/**
 * The fang server's metrics: requests by path and outcome, peers, endpoint
 * changes F saw, clients waiting on a long poll, relayed pairs, and the bytes
 * F forwarded between peers; plus the per-peer WireGuard metrics under
 * prometheus_wireguard_exporter's names.
 */
import type { MeshView } from '../fang/mesh';
import type { DeviceState } from '../wireguard/device-state';
import { formatEndpoint, type IpAddress } from '../ip/address';
import type { FangServer } from '../fang/server';
import type { Logger } from '../log/logger';
import { readForwardedBytes } from './forwarded';
import { startMetricsServer } from './http';
import { LabelledCounter, renderExposition, type MetricFamily } from './exposition';
import { wireguardFamilies } from './wireguard';

const PATHS = new Set(['/v1/peers', '/v1/peers.txt', '/v1/report', '/mesh', '/v1/mesh.json']);

/** An HTTP status as a bounded outcome label. */
export function outcomeOf(status: number): string {
  if (status === 200 || status === 204) return 'ok';
  if (status === 403) return 'refused';
  if (status === 404) return 'not-found';
  if (status === 503) return 'unavailable';
  if (status >= 400 && status < 500) return 'bad-request';
  return 'error';
}

export interface FangSnapshot {
  readonly device: DeviceState;
  readonly mesh: MeshView;
  readonly waiting: number;
  /** undefined when no FORWARD rule counts IF-to-IF traffic. */
  readonly forwardedBytes: number | undefined;
}

export class FangMetrics {
  private readonly requests = new LabelledCounter();
  private endpointChanges = 0;
  private endpoints = new Map<string, string | null>();

  request(path: string, status: number): void {
    this.requests.inc(`${PATHS.has(path) ? path : 'other'} ${outcomeOf(status)}`);
  }

  /** Counts peers whose endpoint differs from the last read (a NAT rebind, a roaming laptop). */
  observeDevice(device: DeviceState): void {
    const next = new Map(device.peers.map((peer) => [peer.publicKey, peer.endpoint ? formatEndpoint(peer.endpoint) : null]));
    for (const [key, endpoint] of next) {
      const before = this.endpoints.get(key);
      if (before !== undefined && endpoint !== null && before !== endpoint) this.endpointChanges++;
    }
    this.endpoints = next;
  }

  render(snapshot: FangSnapshot): string {
    this.observeDevice(snapshot.device);
    const names = new Map(snapshot.mesh.peers.filter((p) => p.name).map((p) => [p.publicKey, p.name!]));
    const paths = ['direct', 'lan', 'relayed', 'none'] as const;
    const families: MetricFamily[] = [
      {
        name: 'snakebite_fang_requests_total',
        help: 'Requests answered by the fang server, by path and outcome (ok, refused, bad-request, not-found, unavailable, error)',
        type: 'counter',
        samples: this.requests.entries().map(([key, value]) => {
          const [path, outcome] = key.split(' ');
          return { labels: { path: path!, outcome: outcome! }, value };
        }),
      },
      { name: 'snakebite_fang_peers', help: 'Peers of the fang interface', type: 'gauge', samples: [{ labels: { interface: snapshot.device.interfaceName }, value: snapshot.device.peers.length }] },
      { name: 'snakebite_fang_endpoint_changes_total', help: 'Times F saw a peer at a new endpoint', type: 'counter', samples: [{ value: this.endpointChanges }] },
      { name: 'snakebite_fang_waiting_clients', help: 'Client requests held open until a peer changes (long polls)', type: 'gauge', samples: [{ value: snapshot.waiting }] },
      { name: 'snakebite_fang_relayed_pairs', help: 'Pairs of peers with live sessions to F that report no direct session with each other', type: 'gauge', samples: [{ value: snapshot.mesh.pairs.filter((p) => p.path === 'relayed').length }] },
      { name: 'snakebite_fang_pairs', help: 'Pairs of peers by path as the reports show it', type: 'gauge', samples: paths.map((path) => ({ labels: { path }, value: snapshot.mesh.pairs.filter((p) => p.path === path).length })) },
      ...(snapshot.forwardedBytes === undefined
        ? []
        : [{ name: 'snakebite_fang_forwarded_bytes_total', help: 'Bytes F forwarded from peer to peer (counted by FORWARD rules from the interface to itself)', type: 'counter' as const, samples: [{ labels: { interface: snapshot.device.interfaceName }, value: snapshot.forwardedBytes }] }]),
      ...wireguardFamilies(snapshot.device, names),
    ];
    return renderExposition(families);
  }
}

/** Serves the fang's metrics on `address`:`port`, and samples endpoints every 2 s between scrapes. */
export async function serveFangMetrics(options: {
  readonly metrics: FangMetrics;
  readonly server: FangServer;
  readonly interfaceName: string;
  readonly address: IpAddress;
  readonly port: number;
  readonly mesh: (device: DeviceState, reports: FangServer['reports']) => MeshView;
  readonly logger: Logger;
}): Promise<{ close(): Promise<void> }> {
  const { metrics, server } = options;
  const http = await startMetricsServer(
    options.address,
    options.port,
    async () => {
      const device = await server.view.read();
      return metrics.render({ device, mesh: options.mesh(device, server.reports), waiting: server.watch.waiting, forwardedBytes: await readForwardedBytes(options.interfaceName) });
    },
    options.logger,
  );
  const sampler = setInterval(() => void server.view.read().then((device) => metrics.observeDevice(device), () => undefined), 2000);
  return {
    close: async () => {
      clearInterval(sampler);
      await http.close();
    },
  };
}
