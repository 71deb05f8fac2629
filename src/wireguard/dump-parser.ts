import { parseEndpoint, parsePrefix, type IpPrefix } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { DeviceState, PeerState } from './device-state';
import { isWireGuardKey, type WireGuardKey } from './key';

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
  return new DumpParser(interfaceName).parse(text);
}

interface ParsedLine {
  readonly line: string;
  readonly endpointText: string;
  readonly allowedIpsText: string;
  readonly state: PeerState;
}

/**
 * Parses successive dumps of one interface, reusing what did not change: an
 * unchanged line gives the same PeerState object, and an unchanged endpoint or
 * allowed-IPs field the same Endpoint or IpPrefix[] object. Identity therefore
 * tells a caller what moved (see diffStates in src/fang/peer-diff.ts) without
 * formatting or comparing addresses, and a read of 10,000 mostly unchanged
 * peers costs a split and a few map lookups per line.
 */
export class DumpParser {
  private previous = new Map<WireGuardKey, ParsedLine>();

  constructor(readonly interfaceName: string) {}

  parse(text: string): DeviceState {
    const interfaceName = this.interfaceName;
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    const head = lines[0];
    if (head === undefined || head === '') throw malformed(interfaceName, 1, 'empty output');
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
    const next = new Map<WireGuardKey, ParsedLine>();
    for (let index = 1; index < lines.length; index++) {
      const line = lines[index] as string;
      if (line === '') continue;
      const before = this.previous.get(line.slice(0, line.indexOf('\t')));
      const parsed = before !== undefined && before.line === line ? before : parsePeerLine(interfaceName, index + 1, line, before);
      next.set(parsed.state.publicKey, parsed);
      peers.push(parsed.state);
    }
    this.previous = next;
    return {
      interfaceName,
      hasPrivateKey: privateKey !== '(none)',
      publicKey: publicKey === '(none)' ? null : publicKey,
      listenPort,
      fwmark,
      peers,
    };
  }
}

function parsePeerLine(interfaceName: string, lineNumber: number, line: string, before: ParsedLine | undefined): ParsedLine {
  const fields = line.split('\t');
  if (fields.length !== 8) throw malformed(interfaceName, lineNumber, `expected 8 tab-separated fields, got ${fields.length}`);
  const [publicKey, presharedKey, endpointText, allowedIpsText, handshakeText, rxText, txText, keepaliveText] =
    fields as [string, string, string, string, string, string, string, string];
  if (!isWireGuardKey(publicKey)) throw malformed(interfaceName, lineNumber, 'peer public key is not a WireGuard key');

  let endpoint = null;
  if (before !== undefined && before.endpointText === endpointText) {
    endpoint = before.state.endpoint;
  } else if (endpointText !== '(none)') {
    endpoint = parseEndpoint(endpointText) ?? null;
    if (endpoint === null) throw malformed(interfaceName, lineNumber, `endpoint "${endpointText}"`);
  }
  let allowedIps: readonly IpPrefix[] = [];
  if (before !== undefined && before.allowedIpsText === allowedIpsText) {
    allowedIps = before.state.allowedIps;
  } else if (allowedIpsText !== '(none)') {
    const parsed: IpPrefix[] = [];
    for (const item of allowedIpsText.split(',')) {
      const prefix = parsePrefix(item);
      if (!prefix) throw malformed(interfaceName, lineNumber, `allowed IP "${item}"`);
      parsed.push(prefix);
    }
    allowedIps = parsed;
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
  const state: PeerState = {
    publicKey,
    hasPresharedKey: presharedKey !== '(none)',
    endpoint,
    allowedIps,
    latestHandshake,
    rxBytes,
    txBytes,
    persistentKeepalive,
  };
  return { line, endpointText, allowedIpsText, state };
}
