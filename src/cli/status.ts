import { fetchPeerList, MAX_REPLY_BYTES } from '../client/fetch-peer-list';
import { readLiveState, stateFilePath } from '../client/state-file';
import { describeError } from '../errors';
import { formatEndpoint } from '../ip/address';
import { DEFAULT_SERVER_PORT } from '../fang/server';
import { parsePeerList } from '../peer-list/parse';
import type { PeerList } from '../peer-list/peer-list';
import { findFangPeer } from '../plan/fang-peer';
import { listenPortClashes } from '../status/diagnose';
import { describePaths, guessFangPeer } from '../status/paths';
import { shortKey } from '../wireguard/key';
import { WgCommandDriver } from '../wireguard/wg-command-driver';
import { parseAddressAndPort, parseCommandArgs, parseInterfaceName, settingsHelp } from './options';

export const STATUS_HELP = `Usage: snakebite status --interface IF [--server IP[:PORT]] [--json]

Shows, per peer of IF, how it is reached now: direct, lan, relayed (through
the fang), fang (the fang peer itself) or none, with why, the handshake age
and bytes received and sent. It reads the interface, the running client's
state (when a 'snakebite client' daemon runs on IF), and asks the fang for
what peers report, to tell which side's NAT defeats a punch.

  -i, --interface IF     the WireGuard interface (e.g. wg0)
  -s, --server IP        the fang's overlay address (default: the running client's);
                         without either, the peer with an endpoint and the widest
                         AllowedIPs is taken as the fang and the fang is not asked
      --json             print JSON instead of a table
${settingsHelp('status').flag}  -h, --help             show this help

${settingsHelp('status').epilog}Exit codes: 0 shown, 1 the interface could not be read (or no peer routes the
given server address), 2 bad usage.
`;

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(1)}${units[unit]}`;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const values = parseCommandArgs('status', argv, {
    interface: { type: 'string', short: 'i' },
    server: { type: 'string', short: 's' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const interfaceName = parseInterfaceName('status', values.interface);
  const client = readLiveState(stateFilePath(interfaceName));
  const serverText = values.server ?? client?.server;
  const server = serverText === undefined ? undefined : parseAddressAndPort('status', 'server', serverText, DEFAULT_SERVER_PORT);
  const driver = new WgCommandDriver(interfaceName);
  const device = await driver.readDevice();
  const fangKey = server ? findFangPeer(device, server.address).publicKey : guessFangPeer(device);

  const notes: string[] = [];
  let list: PeerList | undefined;
  if (server) {
    try {
      list = parsePeerList(await fetchPeerList({ server: server.address, port: server.port, timeoutMs: 2000, maxBytes: MAX_REPLY_BYTES })).list;
      notes.push(...listenPortClashes(list, device.publicKey ?? '', device.listenPort));
    } catch (error) {
      notes.push(`the fang did not answer (${describeError(error)}): NAT diagnosis unavailable`);
    }
  }
  const relayedSince = new Map((client?.relayed ?? []).map((r) => [r.publicKey, r.since]));
  // Friendly names from the fang's policy file, when it has one.
  const names = new Map((list?.peers ?? []).filter((p) => p.name).map((p) => [p.publicKey, p.name!]));
  const changed = new Map((client?.changed ?? []).map((c) => [c.publicKey, c]));
  const unmanaged = new Map((client?.unmanaged ?? []).map((u) => [u.publicKey, u.reason]));
  const paths = describePaths(device, fangKey, new Date(), { ...(list ? { list } : {}), relayedSince, changed, unmanaged });
  for (const p of paths) {
    if (p.persistentKeepalive === null && p.path !== 'none' && p.publicKey !== fangKey) notes.push(`peer ${shortKey(p.publicKey)} has no persistent keepalive: its NAT mappings may close when idle`);
  }
  const clientLine = client
    ? `client: running (pid ${client.pid}), server ${client.server}, last sync ${client.lastSync ? `${Math.max(0, Math.floor(Date.now() / 1000) - client.lastSync)}s ago` : 'never'}${client.lastError ? `, last error: ${client.lastError}` : ''}`
    : 'client: no snakebite client daemon runs on this interface';

  if (values.json) {
    const out = {
      interface: interfaceName,
      publicKey: device.publicKey,
      listenPort: device.listenPort,
      fang: fangKey ?? null,
      client: client ?? null,
      publicEndpoint: list?.you.endpoint ? formatEndpoint(list.you.endpoint) : null,
      notes,
      ...(list?.you.name ? { name: list.you.name } : {}),
      peers: paths.map((p) => (names.has(p.publicKey) ? { ...p, name: names.get(p.publicKey) } : p)),
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const rows = paths.map((p) => [
    names.has(p.publicKey) ? `${shortKey(p.publicKey)} ${names.get(p.publicKey)}` : shortKey(p.publicKey),
    p.endpoint ?? '(none)',
    p.path,
    p.handshakeAgeSeconds === null ? 'never' : `${p.handshakeAgeSeconds}s ago`,
    bytes(p.rxBytes),
    bytes(p.txBytes),
    p.reason,
  ]);
  const header = ['PEER', 'ENDPOINT', 'PATH', 'HANDSHAKE', 'RX', 'TX', 'WHY'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  process.stdout.write(`interface ${interfaceName}: public key ${device.publicKey ? shortKey(device.publicKey) : '(none)'}${list?.you.name ? ` (${list.you.name})` : ''}, listening on port ${device.listenPort}\n`);
  process.stdout.write(`${clientLine}\n`);
  process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
  return 0;
}
