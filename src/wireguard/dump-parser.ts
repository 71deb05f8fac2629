import { parseEndpoint, parsePrefix, type IpPrefix } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { DeviceState, PeerState } from './device-state';
import { isWireGuardKey } from './key';

function malformed(interfaceName: string, line: number, what: string): SnakebiteError {
  return new SnakebiteError(
    'SB_DUMP_MALFORMED',
    `wg show ${interfaceName} dump, line ${line}: ${what}`,
    'this wg prints a format Snakebite does not know; please report it with the output of `wg --version`',
  );
}

function parseCount(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-9]{1,20}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Transfer counters are u64 in WireGuard: past 2^53 bytes they are kept approximately rather than refused. */
function parseByteCount(text: string | undefined): number | undefined {
  return text !== undefined && /^[0-9]{1,20}$/.test(text) ? Number(text) : undefined;
}

/**
 * Parses the output of `wg show <if> dump` (one interface, so no interface
 * column). Throws SB_DUMP_MALFORMED naming the line on anything unexpected.
 * The private and preshared keys are read only to note that they exist.
 */
export function parseDump(interfaceName: string, text: string): DeviceState {
  const lines = text.split('\n').filter((line) => line.length > 0);
  const head = lines[0];
  if (head === undefined) throw malformed(interfaceName, 1, 'empty output');
  const fields = head.split('\t');
  if (fields.length !== 4) throw malformed(interfaceName, 1, `expected 4 tab-separated fields, got ${fields.length}`);
  const [privateKey, publicKey, listenPortText, fwmarkText] = fields as [string, string, string, string];
  const listenPort = parseCount(listenPortText);
  if (listenPort === undefined || listenPort > 65535) throw malformed(interfaceName, 1, `listen port "${listenPortText}"`);
  let fwmark: number | null = null;
  if (fwmarkText !== 'off') {
    fwmark = /^0x[0-9a-f]{1,8}$/i.test(fwmarkText) ? parseInt(fwmarkText, 16) : parseCount(fwmarkText) ?? NaN;
    if (Number.isNaN(fwmark)) throw malformed(interfaceName, 1, `fwmark "${fwmarkText}"`);
  }
  if (publicKey !== '(none)' && !isWireGuardKey(publicKey)) throw malformed(interfaceName, 1, 'public key is not a WireGuard key');

  const peers: PeerState[] = [];
  for (let index = 1; index < lines.length; index++) {
    peers.push(parsePeerLine(interfaceName, index + 1, lines[index] as string));
  }
  return {
    interfaceName,
    hasPrivateKey: privateKey !== '(none)',
    publicKey: publicKey === '(none)' ? null : publicKey,
    listenPort,
    fwmark,
    peers,
  };
}

function parsePeerLine(interfaceName: string, lineNumber: number, line: string): PeerState {
  const fields = line.split('\t');
  if (fields.length !== 8) throw malformed(interfaceName, lineNumber, `expected 8 tab-separated fields, got ${fields.length}`);
  const [publicKey, presharedKey, endpointText, allowedIpsText, handshakeText, rxText, txText, keepaliveText] =
    fields as [string, string, string, string, string, string, string, string];
  if (!isWireGuardKey(publicKey)) throw malformed(interfaceName, lineNumber, 'peer public key is not a WireGuard key');

  let endpoint = null;
  if (endpointText !== '(none)') {
    endpoint = parseEndpoint(endpointText) ?? null;
    if (endpoint === null) throw malformed(interfaceName, lineNumber, `endpoint "${endpointText}"`);
  }
  const allowedIps: IpPrefix[] = [];
  if (allowedIpsText !== '(none)') {
    for (const item of allowedIpsText.split(',')) {
      const prefix = parsePrefix(item);
      if (!prefix) throw malformed(interfaceName, lineNumber, `allowed IP "${item}"`);
      allowedIps.push(prefix);
    }
  }
  const latestHandshake = parseCount(handshakeText);
  const rxBytes = parseByteCount(rxText);
  const txBytes = parseByteCount(txText);
  if (latestHandshake === undefined) throw malformed(interfaceName, lineNumber, `latest handshake "${handshakeText}"`);
  if (rxBytes === undefined || txBytes === undefined) throw malformed(interfaceName, lineNumber, `transfer "${rxText}" "${txText}"`);
  let persistentKeepalive: number | null = null;
  if (keepaliveText !== 'off') {
    persistentKeepalive = parseCount(keepaliveText) ?? null;
    if (persistentKeepalive === null || persistentKeepalive > 65535) {
      throw malformed(interfaceName, lineNumber, `persistent keepalive "${keepaliveText}"`);
    }
  }
  return {
    publicKey,
    hasPresharedKey: presharedKey !== '(none)',
    endpoint,
    allowedIps,
    latestHandshake,
    rxBytes,
    txBytes,
    persistentKeepalive,
  };
}
