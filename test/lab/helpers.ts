import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type { LabProcess } from '../../lab/exec';
import { clientsRunning } from '../../lab/matrix';
import { NatLab, type HostName, type NatLabOptions } from '../../lab/nat-lab';

/** Why lab tests cannot run here, or undefined when they can (root, /dev/net/tun, wireguard-go). */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'lab tests need root (run: sudo npm test)';
  if (!existsSync('/dev/net/tun')) return 'lab tests need /dev/net/tun';
  return undefined;
}

/**
 * How long lab tests wait, near what the lab measured (docs/benchmarks.md,
 * medians on a 2-core VM) with room for a loaded machine, not ten times over.
 */
export const BOUND = {
  /**
   * Every client running (logged `client-started`) → a direct handshake both
   * ways on cone NATs: measured 0.3–0.45 s on a quiet machine, 0.4–1.7 s (S2
   * 0.43 s median, S1 1.2 s) with the 2 cores loaded 7 to 16 times over
   * (docs/benchmarks.md). The clients start right after interface-up
   * (lab/matrix.ts), so a client that waited for WireGuard's armed 5 s retry
   * would need about 4.5 s on a quiet machine: a pass proves the client got
   * the handshake going itself.
   */
  directMs: 2_500,
  /** Every client running → a LAN path behind one NAT (it needs both peers' reports at the fang first): 0.5 s quiet, 1.3–2.2 s loaded. */
  lanMs: 3_000,
  /** Issue 7: no pair is left without traffic for more than 10 s after both clients run. */
  trafficMs: 10_000,
  /**
   * Every client running → a pair the README says is relayed has settled on
   * the relay: the client gives a punch `--relay-after` (8 s) before it relays.
   */
  relaySettledMs: 11_000,
} as const;

/**
 * Builds a lab for one test and tears it down when the test ends, pass or
 * fail; on failure the lab's process output is attached to the test's diagnostics.
 */
export async function withLab(t: TestContext, options: NatLabOptions, body: (lab: NatLab) => Promise<void>): Promise<void> {
  const lab = await NatLab.create(options);
  try {
    await body(lab);
  } catch (error) {
    t.diagnostic(lab.outputs());
    throw error;
  } finally {
    lab.teardown();
  }
}

/**
 * Starts client daemons on `names` at once and resolves when every one runs
 * (has logged `client-started`): `spawned` and `up` are ms since the epoch.
 */
export async function startClients(lab: NatLab, names: readonly HostName[], clientArgs: readonly string[] = []): Promise<{ clients: LabProcess[]; spawned: number; up: number }> {
  const spawned = Date.now();
  const clients = names.map((name) => lab.startSnakebite(name, lab.clientArgs(name, clientArgs)));
  return { clients, spawned, up: await clientsRunning(clients, spawned) };
}

/** What is left of `boundMs` counted from `from` (ms since the epoch). */
export function remaining(from: number, boundMs: number): number {
  return Math.max(0, from + boundMs - Date.now());
}

/**
 * The common start of a scenario: `snakebite server` on F, client daemons on
 * A and B (with `clientArgs`), and once both run, a direct path both ways
 * within `BOUND.directMs`.
 */
export async function connectAB(lab: NatLab, clientArgs: readonly string[] = []): Promise<{ server: LabProcess; clientA: LabProcess; clientB: LabProcess; connectedMs: number }> {
  const server = await lab.startServer();
  const { clients: [clientA, clientB], spawned, up } = await startClients(lab, ['a', 'b'], clientArgs);
  await lab.waitForDirect('a', 'b', { timeoutMs: remaining(up, BOUND.directMs), since: spawned });
  await lab.waitForDirect('b', 'a', { timeoutMs: remaining(up, BOUND.directMs), since: spawned });
  return { server, clientA: clientA!, clientB: clientB!, connectedMs: Date.now() - up };
}
