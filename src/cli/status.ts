import { DEFAULT_SERVER_PORT } from '../fang/server';
import { findFangPeer } from '../plan/fang-peer';
import { describePaths, guessFangPeer } from '../status/paths';
import { shortKey } from '../wireguard/key';
import { WgCommandDriver } from '../wireguard/wg-command-driver';
import { parseAddressAndPort, parseCommandArgs, parseInterfaceName } from './options';

export const STATUS_HELP = `Usage: snakebite status --interface IF [--server IP[:PORT]] [--json]

Shows, per peer of IF, how it is reached now: direct, lan, fang (the fang peer
itself) or none, with why, the handshake age and bytes received and sent.

  -i, --interface IF     the WireGuard interface (e.g. wg0)
  -s, --server IP        the fang's overlay address, to name the fang peer;
                         without it the peer with an endpoint and the widest AllowedIPs is taken
      --json             print JSON instead of a table
  -h, --help             show this help

Exit codes: 0 shown, 1 the interface could not be read, 2 bad usage.
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
  const server = values.server === undefined ? undefined : parseAddressAndPort('status', 'server', values.server, DEFAULT_SERVER_PORT);
  const device = await new WgCommandDriver(interfaceName).readDevice();
  const fangKey = server ? findFangPeer(device, server.address).publicKey : guessFangPeer(device);
  const paths = describePaths(device, fangKey, new Date());

  if (values.json) {
    const out = { interface: interfaceName, publicKey: device.publicKey, listenPort: device.listenPort, fang: fangKey ?? null, peers: paths };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const rows = paths.map((p) => [
    shortKey(p.publicKey),
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
  process.stdout.write(`interface ${interfaceName}: public key ${device.publicKey ? shortKey(device.publicKey) : '(none)'}, listening on port ${device.listenPort}\n`);
  process.stdout.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
  return 0;
}
