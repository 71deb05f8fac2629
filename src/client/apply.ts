import type { Plan } from '../plan/plan';
import type { WireGuardDriver } from '../wireguard/driver';
import type { HandshakeTrigger } from './punch';

/**
 * Carries a plan out: every change in one driver call (`wg` parses every
 * argument before it changes anything), then one probe per changed peer so
 * both sides start punching at once.
 */
export async function applyPlan(driver: WireGuardDriver, plan: Plan, triggerHandshakes: HandshakeTrigger): Promise<void> {
  if (plan.changes.length === 0) return;
  // Turning keepalive off and on again in the same batch makes WireGuard send a
  // handshake to the new endpoint at once (see PlannedChange.kickKeepalive).
  const kicks = plan.changes
    .filter((change) => change.kickKeepalive !== undefined)
    .flatMap((change) => [
      { publicKey: change.publicKey, persistentKeepalive: 0 },
      { publicKey: change.publicKey, persistentKeepalive: change.kickKeepalive! },
    ]);
  await driver.applyPeerChanges([...plan.changes, ...kicks]);
  await triggerHandshakes(plan.changes.flatMap((change) => (change.probeAddress ? [change.probeAddress] : [])));
}
