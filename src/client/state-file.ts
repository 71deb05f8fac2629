import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

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
}

/** `/run/snakebite/<interface>.json`, or under $SNAKEBITE_STATE_DIR. */
export function stateFilePath(interfaceName: string): string {
  return join(process.env.SNAKEBITE_STATE_DIR ?? '/run/snakebite', `${interfaceName}.json`);
}

/** Writes atomically (temp file, then rename), so a reader never sees half a file. */
export function writeState(path: string, state: ClientState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(state)}\n`, { mode: 0o644 });
  renameSync(temp, path);
}

/** The state of a daemon that still runs, or undefined (none, unreadable, or its process is gone). */
export function readLiveState(path: string, isAlive: (pid: number) => boolean = defaultIsAlive): ClientState | undefined {
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')) as ClientState;
    return typeof state.pid === 'number' && isAlive(state.pid) ? state : undefined;
  } catch {
    return undefined;
  }
}

function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The state a previous run left, whether or not its process still runs; undefined when there is none. */
export function readAnyState(path: string): ClientState | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ClientState;
  } catch {
    return undefined;
  }
}
