import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type { LabProcess } from '../../lab/exec';
import { NatLab, type NatLabOptions } from '../../lab/nat-lab';

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
   * Clients start → direct handshake both ways on cone NATs: measured about
   * 0.45 s on a quiet machine, 2–2.5 s with the 2 cores loaded 5 times over.
   * Started right after interface-up (lab/matrix.ts), a client that waited
   * for WireGuard's 5 s retry would need 4.5 s or more: a pass proves the
   * client got the handshake going itself.
   */
  directMs: 3_500,
  /** Clients start → a LAN path behind one NAT: measured about 0.5 s (2 s loaded). */
  lanMs: 3_500,
  /** Issue 7: no pair is left without traffic for more than 10 s after both clients run. */
  trafficMs: 10_000,
  /**
   * Clients start → a pair the README says is relayed has settled on the relay:
   * the client gives a punch `--relay-after` (8 s) before it relays.
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
 * The common start of a scenario: `snakebite server` on F, client daemons on
 * A and B (with `clientArgs`), and a direct path both ways within `BOUND.directMs`.
 */
export async function connectAB(lab: NatLab, clientArgs: readonly string[] = []): Promise<{ server: LabProcess; clientA: LabProcess; clientB: LabProcess; connectedMs: number }> {
  const server = await lab.startServer();
  const since = Date.now();
  const clientA = lab.startSnakebite('a', lab.clientArgs('a', clientArgs));
  const clientB = lab.startSnakebite('b', lab.clientArgs('b', clientArgs));
  await lab.waitForDirect('a', 'b', { timeoutMs: BOUND.directMs, since });
  await lab.waitForDirect('b', 'a', { timeoutMs: BOUND.directMs, since });
  return { server, clientA, clientB, connectedMs: Date.now() - since };
}

