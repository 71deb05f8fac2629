import { forwardingEnabled } from '../fang/forwarding';
import { assertListenAddressOnInterface } from '../fang/listen-address';
import { ignoreHangup, loadPolicyFile, reloadPolicyOnHangup } from '../fang/policy-file';
import { RelayFirewall } from '../fang/relay-firewall';
import { DEFAULT_SERVER_PORT, startFangServer } from '../fang/server';
import { WgCommandDriver } from '../wireguard/wg-command-driver';
import { meshBuilder, meshRoutes, MESH_PAGE_PATH } from '../fang/mesh-page';
import { addressesOf } from '../fang/listen-address';
import { FangMetrics, serveFangMetrics } from '../metrics/fang-metrics';
import { assertMetricsAddress, DEFAULT_METRICS_PORT } from '../metrics/http';
import { LOGGING_OPTIONS, loggerFromFlags, parseAddressAndPort, parseCommandArgs, parseInterfaceName, requireString, shutdownSignal, settingsHelp } from './options';

export const SERVER_HELP = `Usage: snakebite server --interface IF --listen IP[:PORT] [options]

Runs on the fang: serves the peer list to WireGuard peers, inside the tunnel.
Answers only on IP, which must be an address of IF; a request is answered only
when its source address lies in a peer's AllowedIPs (that peer is the asker).

  -i, --interface IF     the fang's WireGuard interface (e.g. wg0)
  -l, --listen IP[:PORT] an address of IF to serve on; PORT defaults to ${DEFAULT_SERVER_PORT} (TCP)
      --policy FILE      who may learn whose endpoint (and be relayed): names,
                         groups and "allow GROUP GROUP" lines; see docs/policy.md.
                         Reloaded on SIGHUP; a bad file is refused, the old one stays.
                         Without it every peer learns every other
      --metrics IP[:PORT] serve Prometheus metrics at http://IP:PORT/metrics; IP must be
                         an address of IF (or loopback); PORT defaults to ${DEFAULT_METRICS_PORT}
      --log-level LEVEL  debug, info, warn or error (default info)
      --log-format FMT   text or json (default text)
${settingsHelp('server').flag}  -h, --help             show this help

Endpoints: GET /v1/peers (JSON; ?since=REVISION&wait=SECONDS to wait for a change),
GET /v1/peers.txt ("<public-key> <endpoint>" lines), POST /v1/report (what a
peer tells about itself), GET ${MESH_PAGE_PATH} (a page: every peer, its NAT, and the
path of every pair) and GET /v1/mesh.json (the same as JSON), all for peers only.
Peers that cannot connect directly are relayed through this machine: it warns
at start when IP forwarding is off.
${settingsHelp('server').epilog}Exit codes: 0 stopped by SIGINT/SIGTERM, 1 failed to start, 2 bad usage.
`;

export async function serverCommand(argv: string[]): Promise<number> {
  const values = parseCommandArgs('server', argv, {
    ...LOGGING_OPTIONS,
    interface: { type: 'string', short: 'i' },
    listen: { type: 'string', short: 'l' },
    policy: { type: 'string' },
    metrics: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(SERVER_HELP);
    return 0;
  }
  const interfaceName = parseInterfaceName('server', values.interface);
  const listen = parseAddressAndPort('server', 'listen', requireString('server', 'listen', values.listen), DEFAULT_SERVER_PORT);
  const logger = loggerFromFlags('server', values);
  const metricsAt = values.metrics === undefined ? undefined : parseAddressAndPort('server', 'metrics', values.metrics, DEFAULT_METRICS_PORT);

  // A policy file with an error stops the start before anything else is touched.
  const policyPath = typeof values.policy === 'string' ? values.policy : undefined;
  const policy = policyPath === undefined ? undefined : loadPolicyFile(policyPath);
  if (policy) logger.info('policy-loaded', { file: policyPath, ...policy.summary });

  const driver = new WgCommandDriver(interfaceName);
  // Fail at start, not at the first request, when the interface or wg is missing.
  const device = await driver.readDevice();
  assertListenAddressOnInterface(interfaceName, listen.address);
  const forwarding = forwardingEnabled();
  if (!forwarding.ipv4) {
    logger.warn('forwarding-off', {
      family: 'ipv4',
      reason: 'this machine does not forward IPv4, so peers that cannot connect directly cannot be relayed through it',
      hint: 'sysctl -w net.ipv4.ip_forward=1 (and allow forwarding on the WireGuard interface in your firewall)',
    });
  }
  const overlayIpv6 = device.peers.some((peer) => peer.allowedIps.some((prefix) => prefix.address.family === 6));
  if (overlayIpv6 && !forwarding.ipv6) {
    logger.warn('forwarding-off', {
      family: 'ipv6',
      reason: 'peers have IPv6 overlay addresses but this machine does not forward IPv6, so their IPv6 traffic cannot be relayed through it',
      hint: 'sysctl -w net.ipv6.conf.all.forwarding=1',
    });
  }
  const signal = shutdownSignal(logger);
  if (metricsAt) assertMetricsAddress(interfaceName, metricsAt.address, addressesOf(interfaceName));
  const metrics = metricsAt ? new FangMetrics() : undefined;
  let inForce = policy;
  const mesh = meshBuilder();
  // Under a policy, relaying through this machine is limited the same way (an iptables chain in FORWARD).
  const relayFirewall = policy ? new RelayFirewall(interfaceName, logger) : undefined;
  const server = await startFangServer({
    driver,
    listenAddress: listen.address,
    port: listen.port,
    logger,
    ...(policy ? { policy, relayFirewall } : {}),
    peerRoutes: meshRoutes(mesh),
    ...(metrics ? { onReply: (path: string, status: number) => metrics.request(path, status) } : {}),
    ...(policy ? { policy, relayFirewall } : {}),
  });
  const stopReloading =
    policyPath === undefined
      ? ignoreHangup(logger)
      : reloadPolicyOnHangup(policyPath, logger, async (next) => {
          inForce = next;
          await server.setPolicy(next);
        });
  const metricsServer = metrics && metricsAt ? await serveFangMetrics({ metrics, server, interfaceName, ...metricsAt, mesh: (d, r) => mesh(d, r, { policy: inForce }), logger }) : undefined;
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  stopReloading();
  await metricsServer?.close();
  await server.close();
  logger.info('server-stopped', { interface: interfaceName });
  return 0;
}
