import { fetchPeerList, MAX_REPLY_BYTES } from '../client/fetch-peer-list';
import { runClientDaemon } from '../client/daemon';
import { localCandidates, localNetworks } from '../client/local-networks';
import { peerSourceCheck, ProbeResponder } from '../client/probe';
import { postReport } from '../client/report';
import { readStateFile, stateFilePath, writeState } from '../client/state-file';
import { sendProbeDatagrams } from '../client/punch';
import { addressesOf } from '../fang/listen-address';
import { syncOnce, type SyncDeps, type SyncOptions } from '../client/sync';
import { DEFAULT_SERVER_PORT } from '../fang/server';
import { WgCommandDriver } from '../wireguard/wg-command-driver';
import { interfaceIndex } from '../client/interface-identity';
import { formatPrefix, parsePrefix } from '../ip/address';
import { ClientMetrics } from '../metrics/client-metrics';
import { assertMetricsAddress, DEFAULT_METRICS_PORT, startMetricsServer } from '../metrics/http';
import { findFangPeer } from '../plan/fang-peer';
import {
  LOGGING_OPTIONS,
  loggerFromFlags,
  parseAddressAndPort,
  parseCommandArgs,
  parseDuration,
  parseInteger,
  parseInterfaceName,
  requireString,
  settingsHelp,
  shutdownSignal,
} from './options';

export const DEFAULT_INTERVAL = '30s';
export const DEFAULT_KEEPALIVE_SECONDS = 25;
export const DEFAULT_TIMEOUT = '5s';
export const DEFAULT_WAIT = '25s';
export const DEFAULT_HEARTBEAT = '1s';
export const DEFAULT_RELAY_AFTER = '8s';
/** How long a probe through a contested peer's current endpoint waits for an answer. */
export const PROBE_TIMEOUT_MS = 600;
/** How often a daemon compares its interface with the peer list it holds (one `wg show`). */
export const LOCAL_CHECK_MS = 2000;
/**
 * A peer heard from within this many seconds keeps its endpoint. WireGuard
 * rekeys every 120 s while traffic flows and drops a session after 180 s, so
 * a handshake younger than that means the current endpoint works.
 */
export const FLOWING_WITHIN_SECONDS = 180;

export const CLIENT_HELP = `Usage: snakebite client --interface IF --server IP[:PORT] [options]

Runs on a peer: asks the fang, inside the tunnel, for the other peers'
endpoints and applies them to IF, so that peers behind NATs reach each other
directly. Never removes a peer it did not add, never touches a peer whose
traffic is flowing or that routes outside the overlay, and changes the fang
peer only to relay listed peers when it routes just its own address (undone
when they go direct). Runs as a daemon unless --once is given.

  -i, --interface IF     this peer's WireGuard interface (e.g. wg0)
  -s, --server IP[:PORT] the fang server's overlay address; PORT defaults to ${DEFAULT_SERVER_PORT}
      --once             sync one time and exit (for wg-quick PostUp)
      --wait DUR         how long the fang may hold a request until a peer changes
                         (push; default ${DEFAULT_WAIT}; 0 polls every --interval instead)
      --interval DUR     time between refreshes when the fang does not push, and the
                         longest retry delay after failures (default ${DEFAULT_INTERVAL})
      --heartbeat DUR    one tiny datagram to the fang this often, so it sees a NAT
                         rebind at once (default ${DEFAULT_HEARTBEAT}; 0 sends none)
      --relay-after DUR  send a peer's traffic through the fang when punching gets no
                         direct handshake within this time; the direct path is retried
                         with backoff and used again once it works (default ${DEFAULT_RELAY_AFTER};
                         0 never relays; daemon only)
      --keepalive SECS   persistent keepalive set on peers it adds or re-points (default ${DEFAULT_KEEPALIVE_SECONDS})
      --timeout DUR      deadline for one request to the fang (default ${DEFAULT_TIMEOUT})
      --dry-run          log the plan, change nothing
      --metrics IP[:PORT] serve Prometheus metrics at http://IP:PORT/metrics (daemon only);
                         IP must be an address of IF (or loopback); PORT defaults to ${DEFAULT_METRICS_PORT}
      --log-level LEVEL  debug, info, warn or error (default info)
      --log-format FMT   text or json (default text)
${settingsHelp('client').flag}  -h, --help             show this help

Durations: 30s, 500ms, 2m; a bare number is seconds.
${settingsHelp('client').epilog}Exit codes: 0 success (or daemon stopped by SIGINT/SIGTERM), 1 failure, 2 bad usage.
`;

