/**
 * `snakebite doctor`'s checks: pure functions from gathered facts to one
 * finding each. Gathering (reading the interface, the config file, the
 * firewall, asking the fang) happens in gather.ts; nothing here does I/O.
 */
import { formatEndpoint, formatIp, formatPrefix, ipEquals, longestMatch, prefixContainsIp, type IpAddress } from '../ip/address';
import type { PeerList } from '../peer-list/peer-list';
import { listenPortClashes, natBehaviour } from '../status/diagnose';
import type { DeviceState, PeerState } from '../wireguard/device-state';
import { shortKey } from '../wireguard/key';
import { firewallVerdict, parseFilterTable, type Packet } from './firewall';
import type { WgConfigFacts } from './wg-config';

/** The UDP port on which clients answer each other's probes, inside the tunnel. */
export const PROBE_PORT = 51822;
/** A handshake older than this (WireGuard's REJECT_AFTER_TIME) means no session. */
const SESSION_SECONDS = 180;

export type CheckId =
  | 'listen-port-fixed'
  | 'fang-peer'
  | 'fang-endpoint'
  | 'fang-keepalive'
  | 'fang-allowed-ips'
  | 'fang-handshake'
  | 'server-reachable'
  | 'peer-endpoints'
  | 'probe-port'
  | 'listen-port-clash'
  | 'nat-behaviour'
  | 'client-running'
  | 'listen-address'
  | 'ip-forwarding'
  | 'forward-policy'
  | 'server-running'
  | 'peer-handshakes';

export type FindingStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Finding {
  readonly check: CheckId;
  readonly status: FindingStatus;
  /** What was found, in words. */
  readonly message: string;
  /** What to change; set for warn and fail. */
  readonly fix?: string;
}

/** The wg-quick config file, or why it could not be read. */
export type ConfigFacts = WgConfigFacts | { readonly unreadable: string; readonly path: string };
/** `iptables-save` output, or why it could not be had. */
export type FirewallFacts = { readonly rules: string } | { readonly unavailable: string };

export interface PeerFacts {
  readonly role: 'peer';
  readonly device: DeviceState;
  readonly server: { readonly address: IpAddress; readonly port: number };
  readonly ownAddresses: readonly IpAddress[];
  readonly config: ConfigFacts;
  readonly firewall: FirewallFacts;
  /** The fang's answer to GET /v1/peers. */
  readonly fang: { readonly list: PeerList } | { readonly error: string };
  /** Whether a `snakebite client` daemon runs on the interface. */
  readonly clientRunning: boolean;
  readonly nowSeconds: number;
}

export interface FangFacts {
  readonly role: 'fang';
  readonly device: DeviceState;
  readonly listen: { readonly address: IpAddress; readonly port: number };
  readonly ownAddresses: readonly IpAddress[];
  readonly config: ConfigFacts;
  readonly firewall: FirewallFacts;
  readonly forwarding: { readonly ipv4: boolean; readonly ipv6: boolean };
  /** Whether something answers HTTP on the listen address: the HTTP status (0: it took the connection and closed it), or the error. */
  readonly server: { readonly status: number } | { readonly error: string };
  readonly nowSeconds: number;
}

const ok = (check: CheckId, message: string): Finding => ({ check, status: 'ok', message });
const warn = (check: CheckId, message: string, fix: string): Finding => ({ check, status: 'warn', message, fix });
const fail = (check: CheckId, message: string, fix: string): Finding => ({ check, status: 'fail', message, fix });
const skip = (check: CheckId, message: string): Finding => ({ check, status: 'skip', message });

function configName(device: DeviceState, config: ConfigFacts): string {
  return 'unreadable' in config ? `/etc/wireguard/${device.interfaceName}.conf` : config.path;
}

export function checkListenPortFixed(device: DeviceState, config: ConfigFacts): Finding {
  if ('unreadable' in config) return skip('listen-port-fixed', `cannot read ${config.path} (${config.unreadable}); listening on ${device.listenPort} now`);
  if (config.listenPort === undefined) {
    return fail('listen-port-fixed', `${config.path} sets no ListenPort: WireGuard picks a new random port at every start, and NAT mappings and peers' endpoints break`, `add "ListenPort = ${device.listenPort || 51820}" to [Interface] in ${config.path}`);
  }
  if (device.listenPort !== 0 && device.listenPort !== config.listenPort) {
    return warn('listen-port-fixed', `${config.path} says ListenPort ${config.listenPort} but ${device.interfaceName} listens on ${device.listenPort}`, `restart the interface (wg-quick down ${device.interfaceName}; wg-quick up ${device.interfaceName}) or fix the file`);
  }
  return ok('listen-port-fixed', `ListenPort ${config.listenPort} is fixed in ${config.path}`);
}

