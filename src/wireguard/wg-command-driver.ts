import { execFile } from 'node:child_process';
import { formatEndpoint, formatPrefix } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { DeviceState, PeerChange } from './device-state';
import { DumpParser } from './dump-parser';
import type { WireGuardDriver } from './driver';
import { parsePresharedKeys, withKeyFiles, withPrivateFiles } from './preshared-keys';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs one program with an argument array (never a shell), writing `input` to
 * its stdin, killing it after `timeoutMs` (WG_TIMEOUT_MS when undefined); rejects with the raw error.
 */
export type CommandRunner = (file: string, args: readonly string[], input?: string, timeoutMs?: number) => Promise<CommandResult>;

const WG_TIMEOUT_MS = 10_000;

/**
 * How long a batch of `changes` may take: wireguard-go needs about a
 * millisecond per new peer (5,000 took 3 to 6 s on a busy 2-core machine).
 */
export function applyTimeoutMs(changes: number): number {
  return WG_TIMEOUT_MS + 2 * changes;
}

export const runCommand: CommandRunner = (file, args, input, timeoutMs = WG_TIMEOUT_MS) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, LC_ALL: 'C' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
    // A program that exits before reading all of stdin makes the pipe fail with EPIPE; its exit code tells what happened.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });

/**
 * Bytes of `wg set` arguments put in one command. Linux refuses an exec whose
 * arguments and environment pass a quarter of the stack limit (2 MiB with the
 * usual 8 MiB), and any single argument over 128 KiB, with E2BIG: a fresh
 * client adding 10,765 peers hit it. Larger batches go through a configuration file.
 */
export const WG_SET_ARGUMENT_BUDGET = 256 * 1024;

/**
 * The `wg set` arguments that apply all of `changes` in one call.
 * `presharedKeyFiles` names, for recreated peers that keep their preshared
 * key, the file `wg` reads it from.
 */
export function wgSetArguments(interfaceName: string, changes: readonly PeerChange[], presharedKeyFiles: ReadonlyMap<string, string> = new Map()): string[] {
  const args = ['set', interfaceName];
  for (const change of changes) {
    args.push('peer', change.publicKey);
    if (change.remove) {
      args.push('remove');
      continue;
    }
    if (change.recreate) {
      args.push('remove', 'peer', change.publicKey);
      const file = change.keepPresharedKey ? presharedKeyFiles.get(change.publicKey) : undefined;
      if (file) args.push('preshared-key', file);
    }
    if (change.endpoint) args.push('endpoint', formatEndpoint(change.endpoint));
    if (change.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(change.persistentKeepalive));
    if (change.allowedIps) args.push('allowed-ips', change.allowedIps.map(formatPrefix).join(','));
  }
  return args;
}

/** Bytes an argument list takes in exec: the strings, their terminators and their pointers. */
function argumentBytes(args: readonly string[]): number {
  let bytes = 0;
  for (const arg of args) bytes += Buffer.byteLength(arg) + 9;
  return bytes;
}

/**
 * The `wg addconf` configuration that makes the same changes as `wg set`
 * would, for changes that give allowed IPs. Both replace a listed peer's
 * allowed IPs with the given list and leave unlisted peers alone (wg's config
 * reader marks every [Peer] section "replace allowed IPs"), so they are
 * interchangeable here; a change without allowed IPs or a removal cannot be
 * written as a [Peer] section (it would clear the peer's allowed IPs) and stays
 * with `wg set`. No key material: public keys only.
 */
export function addconfText(changes: readonly PeerChange[]): string {
  const sections: string[] = [];
  for (const change of changes) {
    if (change.remove || !change.allowedIps) throw new Error('addconfText: only changes that set allowed IPs');
    let section = `[Peer]\nPublicKey = ${change.publicKey}\n`;
    if (change.endpoint) section += `Endpoint = ${formatEndpoint(change.endpoint)}\n`;
    if (change.persistentKeepalive !== undefined) section += `PersistentKeepalive = ${change.persistentKeepalive}\n`;
    section += `AllowedIPs = ${change.allowedIps.map(formatPrefix).join(', ')}\n`;
    sections.push(section);
  }
  return sections.join('');
}

