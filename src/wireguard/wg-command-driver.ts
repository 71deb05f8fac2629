import { execFile } from 'node:child_process';
import { formatEndpoint, formatPrefix } from '../ip/address';
import { SnakebiteError } from '../errors';
import type { DeviceState, PeerChange } from './device-state';
import { parseDump } from './dump-parser';
import type { WireGuardDriver } from './driver';
import { parsePresharedKeys, withKeyFiles } from './preshared-keys';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one program with an argument array (never a shell); rejects with the raw error. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

const WG_TIMEOUT_MS = 10_000;

export const runCommand: CommandRunner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: { ...process.env, LC_ALL: 'C' }, timeout: WG_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });

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

/** Turns a failed `wg` run into an error that names the command and says what to do. */
export function explainWgFailure(interfaceName: string, args: readonly string[], error: unknown): SnakebiteError {
  const e = error as NodeJS.ErrnoException & { stderr?: string; killed?: boolean; code?: string | number };
  const argv = ['wg', ...args].join(' ');
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
  constructor(
    readonly interfaceName: string,
    private readonly run: CommandRunner = runCommand,
    private readonly wgPath: string = 'wg',
  ) {}

  async readDevice(): Promise<DeviceState> {
    const args = ['show', this.interfaceName, 'dump'];
    let result: CommandResult;
    try {
      result = await this.run(this.wgPath, args);
    } catch (error) {
      throw explainWgFailure(this.interfaceName, args, error);
    }
    return parseDump(this.interfaceName, result.stdout);
  }

  async applyPeerChanges(changes: readonly PeerChange[]): Promise<void> {
    if (changes.length === 0) return;
    const secrets = changes.some((c) => c.recreate && c.keepPresharedKey) ? await this.presharedKeys() : new Map<string, string>();
    const wanted = new Map([...secrets].filter(([peer]) => changes.some((c) => c.publicKey === peer && c.recreate && c.keepPresharedKey)));
    await withKeyFiles(wanted, async (files) => {
      const args = wgSetArguments(this.interfaceName, changes, files);
      try {
        await this.run(this.wgPath, args);
      } catch (error) {
        throw explainWgFailure(this.interfaceName, args, error);
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