/** The fang peer: the one whose AllowedIPs route the server address. */
export function fangPeerOf(device: DeviceState, server: IpAddress): PeerState | undefined {
  let best: { peer: PeerState; length: number } | undefined;
  for (const peer of device.peers) {
    const match = longestMatch(peer.allowedIps, server);
    if (match && (!best || match.length > best.length)) best = { peer, length: match.length };
  }
  return best?.peer;
}

export function checkFangPeer(facts: PeerFacts): Finding[] {
  const { device, server } = facts;
  const where = configName(device, facts.config);
  const fang = fangPeerOf(device, server.address);
  if (!fang) {
    return [fail('fang-peer', `no peer of ${device.interfaceName} has AllowedIPs that contain the server address ${formatIp(server.address)}`, `add the fang as a [Peer] in ${where} with AllowedIPs = the overlay range (e.g. ${formatIp(server.address)}/24)`)];
  }
  const name = shortKey(fang.publicKey);
  const findings: Finding[] = [ok('fang-peer', `peer ${name} routes the server address ${formatIp(server.address)}`)];
  findings.push(
    fang.endpoint
      ? ok('fang-endpoint', `the fang peer has Endpoint ${formatEndpoint(fang.endpoint)}`)
      : fail('fang-endpoint', `the fang peer ${name} has no Endpoint`, `add "Endpoint = <F's public address>:<its ListenPort>" to the fang's [Peer] in ${where}`),
  );
  findings.push(
    fang.persistentKeepalive
      ? ok('fang-keepalive', `PersistentKeepalive ${fang.persistentKeepalive} on the fang peer`)
      : fail('fang-keepalive', `the fang peer ${name} has no PersistentKeepalive: the NAT forgets the mapping and F loses this peer's endpoint`, `add "PersistentKeepalive = 25" to the fang's [Peer] in ${where}`),
  );
  const route = longestMatch(fang.allowedIps, server.address)!;
  const hostBits = (route.address.family === 4 ? 32 : 128) - route.length;
  const own = facts.ownAddresses.find((address) => ipEquals(address, server.address));
  if (own) {
    findings.push(fail('fang-allowed-ips', `the server address ${formatIp(server.address)} is this machine's own address`, 'give --server the fang\'s overlay address (its wg-quick Address), not this peer\'s'));
  } else if (hostBits === 0) {
    findings.push(
      warn('fang-allowed-ips', `the fang peer's AllowedIPs route only ${formatPrefix(route)}: Snakebite adds peers only inside the fang peer's AllowedIPs, and relayed traffic has no route`, `set AllowedIPs of the fang's [Peer] in ${where} to the whole overlay (e.g. ${formatIp(server.address)}/24)`),
    );
  } else {
    const mine = facts.ownAddresses.filter((address) => fang.allowedIps.some((prefix) => prefixContainsIp(prefix, address)));
    findings.push(
      mine.length > 0
        ? ok('fang-allowed-ips', `the fang peer's AllowedIPs ${fang.allowedIps.map(formatPrefix).join(', ')} cover the server address and this peer's ${formatIp(mine[0]!)}`)
        : warn('fang-allowed-ips', `the fang peer's AllowedIPs ${fang.allowedIps.map(formatPrefix).join(', ')} do not contain any address of ${device.interfaceName}: the overlay range and this peer's Address disagree`, `make the fang's AllowedIPs the overlay range that this peer's Address is in`),
    );
  }
  const age = fang.latestHandshake === 0 ? null : facts.nowSeconds - fang.latestHandshake;
  findings.push(
    age !== null && age <= SESSION_SECONDS
      ? ok('fang-handshake', `handshake with the fang ${age}s ago`)
      : fail('fang-handshake', age === null ? 'no handshake with the fang ever' : `no handshake with the fang for ${age}s`, `check the fang's Endpoint and public key, that UDP reaches F's ListenPort, and that F lists this peer's public key`),
  );
  return findings;
}

export function checkServerReachable(facts: PeerFacts): Finding {
  const where = `${formatIp(facts.server.address)} port ${facts.server.port}`;
  if ('error' in facts.fang) {
    return fail('server-reachable', `the fang server at ${where} did not answer inside the tunnel: ${facts.fang.error}`, 'on F run snakebite server --interface IF --listen <F\'s overlay address> (systemctl enable --now snakebite-server@wg0), and check --server here');
  }
  return ok('server-reachable', `the fang server at ${where} answers and lists ${facts.fang.list.peers.length} other peers`);
}

