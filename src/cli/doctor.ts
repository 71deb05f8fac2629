import { fetchPeerList, MAX_REPLY_BYTES } from '../client/fetch-peer-list';
import { readLiveState, stateFilePath } from '../client/state-file';
import { exitStatus, fangFindings, formatFinding, peerFindings, type FangFacts, type PeerFacts } from '../doctor/checks';
import { httpStatus, readFirewall, readWgConfig } from '../doctor/system';
import { describeError } from '../errors';
import { forwardingEnabled } from '../fang/forwarding';
import { addressesOf } from '../fang/listen-address';
import { DEFAULT_SERVER_PORT } from '../fang/server';
import { parsePeerList } from '../peer-list/parse';
import { WgCommandDriver } from '../wireguard/wg-command-driver';
import { parseAddressAndPort, parseCommandArgs, parseInterfaceName, settingsHelp, usageError } from './options';

export const DOCTOR_HELP = `Usage: snakebite doctor --interface IF (--server IP[:PORT] | --listen IP[:PORT]) [--json]

Checks this machine's WireGuard and Snakebite setup and says what to change,
one line per check. On a peer (--server, the fang server's overlay address):
ListenPort fixed in the wg-quick config, the fang peer's Endpoint,
PersistentKeepalive and AllowedIPs, a live handshake with the fang, the server
answering inside the tunnel, no Endpoint on other peers in the config, the
probe port (UDP 51822) let in by the firewall on IF, no other peer behind the
same NAT with the same ListenPort, the NAT's behaviour as F and the other peers
see it, and a running client daemon. On the fang (--listen): ListenPort fixed,
the listen address on IF, the server answering, IP forwarding, a FORWARD
policy that passes IF to IF, and every peer's session with F.

  -i, --interface IF     the WireGuard interface (e.g. wg0)
  -s, --server IP[:PORT] check as a peer of the fang server at IP (default: the
                         running client's server); PORT defaults to ${DEFAULT_SERVER_PORT}
  -l, --listen IP[:PORT] check as the fang serving on IP
      --wg-config FILE   the wg-quick config to read (default /etc/wireguard/IF.conf)
      --json             print the findings as JSON
${settingsHelp('doctor').flag}  -h, --help             show this help

Each line: ok, WARN (worth changing), FAIL (breaks Snakebite) or skip (could
not be checked), the check's name, what was found, and the fix.
${settingsHelp('doctor').epilog}Exit codes: 0 no check failed, 1 a check failed (or the interface could not
be read), 2 bad usage.
`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const values = parseCommandArgs('doctor', argv, {
    interface: { type: 'string', short: 'i' },
    server: { type: 'string', short: 's' },
    listen: { type: 'string', short: 'l' },
    'wg-config': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const interfaceName = parseInterfaceName('doctor', values.interface);
  if (values.server !== undefined && values.listen !== undefined) throw usageError('give --server (on a peer) or --listen (on the fang), not both', 'doctor');
  const serverText = values.listen === undefined ? values.server ?? readLiveState(stateFilePath(interfaceName))?.server : undefined;
  if (values.listen === undefined && serverText === undefined) {
    throw usageError('--server or --listen is required: --server IP on a peer (the fang server\'s overlay address), --listen IP on the fang', 'doctor');
  }
  const device = await new WgCommandDriver(interfaceName).readDevice();
  const config = readWgConfig(values['wg-config'] ?? `/etc/wireguard/${interfaceName}.conf`);
  const firewall = await readFirewall();
  const ownAddresses = addressesOf(interfaceName);
  const nowSeconds = Math.floor(Date.now() / 1000);

  let findings;
  if (values.listen !== undefined) {
    const listen = parseAddressAndPort('doctor', 'listen', values.listen, DEFAULT_SERVER_PORT);
    const facts: FangFacts = {
      role: 'fang',
      device,
      listen,
      ownAddresses,
      config,
      firewall,
      forwarding: forwardingEnabled(),
      server: await httpStatus(listen.address, listen.port, '/v1/peers', 3000),
      nowSeconds,
    };
    findings = fangFindings(facts);
  } else {
    const server = parseAddressAndPort('doctor', 'server', serverText!, DEFAULT_SERVER_PORT);
    let fang: PeerFacts['fang'];
    try {
      fang = { list: parsePeerList(await fetchPeerList({ server: server.address, port: server.port, timeoutMs: 3000, maxBytes: MAX_REPLY_BYTES })).list };
    } catch (error) {
      fang = { error: describeError(error) };
    }
    const facts: PeerFacts = {
      role: 'peer',
      device,
      server,
      ownAddresses,
      config,
      firewall,
      fang,
      clientRunning: readLiveState(stateFilePath(interfaceName)) !== undefined,
      nowSeconds,
    };
    findings = peerFindings(facts);
  }
  const status = exitStatus(findings);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ interface: interfaceName, role: values.listen !== undefined ? 'fang' : 'peer', ok: status === 0, findings }, null, 2)}\n`);
  } else {
    for (const finding of findings) process.stdout.write(`${formatFinding(finding)}\n`);
  }
  return status;
}