/**
 * How a batch is carried out: one `wg set` when its arguments fit
 * WG_SET_ARGUMENT_BUDGET; otherwise the changes that give allowed IPs as one
 * `wg addconf` (its `input` is the configuration; the driver hands it to wg
 * in a temporary file, whose path replaces the last argument), then the rest in
 * as few `wg set` runs as fit, in order.
 */
export type WgInvocation = { readonly args: readonly string[]; readonly input?: string };

export function wgInvocations(interfaceName: string, changes: readonly PeerChange[], budget = WG_SET_ARGUMENT_BUDGET, presharedKeyFiles: ReadonlyMap<string, string> = new Map()): WgInvocation[] {
  if (changes.length === 0) return [];
  const all = wgSetArguments(interfaceName, changes, presharedKeyFiles);
  if (argumentBytes(all) <= budget) return [{ args: all }];
  const invocations: WgInvocation[] = [];
  // A re-created peer needs its removal in the same command: it stays with `wg set`.
  const viaConfig = changes.filter((change) => !change.remove && !change.recreate && change.allowedIps !== undefined);
  if (viaConfig.length > 0) invocations.push({ args: ['addconf', interfaceName, 'peers.conf'], input: addconfText(viaConfig) });
  let batch: PeerChange[] = [];
  let bytes = argumentBytes(['set', interfaceName]);
  for (const change of changes) {
    if (!change.remove && !change.recreate && change.allowedIps !== undefined) continue;
    const size = argumentBytes(wgSetArguments(interfaceName, [change], presharedKeyFiles)) - argumentBytes(['set', interfaceName]);
    if (batch.length > 0 && bytes + size > budget) {
      invocations.push({ args: wgSetArguments(interfaceName, batch, presharedKeyFiles) });
      batch = [];
      bytes = argumentBytes(['set', interfaceName]);
    }
    batch.push(change);
    bytes += size;
  }
  if (batch.length > 0) invocations.push({ args: wgSetArguments(interfaceName, batch, presharedKeyFiles) });
  return invocations;
}

/**
 * Runs `work` with `text` in a file of mode 0600 in a fresh directory of mode
 * 0700, removed afterwards. The text holds public keys and endpoints only.
 */
export function withConfigFile<T>(text: string, work: (path: string) => Promise<T>): Promise<T> {
  return withPrivateFiles('snakebite-conf-', [{ id: 'conf', name: 'peers.conf', text }], (paths) => work(paths.get('conf')!));
}

/** Turns a failed `wg` run into an error that names the command and says what to do. */
export function explainWgFailure(interfaceName: string, args: readonly string[], error: unknown): SnakebiteError {
  const e = error as NodeJS.ErrnoException & { stderr?: string; killed?: boolean; code?: string | number };
  const whole = ['wg', ...args].join(' ');
  const argv = whole.length > 400 ? `${whole.slice(0, 400)}... (${args.length} arguments)` : whole;
  if (e.code === 'ENOENT') {
    return new SnakebiteError('SB_WG_NOT_FOUND', 'the `wg` command was not found on PATH', 'install wireguard-tools (Debian: apt-get install wireguard-tools)', { cause: error });
  }
  if (e.killed) {
    return new SnakebiteError('SB_WG_FAILED', `${argv}: no answer within ${WG_TIMEOUT_MS / 1000} s`, 'check that the WireGuard implementation behind the interface is running', { cause: error });
  }
  const stderr = (e.stderr ?? '').trim();
  if (/Unable to access interface|No such device/i.test(stderr)) {
    return new SnakebiteError('SB_NO_SUCH_INTERFACE', `interface ${interfaceName} does not exist or is not WireGuard (${argv}: ${stderr})`, `bring it up first (wg-quick up ${interfaceName})`, { cause: error });
  }
  if (/Operation not permitted|Permission denied/i.test(stderr)) {
    return new SnakebiteError('SB_PERMISSION', `${argv}: ${stderr}`, 'run as root or give the process CAP_NET_ADMIN', { cause: error });
  }
  return new SnakebiteError('SB_WG_FAILED', `command failed with exit code ${String(e.code)}: ${argv}: ${stderr || e.message}`, undefined, { cause: error });
}