export function checkPeerEndpoints(facts: PeerFacts): Finding {
  if ('unreadable' in facts.config) return skip('peer-endpoints', `cannot read ${facts.config.path}`);
  const fang = fangPeerOf(facts.device, facts.server.address);
  const withEndpoint = facts.config.peers.filter((peer) => peer.endpoint !== undefined && peer.publicKey !== fang?.publicKey);
  if (withEndpoint.length === 0) return ok('peer-endpoints', 'only the fang peer has an Endpoint in the config');
  return warn(
    'peer-endpoints',
    `${withEndpoint.map((p) => shortKey(p.publicKey)).join(', ')} ha${withEndpoint.length === 1 ? 's' : 've'} an Endpoint in ${facts.config.path}: a fixed endpoint is reset at every wg-quick up and fights the client`,
    `remove Endpoint from every [Peer] but the fang's in ${facts.config.path}; the client sets them`,
  );
}

export function checkProbePort(device: DeviceState, firewall: FirewallFacts, ownAddresses: readonly IpAddress[], source: IpAddress | undefined): Finding {
  if ('unavailable' in firewall) return skip('probe-port', `cannot read the firewall (${firewall.unavailable})`);
  const packet: Packet = {
    inInterface: device.interfaceName,
    protocol: 'udp',
    destinationPort: PROBE_PORT,
    state: 'NEW',
    ...(source ? { source } : {}),
    ...(ownAddresses[0] ? { destination: ownAddresses[0] } : {}),
  };
  const verdict = firewallVerdict(parseFilterTable(firewall.rules), 'INPUT', packet);
  if (verdict.kind === 'drop') {
    return fail('probe-port', `the firewall drops UDP ${PROBE_PORT} arriving on ${device.interfaceName} (${verdict.rule}): other peers' probes get no answer and re-point working paths`, `iptables -I INPUT -i ${device.interfaceName} -p udp --dport ${PROBE_PORT} -j ACCEPT (and keep it in your firewall config)`);
  }
  const unsure = verdict.kind === 'accept' && verdict.unsure.length > 0 ? ` (rules not understood: ${verdict.unsure.length})` : '';
  return ok('probe-port', `UDP ${PROBE_PORT} on ${device.interfaceName} is let in${unsure}`);
}

export function checkListenPortClash(facts: PeerFacts): Finding {
  if ('error' in facts.fang) return skip('listen-port-clash', 'needs the fang\'s peer list');
  const clashes = listenPortClashes(facts.fang.list, facts.device.publicKey ?? '', facts.device.listenPort).filter((line) => line.includes('this peer'));
  if (clashes.length === 0) return ok('listen-port-clash', `no other peer behind this NAT uses ListenPort ${facts.device.listenPort}`);
  return fail('listen-port-clash', clashes.join('; '), `give each peer behind one NAT its own ListenPort (e.g. ${facts.device.listenPort + 1}) in its wg-quick config`);
}

export function checkNatBehaviour(facts: PeerFacts): Finding {
  if ('error' in facts.fang) return skip('nat-behaviour', 'needs the fang\'s peer list');
  const you = facts.fang.list.you;
  const finding = natBehaviour(you.endpoint, facts.device.listenPort, you.seenBy ?? []);
  switch (finding.behaviour) {
    case 'symmetric':
      return warn('nat-behaviour', `this peer's NAT is symmetric: ${finding.detail}; peers behind another symmetric or port-restricted NAT go through F`, `forward UDP ${facts.device.listenPort} on this peer's router to it (then its NAT keeps the port), or accept the relay`);
    case 'rewrites-port':
      return warn('nat-behaviour', `this peer's NAT rewrites its port: ${finding.detail} (a symmetric NAT, or another peer behind it holds the port)`, `forward UDP ${facts.device.listenPort} on this peer's router to it, or give each peer behind the NAT its own ListenPort`);
    case 'independent':
    case 'keeps-port':
      return ok('nat-behaviour', `this peer's NAT keeps one mapping for every destination: ${finding.detail}`);
    case 'unknown':
      return skip('nat-behaviour', finding.detail);
  }
}

export function checkClientRunning(facts: PeerFacts): Finding {
  return facts.clientRunning
    ? ok('client-running', `a snakebite client daemon runs on ${facts.device.interfaceName}`)
    : warn('client-running', `no snakebite client daemon runs on ${facts.device.interfaceName}: endpoints are not followed and nothing is relayed`, `systemctl enable --now snakebite-client@${facts.device.interfaceName}`);
}

