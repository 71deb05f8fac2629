import { request } from 'node:http';
import { formatIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { PeerReport, PunchRequest } from '../peer-list/peer-list';
import { serializePeerReport } from '../peer-list/serialize';
import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardKey } from '../wireguard/key';
import type { Endpoint } from '../ip/address';

/** A direct session younger than this is worth reporting where we see its peer. */
const SEEN_WITHIN_SECONDS = 180;

/** What to tell the fang: our ListenPort, our LAN candidates, and where we see peers we have a direct session with. */
export function buildReport(device: DeviceState, fangKey: WireGuardKey, candidates: readonly Endpoint[], nowSeconds: number, punchRequests: readonly PunchRequest[] = []): PeerReport {
  return {
    ...(punchRequests.length ? { punchRequests } : {}),
    listenPort: device.listenPort,
    candidates,
    seen: device.peers
      .filter((peer) => peer.publicKey !== fangKey && peer.endpoint && peer.latestHandshake > 0 && nowSeconds - peer.latestHandshake <= SEEN_WITHIN_SECONDS)
      .map((peer) => ({ publicKey: peer.publicKey, endpoint: peer.endpoint! })),
  };
}

/** POSTs a report to the fang's `/v1/report` through the tunnel; resolves when it answered 204. */
export function postReport(server: IpAddress, port: number, report: PeerReport, timeoutMs: number): Promise<void> {
  const host = formatIp(server);
  const body = JSON.stringify(serializePeerReport(report));
  return new Promise((resolve, reject) => {
    const finish = (error?: SnakebiteError) => {
      clearTimeout(deadline);
      // Whatever the fang sends with its answer is not read: a report wants only the status.
      req.destroy();
      if (error) reject(error);
      else resolve();
    };
    const req = request(
      { host, port, path: '/v1/report', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (response) => {
        if (response.statusCode === 204) finish();
        else if (response.statusCode === 404) finish(new SnakebiteError('SB_FETCH_FAILED', 'the fang does not take reports (an older snakebite server)'));
        else finish(new SnakebiteError('SB_FETCH_FAILED', `the fang answered the report with HTTP ${response.statusCode}`));
      },
    );
    const deadline = setTimeout(() => finish(new SnakebiteError('SB_FETCH_TIMEOUT', `the fang did not answer the report within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => finish(new SnakebiteError('SB_FETCH_FAILED', `report to the fang failed: ${error.message}`)));
    req.end(body);
  });
}