export async function clientCommand(argv: string[]): Promise<number> {
  const values = parseCommandArgs('client', argv, {
    ...LOGGING_OPTIONS,
    interface: { type: 'string', short: 'i' },
    server: { type: 'string', short: 's' },
    once: { type: 'boolean', default: false },
    interval: { type: 'string', default: DEFAULT_INTERVAL },
    wait: { type: 'string', default: DEFAULT_WAIT },
    heartbeat: { type: 'string', default: DEFAULT_HEARTBEAT },
    'relay-after': { type: 'string', default: DEFAULT_RELAY_AFTER },
    keepalive: { type: 'string', default: String(DEFAULT_KEEPALIVE_SECONDS) },
    timeout: { type: 'string', default: DEFAULT_TIMEOUT },
    'dry-run': { type: 'boolean', default: false },
    metrics: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(CLIENT_HELP);
    return 0;
  }
  const interfaceName = parseInterfaceName('client', values.interface);
  const server = parseAddressAndPort('client', 'server', requireString('client', 'server', values.server), DEFAULT_SERVER_PORT);
  const intervalMs = parseDuration('client', 'interval', values.interval, 1000, 3_600_000);
  const keepaliveSeconds = parseInteger('client', 'keepalive', values.keepalive, 1, 65535);
  const timeoutMs = parseDuration('client', 'timeout', values.timeout, 100, 120_000);
  const off = (text: string) => /^0+(\.0+)?(ms|s|m)?$/.test(text);
  const waitMs = off(values.wait) ? 0 : parseDuration('client', 'wait', values.wait, 1000, 60_000);
  const heartbeatMs = off(values.heartbeat) ? 0 : parseDuration('client', 'heartbeat', values.heartbeat, 100, 3_600_000);
  const metricsAt = values.metrics === undefined ? undefined : parseAddressAndPort('client', 'metrics', values.metrics, DEFAULT_METRICS_PORT);
  const metrics = metricsAt && !values.once ? new ClientMetrics() : undefined;
  const baseLogger = loggerFromFlags('client', values).child({ interface: interfaceName });
  // The metrics count changes from the log events, so the daemon needs no hooks.
  const logger = metrics ? metrics.tap(baseLogger) : baseLogger;

  const relayAfterMs = off(values['relay-after']) ? 0 : parseDuration('client', 'relay-after', values['relay-after'], 1000, 3_600_000);
  const deps: SyncDeps = {
    localNetworks: () => localNetworks(interfaceName),
    ownAddresses: () => addressesOf(interfaceName),
    localCandidates: (listenPort) => localCandidates(interfaceName, listenPort),
    sendReport: (report) => postReport(server.address, server.port, report, timeoutMs),
    driver: new WgCommandDriver(interfaceName),
    fetchPeerList: (request = {}) => fetchPeerList({ server: server.address, port: server.port, timeoutMs, maxBytes: MAX_REPLY_BYTES, ...request }),
    triggerHandshakes: sendProbeDatagrams,
    logger,
    clock: () => new Date(),
  };
  const options: SyncOptions = {
    serverAddress: server.address,
    keepaliveSeconds,
    flowingWithinSeconds: FLOWING_WITHIN_SECONDS,
    dryRun: values['dry-run'],
  };
  // Relaying needs memory of how long a peer has been punched: daemons only.
  const daemonOptions: SyncOptions = relayAfterMs > 0 ? { ...options, relayAfterSeconds: Math.round(relayAfterMs / 1000) } : options;
  if (values.once) {
    const result = await syncOnce(deps, options);
    logger.info('sync-once-done', { changes: result.plan.changes.length, refused: result.rejected.length + result.plan.skipped.filter((s) => s.severity === 'refused').length });
    return 0;
  }
  logger.info('client-started', { server: `${values.server}`, push: waitMs > 0, intervalMs, heartbeatMs, keepalive: keepaliveSeconds });
  const signal = shutdownSignal(logger);
  const statePath = stateFilePath(interfaceName);
  const { state: previous, problem } = readStateFile(statePath);
  // A damaged state file must not stop the daemon: it only forgets which peers it added (it then removes none of them).
  if (problem) logger.warn('state-ignored', { reason: `${problem}; starting without it (peers an earlier run added will not be removed)` });
  // Answers only sources inside a peer's allowed IPs on the interface, with a fixed reply.
  const responder = new ProbeResponder(logger, { isPeer: peerSourceCheck(deps.driver) });
  await responder.bind(addressesOf(interfaceName));
  // The interface may come up (or get its addresses) after the daemon starts.
  const rebind = setInterval(() => void responder.bind(addressesOf(interfaceName)), 10_000);
  let metricsServer: { close(): Promise<void> } | undefined;
  if (metrics && metricsAt) {
    assertMetricsAddress(interfaceName, metricsAt.address, addressesOf(interfaceName));
    metricsServer = await startMetricsServer(
      metricsAt.address,
      metricsAt.port,
      async () => {
        const device = await deps.driver.readDevice();
        let fangKey: string | undefined;
        try {
          fangKey = findFangPeer(device, server.address).publicKey;
        } catch {
          fangKey = undefined;
        }
        return metrics.render(device, fangKey, new Date());
      },
      logger,
    );
  }
  try {
    await runClientDaemon(deps, {
      ...daemonOptions,
      intervalMs,
      waitSeconds: Math.round(waitMs / 1000),
      heartbeatMs,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
      localCheckMs: LOCAL_CHECK_MS,
      ...(previous?.added ? { addedBefore: previous.added } : {}),
      ...(previous?.changed ? { changedBefore: previous.changed.map((c) => ({ ...c, allowedIps: c.allowedIps.map((p) => parsePrefix(p)!) })) } : {}),
      interfaceIdentity: () => interfaceIndex(interfaceName),
      ...(previous?.ifindex !== undefined ? { identityBefore: previous.ifindex } : {}),
      publish: ({ identity, lastSync, lastError, relayed, added, changed, unmanaged }) => {
        metrics?.published({ ...(lastError ? { lastError } : {}), relayed });
        writeState(statePath, {
          interface: interfaceName,
          server: values.server!,
          pid: process.pid,
          ...(identity !== undefined ? { ifindex: identity } : {}),
          lastSync,
          ...(lastError ? { lastError } : {}),
          relayed: [...relayed].map(([publicKey, since]) => ({ publicKey, since })),
          added,
          changed: changed.map((c) => ({ publicKey: c.publicKey, since: c.since, allowedIps: c.allowedIps.map(formatPrefix), viaFang: c.viaFang })),
          unmanaged,
        });
      },
      signal,
    });
  } finally {
    clearInterval(rebind);
    responder.close();
    await metricsServer?.close();
    // The state file stays: the next run reads which peers this one added.
  }
  logger.info('client-stopped');
  return 0;
}
