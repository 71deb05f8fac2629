/**
 * Experiment (issue 7, item 2): peers listed in each other's config without an
 * endpoint, with a persistent keepalive, as SEED.md advises. WireGuard tried
 * them at interface-up and failed (no endpoint), so it waits REKEY_TIMEOUT
 * (5 s) before trying again. Compared here, on wireguard-go, with both sides
 * changed at the same moment and a datagram sent through the tunnel at once:
 *
 *   endpoint  `wg set IF peer K endpoint E`              (what a naive client does)
 *   rebuild   `wg set IF peer K remove peer K endpoint E allowed-ips … persistent-keepalive 5`
 *
 *   A ── natA (cone) ──┐
 *                      ├── inet ── F
 *   B ── natB (cone) ──┘
 *
 * Prints one JSON line per run: the variant and the milliseconds until both
 * sides have a handshake with each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEndpoint, parsePrefix } from '../../src/ip/address';
import type { PeerChange } from '../../src/wireguard/device-state';
import type { HostName, NatLab } from '../../lab/nat-lab';
import { labUnavailable, withLab } from './helpers';

const RUNS = Number(process.env.REBUILD_RUNS ?? 3);

async function connectTime(lab: NatLab, variant: 'endpoint' | 'rebuild'): Promise<number> {
  const change = (of: HostName, peer: HostName): PeerChange => {
    const other = lab.host(peer);
    const endpoint = parseEndpoint(other.publicEndpoint)!;
    return variant === 'endpoint'
      ? { publicKey: other.keys.publicKey, endpoint }
      : { publicKey: other.keys.publicKey, recreate: true, endpoint, allowedIps: [parsePrefix(`${other.overlayAddress}/32`)!], persistentKeepalive: 5 };
  };
  const start = Date.now();
  await Promise.all([lab.driver('a').applyPeerChanges([change('a', 'b')]), lab.driver('b').applyPeerChanges([change('b', 'a')])]);
  // The client's handshake trigger: one datagram through the tunnel from each side.
  void lab.ping('a', lab.host('b').overlayAddress, 1);
  void lab.ping('b', lab.host('a').overlayAddress, 1);
  const deadline = start + 15_000;
  for (;;) {
    const [ab, ba] = await Promise.all([lab.peerOf('a', 'b'), lab.peerOf('b', 'a')]);
    if ((ab?.latestHandshake ?? 0) > 0 && (ba?.latestHandshake ?? 0) > 0) return Date.now() - start;
    if (Date.now() > deadline) throw new Error(`${variant}: no handshake within 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const variant of ['endpoint', 'rebuild'] as const) {
  test(`listed peers without endpoint, keepalive 5, cone-cone: ${variant}`, { skip: labUnavailable(), timeout: 180_000 }, async (t) => {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await withLab(t, { natA: 'cone', natB: 'cone', style: 'listed', keepalive: 5 }, async (lab) => {
        // WireGuard tried the listed peers at interface-up, well under 5 s ago.
        const ms = await connectTime(lab, variant);
        times.push(ms);
        process.stdout.write(`${JSON.stringify({ experiment: 'listed-peer-connect', variant, ms })}\n`);
      });
    }
    times.sort((x, y) => x - y);
    process.stdout.write(`${JSON.stringify({ experiment: 'listed-peer-connect', variant, runs: times.length, medianMs: times[Math.floor(times.length / 2)], times })}\n`);
    if (variant === 'rebuild') assert.ok(times[Math.floor(times.length / 2)]! < 1000, `rebuild median ${times[Math.floor(times.length / 2)]} ms`);
  });
}
