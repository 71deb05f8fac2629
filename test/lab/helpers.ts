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
 * A and B (with `clientArgs`), and a direct path both ways within 20 s.
 */
export async function connectAB(lab: NatLab, clientArgs: readonly string[] = []): Promise<{ server: LabProcess; clientA: LabProcess; clientB: LabProcess }> {
  const server = await lab.startServer();
  const clientA = lab.startSnakebite('a', lab.clientArgs('a', clientArgs));
  const clientB = lab.startSnakebite('b', lab.clientArgs('b', clientArgs));
  await lab.waitForDirect('a', 'b', { timeoutMs: 20_000 });
  await lab.waitForDirect('b', 'a', { timeoutMs: 20_000 });
  return { server, clientA, clientB };
}
