import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parsePrefix } from '../ip/address';
import { isWireGuardKey } from '../wireguard/key';

/** What a running client daemon publishes for `snakebite status`. */
export interface ClientState {
  readonly interface: string;
  /** The fang server as given to --server. */
  readonly server: string;
  readonly pid: number;
  /** Unix seconds of the last successful round with the fang; 0 before the first. */
  readonly lastSync: number;
  /** The last failure, when the last round failed. */
  readonly lastError?: string;
  /** Peers relayed through the fang, with the unix seconds since when. */
  readonly relayed: readonly { readonly publicKey: string; readonly since: number }[];
  /** Peers the client added itself, which it removes when the fang stops listing them; kept for the next run. */
  readonly added?: readonly string[];
  /**
   * Peers of the user's that the client relays, with the allowed IPs they had
   * (restored exactly when the direct path works, also by the next run) and
   * whether those were moved onto the fang peer; kept for the next run.
   */
  readonly changed?: readonly { readonly publicKey: string; readonly since: number; readonly allowedIps: readonly string[]; readonly viaFang: boolean }[];
  /** The interface's kernel index when this was written: a different one now means it was re-created since. */
  readonly ifindex?: number;
  /** Listed peers the client leaves alone (refused, or the user's own), with why. */
  readonly unmanaged?: readonly { readonly publicKey: string; readonly reason: string }[];
}

/** `/run/snakebite/<interface>.json`, or under $SNAKEBITE_STATE_DIR. */
export function stateFilePath(interfaceName: string): string {
  return join(process.env.SNAKEBITE_STATE_DIR ?? '/run/snakebite', `${interfaceName}.json`);
}

/**
 * Writes atomically (temp file, then rename), so a reader never sees half a
 * file. The temp name is random and created exclusively, so nobody can plant
 * a symlink there for us to write through; rename replaces a link at the
 * final name instead of following it.
 */
export function writeState(path: string, state: ClientState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const temp = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, `${JSON.stringify(state)}\n`, { mode: 0o644, flag: 'wx' });
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      /* it was never made, or is already gone */
    }
    throw error;
  }
}

/** A state file read back: the state, or why it cannot be used (then it is ignored, never trusted in part). */
export type StateRead = { readonly state: ClientState; readonly problem?: undefined } | { readonly state?: undefined; readonly problem?: string };

/** Reads and checks a state file; a missing file is no problem, a malformed one says what is wrong. */
export function readStateFile(path: string): StateRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? {} : { problem: `cannot read ${path}: ${code ?? (error as Error).message}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `${path} is not JSON: ${(error as Error).message}` };
  }
  const problem = stateProblem(value);
  return problem ? { problem: `${path}: ${problem}` } : { state: value as ClientState };
}

/** What makes `value` not a ClientState, or undefined when it is one. */
export function stateProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected an object';
  const v = value as Record<string, unknown>;
  if (typeof v.interface !== 'string') return 'interface: expected a string';
  if (typeof v.server !== 'string') return 'server: expected a string';
  if (!Number.isSafeInteger(v.pid) || (v.pid as number) <= 0) return 'pid: expected a positive integer';
  if (typeof v.lastSync !== 'number' || !Number.isFinite(v.lastSync)) return 'lastSync: expected a number';
  if (v.lastError !== undefined && typeof v.lastError !== 'string') return 'lastError: expected a string';
  if (!Array.isArray(v.relayed)) return 'relayed: expected an array';
  for (const [i, item] of v.relayed.entries()) {
    const r = item as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || !isWireGuardKey(r.publicKey) || typeof r.since !== 'number') return `relayed[${i}]: expected { publicKey, since }`;
  }
  if (v.changed !== undefined) {
    if (!Array.isArray(v.changed)) return 'changed: expected an array';
    for (const [i, item] of v.changed.entries()) {
      const c = item as Record<string, unknown> | null;
      const ok =
        typeof c === 'object' && c !== null && isWireGuardKey(c.publicKey) && typeof c.since === 'number' && typeof c.viaFang === 'boolean' &&
        Array.isArray(c.allowedIps) && c.allowedIps.every((p) => typeof p === 'string' && parsePrefix(p) !== undefined);
      if (!ok) return `changed[${i}]: expected { publicKey, since, allowedIps: [prefix...], viaFang }`;
    }
  }
  if (v.ifindex !== undefined && (!Number.isSafeInteger(v.ifindex) || (v.ifindex as number) <= 0)) return 'ifindex: expected a positive integer';
  if (v.unmanaged !== undefined) {
    if (!Array.isArray(v.unmanaged)) return 'unmanaged: expected an array';
    for (const [i, item] of v.unmanaged.entries()) {
      const u = item as Record<string, unknown> | null;
      if (typeof u !== 'object' || u === null || !isWireGuardKey(u.publicKey) || typeof u.reason !== 'string') return `unmanaged[${i}]: expected { publicKey, reason }`;
    }
  }
  if (v.added !== undefined) {
    if (!Array.isArray(v.added)) return 'added: expected an array of public keys';
    const bad = v.added.findIndex((k) => !isWireGuardKey(k));
    if (bad >= 0) return `added[${bad}]: expected a public key`;
  }
  return undefined;
}

/** The state of a daemon that still runs, or undefined (none, unreadable, malformed, or its process is gone). */
export function readLiveState(path: string, isAlive: (pid: number) => boolean = defaultIsAlive): ClientState | undefined {
  const { state } = readStateFile(path);
  return state && isAlive(state.pid) ? state : undefined;
}

function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