export function checkListenAddress(facts: FangFacts): Finding {
  const own = facts.ownAddresses.some((address) => ipEquals(address, facts.listen.address));
  return own
    ? ok('listen-address', `${formatIp(facts.listen.address)} is an address of ${facts.device.interfaceName}`)
    : fail('listen-address', `${formatIp(facts.listen.address)} is not an address of ${facts.device.interfaceName}: the server must listen inside the tunnel`, `use ${facts.device.interfaceName}'s Address as --listen (${facts.ownAddresses.map(formatIp).join(', ') || 'it has none: bring it up'})`);
}

export function checkForwarding(facts: FangFacts): Finding {
  const v6 = facts.device.peers.some((peer) => peer.allowedIps.some((prefix) => prefix.address.family === 6));
  if (!facts.forwarding.ipv4) return fail('ip-forwarding', 'IPv4 forwarding is off: peers that cannot connect directly cannot be relayed through F', 'sysctl -w net.ipv4.ip_forward=1 (and net.ipv4.ip_forward = 1 in /etc/sysctl.d/99-snakebite.conf)');
  if (v6 && !facts.forwarding.ipv6) return fail('ip-forwarding', 'peers have IPv6 overlay addresses but IPv6 forwarding is off', 'sysctl -w net.ipv6.conf.all.forwarding=1');
  return ok('ip-forwarding', `forwarding is on${v6 ? ' (IPv4 and IPv6)' : ''}`);
}

export function checkForwardPolicy(facts: FangFacts): Finding {
  if ('unavailable' in facts.firewall) return skip('forward-policy', `cannot read the firewall (${facts.firewall.unavailable})`);
  const name = facts.device.interfaceName;
  const verdict = firewallVerdict(parseFilterTable(facts.firewall.rules), 'FORWARD', { inInterface: name, outInterface: name, protocol: 'udp', state: 'NEW' });
  if (verdict.kind === 'drop') {
    return fail('forward-policy', `the firewall drops traffic forwarded from ${name} to ${name} (${verdict.rule}): relayed peers cannot reach each other`, `iptables -I FORWARD -i ${name} -o ${name} -j ACCEPT (PostUp in ${configName(facts.device, facts.config)})`);
  }
  return ok('forward-policy', `traffic from ${name} to ${name} is forwarded`);
}

export function checkServerRunning(facts: FangFacts): Finding {
  const where = `${formatIp(facts.listen.address)} port ${facts.listen.port}`;
  if ('error' in facts.server) return fail('server-running', `nothing answers on ${where}: ${facts.server.error}`, `systemctl enable --now snakebite-server@${facts.device.interfaceName} (or run snakebite server --interface ${facts.device.interfaceName} --listen ${formatIp(facts.listen.address)})`);
  if (facts.server.status === 0) return ok('server-running', `the server takes connections on ${where} (and closes this machine's, which is no peer)`);
  return ok('server-running', `the server answers on ${where} (HTTP ${facts.server.status})`);
}

export function checkPeerHandshakes(facts: FangFacts): Finding {
  const stale = facts.device.peers.filter((peer) => peer.latestHandshake === 0 || facts.nowSeconds - peer.latestHandshake > SESSION_SECONDS);
  if (stale.length === 0) return ok('peer-handshakes', `all ${facts.device.peers.length} peers have a live session with F`);
  return warn('peer-handshakes', `${stale.length} of ${facts.device.peers.length} peers have no live session with F: ${stale.map((p) => shortKey(p.publicKey)).join(', ')}`, 'on those peers: PersistentKeepalive on the fang peer, and snakebite doctor there');
}

export function peerFindings(facts: PeerFacts): Finding[] {
  const fang = fangPeerOf(facts.device, facts.server.address);
  const source = fang?.allowedIps[0]?.address;
  return [
    checkListenPortFixed(facts.device, facts.config),
    ...checkFangPeer(facts),
    checkServerReachable(facts),
    checkPeerEndpoints(facts),
    checkProbePort(facts.device, facts.firewall, facts.ownAddresses, source),
    checkListenPortClash(facts),
    checkNatBehaviour(facts),
    checkClientRunning(facts),
  ];
}

export function fangFindings(facts: FangFacts): Finding[] {
  return [
    checkListenPortFixed(facts.device, facts.config),
    checkListenAddress(facts),
    checkServerRunning(facts),
    checkForwarding(facts),
    checkForwardPolicy(facts),
    checkPeerHandshakes(facts),
  ];
}

/** doctor's exit status: 1 when any check failed. */
export function exitStatus(findings: readonly Finding[]): 0 | 1 {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}

export function formatFinding(f: Finding): string {
  const tag = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' }[f.status];
  return `${tag} ${f.check}: ${f.message}${f.fix ? `; fix: ${f.fix}` : ''}`;
}
