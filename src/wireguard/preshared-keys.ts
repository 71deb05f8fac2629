import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWireGuardKey, type WireGuardKey } from './key';

/**
 * Parses `wg show IF preshared-keys` (`<peer key>\t<preshared key or (none)>`
 * per line) into the peers that have one. The values are secrets: callers
 * write them only to files `withKeyFiles` makes and deletes.
 */
export function parsePresharedKeys(output: string): Map<WireGuardKey, string> {
  const keys = new Map<WireGuardKey, string>();
  for (const line of output.split('\n')) {
    const [peer, psk] = line.trim().split('\t');
    if (peer && psk && isWireGuardKey(peer) && isWireGuardKey(psk)) keys.set(peer, psk);
  }
  return keys;
}

/**
 * Runs `work` with each secret in its own file (mode 0600, created
 * exclusively, in a fresh directory of mode 0700), so `wg` reads it from a
 * path and the secret never appears on a command line; removes them all after.
 */
export async function withKeyFiles<T>(secrets: ReadonlyMap<WireGuardKey, string>, work: (paths: ReadonlyMap<WireGuardKey, string>) => Promise<T>): Promise<T> {
  if (secrets.size === 0) return work(new Map());
  let n = 0;
  return withPrivateFiles(
    'snakebite-psk-',
    [...secrets].map(([peer, secret]) => ({ id: peer, name: `psk${n++}`, text: `${secret}\n` })),
    work,
  );
}

/**
 * Writes each text to its own file (mode 0600, created exclusively) in a
 * fresh directory of mode 0700, runs `work` with their paths by id, and
 * removes the directory after, whatever happens. `wg` reads key and config
 * files by path: /dev/stdin is a socket under Node, which wg cannot fopen.
 */
export async function withPrivateFiles<T>(
  prefix: string,
  files: readonly { readonly id: string; readonly name: string; readonly text: string }[],
  work: (paths: ReadonlyMap<string, string>) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const paths = new Map<string, string>();
    for (const file of files) {
      const path = join(dir, file.name);
      writeFileSync(path, file.text, { mode: 0o600, flag: 'wx' });
      paths.set(file.id, path);
    }
    return await work(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