/** Drives any WireGuard implementation through the `wg` command of wireguard-tools. */
export class WgCommandDriver implements WireGuardDriver {
  /** Keeps the last dump, so a read of a mostly unchanged interface reuses its objects. */
  private readonly parser: DumpParser;
  private peersLastRead = 0;

  constructor(
    readonly interfaceName: string,
    private readonly run: CommandRunner = runCommand,
    private readonly wgPath: string = 'wg',
  ) {
    this.parser = new DumpParser(interfaceName);
  }

  async readDevice(): Promise<DeviceState> {
    const args = ['show', this.interfaceName, 'dump'];
    let result: CommandResult;
    try {
      // wireguard-go takes seconds to print tens of thousands of peers: give a large interface time in proportion.
      result = await this.run(this.wgPath, args, undefined, applyTimeoutMs(this.peersLastRead));
    } catch (error) {
      throw explainWgFailure(this.interfaceName, args, error);
    }
    const state = this.parser.parse(result.stdout);
    this.peersLastRead = state.peers.length;
    return state;
  }

  async applyPeerChanges(changes: readonly PeerChange[]): Promise<void> {
    if (changes.length === 0) return;
    const keep = changes.filter((c) => c.recreate && c.keepPresharedKey).map((c) => c.publicKey);
    const secrets = keep.length > 0 ? await this.presharedKeys() : new Map<string, string>();
    const wanted = new Map([...secrets].filter(([peer]) => keep.includes(peer)));
    // Re-creating a peer without the preshared key it had would break its tunnel: apply nothing instead.
    const lost = keep.filter((peer) => !wanted.has(peer));
    if (lost.length > 0) {
      throw new SnakebiteError(
        'SB_WG_FAILED',
        `cannot re-create ${lost.length} peer(s) on ${this.interfaceName} (first ${lost[0]!.slice(0, 8)}): wg show ${this.interfaceName} preshared-keys gave no key for them; nothing was changed`,
        'the interface changed while it was read; the next round tries again',
      );
    }
    await withKeyFiles(wanted, async (files) => {
      for (const { args, input } of wgInvocations(this.interfaceName, changes, WG_SET_ARGUMENT_BUDGET, files)) {
        try {
          if (input === undefined) await (changes.length < 1000 ? this.run(this.wgPath, args) : this.run(this.wgPath, args, undefined, applyTimeoutMs(changes.length)));
          // wg opens its configuration by path, and /dev/stdin is a socket under Node (fopen: ENXIO): a file it is.
          else await withConfigFile(input, (path) => this.run(this.wgPath, [...args.slice(0, -1), path], undefined, applyTimeoutMs(changes.length)));
        } catch (error) {
          throw explainWgFailure(this.interfaceName, args, error);
        }
      }
    });
  }

  /** The peers' preshared keys (secrets: only ever written to key files). */
  private async presharedKeys(): Promise<Map<string, string>> {
    const args = ['show', this.interfaceName, 'preshared-keys'];
    try {
      return parsePresharedKeys((await this.run(this.wgPath, args)).stdout);
    } catch (error) {
      // Whatever `wg` printed may hold secrets: keep it off the error.
      if (error && typeof error === 'object') delete (error as { stdout?: unknown }).stdout;
      throw explainWgFailure(this.interfaceName, args, error);
    }
  }
}
