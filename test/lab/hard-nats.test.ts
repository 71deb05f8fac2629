import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint, formatIp } from '../../src/ip/address';
import { waitFor } from '../../lab/exec';
import type { HostName, NatLab } from '../../lab/nat-lab';
import { BOUND, labUnavailable, remaining, startClients, withLab } from './helpers';

const skip = labUnavailable();

async function status(lab: NatLab, name: HostName): Promise<{ peers: { publicKey: string; path: string; reason: string; endpoint: string | null }[]; notes: string[] }> {
  const host = lab.host(name);
  const out = await lab.inNs(host.ns, [process.execPath, require.resolve('../../../bin/snakebite'), 'status', '--interface', host.wgInterface, '--json']);
  return JSON.parse(out.stdout) as { peers: { publicKey: string; path: string; reason: string; endpoint: string | null }[]; notes: string[] };
}

function carriedByF(before: readonly { publicKey: string; rxBytes: number; txBytes: number }[], after: typeof before, key: string): number {
  const b = before.find((p) => p.publicKey === key)!;
  const a = after.find((p) => p.publicKey === key)!;
  return a.rxBytes - b.rxBytes + (a.txBytes - b.txBytes);
}

test('symmetric-symmetric: A and B talk through F, status says relayed and why; cone again: direct again', { skip, timeout: 180_000 }, async (t) => {
  await withLab(t, { natA: 'symmetric', natB: 'symmetric' }, async (lab) => {
    const [a, b] = [lab.host('a'), lab.host('b')];
    await lab.startServer();
    const { up } = await startClients(lab, ['a', 'b']);
    const firstMs = await lab.firstReply('a', 'b', up, BOUND.trafficMs);
    assert.notEqual(firstMs, null, `no reply from B within ${BOUND.trafficMs} ms`);
    t.diagnostic(`relayed path up ${firstMs} ms after the clients ran`);
    // Relayed at once; the diagnosis needs both peers' reports at the fang.
    let last = '';
    await waitFor('status to say relayed, and why', async () => {
      const peer = (await status(lab, 'a')).peers.find((p) => p.publicKey === b.keys.publicKey);
      last = `${peer?.path}: ${peer?.reason}`;
      return peer?.path === 'relayed' && /both NATs give each destination its own port/.test(peer.reason) ? peer : undefined;
    }, { timeoutMs: 10_000, intervalMs: 500 }).catch((error: Error) => assert.fail(`${error.message}; last status: ${last}`));

    const fBefore = (await lab.dump('f')).peers;
    const ping = await lab.ping('a', b.overlayAddress, 20, { intervalS: 0.05, size: 1000 });
    assert.ok(ping.received >= 18, ping.output);
    const fAfter = (await lab.dump('f')).peers;
    assert.ok(carriedByF(fBefore, fAfter, a.keys.publicKey) > 20 * 1000, 'F carried the relayed traffic');

    // The NATs turn into cone NATs: the direct path comes back by itself, at
    // the next direct retry (5 s doubling: measured about 4 s; the bound allows
    // the retry that falls due 20 s after the last).
    await lab.setNat('natA', 'cone');
    await lab.setNat('natB', 'cone');
    const switched = Date.now();
    await lab.waitForDirect('a', 'b', { timeoutMs: 25_000, since: switched });
    t.diagnostic(`direct again ${Date.now() - switched} ms after the NATs became cone`);
    await lab.waitForDirect('b', 'a', { timeoutMs: 10_000, since: switched });
    const f2 = (await lab.dump('f')).peers;
    const direct = await lab.ping('a', b.overlayAddress, 20, { intervalS: 0.05, size: 1000 });
    assert.ok(direct.received >= 18, direct.output);
    const f3 = (await lab.dump('f')).peers;
    assert.ok(carriedByF(f2, f3, a.keys.publicKey) < 5000, 'F no longer carries their traffic');
    const s = await status(lab, 'a');
    assert.equal(s.peers.find((p) => p.publicKey === b.keys.publicKey)?.path, 'direct');
  });
});

test('same-lan: A and C behind one NAT that does not hairpin connect over their LAN addresses', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, { withHostC: true }, async (lab) => {
    const [a, c] = [lab.host('a'), lab.host('c')];
    await lab.startServer();
    const { spawned, up } = await startClients(lab, ['a', 'c']);
    const cAtA = await lab.waitForDirect('a', 'c', { timeoutMs: remaining(up, BOUND.lanMs), since: spawned, endpoint: `${c.lanAddress}:51820` });
    await lab.waitForDirect('c', 'a', { timeoutMs: remaining(up, BOUND.lanMs), since: spawned, endpoint: `${a.lanAddress}:51820` });
    t.diagnostic(`LAN handshake ${Date.now() - up} ms after the clients ran`);
    assert.equal(formatEndpoint(cAtA.endpoint!), '192.168.1.3:51820');
    const ping = await lab.ping('a', c.overlayAddress, 5);
    assert.ok(ping.received >= 4, ping.output);
    const s = await status(lab, 'a');
    assert.equal(s.peers.find((p) => p.publicKey === c.keys.publicKey)?.path, 'lan');
    // Both use ListenPort 51820 behind 203.0.113.10: the NAT had to move one of them.
    assert.ok(s.notes.some((n) => /listen-port clash behind 203\.0\.113\.10/.test(n)), s.notes.join('\n'));
  });
});

test('cone-symmetric: A (cone) and B (symmetric) exchange traffic at once, and settle relayed through F as the README says', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, { natA: 'cone', natB: 'symmetric' }, async (lab) => {
    const b = lab.host('b');
    await lab.startServer();
    const { up } = await startClients(lab, ['a', 'b']);
    const firstMs = await lab.firstReply('a', 'b', up, BOUND.trafficMs);
    assert.notEqual(firstMs, null, `no reply from B within ${BOUND.trafficMs} ms`);
    t.diagnostic(`first reply ${firstMs} ms after the clients ran`);
    // Past the relay deadline: both sides relay, and status says why, from B's report.
    await new Promise((r) => setTimeout(r, remaining(up, BOUND.relaySettledMs)));
    assert.equal((await lab.pathOf('a', 'b')).path, 'relayed');
    assert.equal((await lab.pathOf('b', 'a')).path, 'relayed');
    const shown = await waitFor('status to explain the relay', async () => {
      const peer = (await status(lab, 'a')).peers.find((p) => p.publicKey === b.keys.publicKey);
      return peer && peer.path === 'relayed' && !/not reported/.test(peer.reason) ? peer : undefined;
    }, { timeoutMs: 5_000, intervalMs: 500 });
    assert.match(shown.reason, /their NAT gives each destination its own port/);
    const ping = await lab.ping('a', b.overlayAddress, 10, { intervalS: 0.1 });
    assert.ok(ping.received >= 9, ping.output);
  });
});

test('forwarded-symmetric: a symmetric NAT facing a forwarded port goes direct, at the port the symmetric NAT really uses', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, { natA: 'forwarded', natB: 'symmetric' }, async (lab) => {
    const b = lab.host('b');
    await lab.startServer();
    const started = Date.now();
    lab.startSnakebite('a', lab.clientArgs('a'));
    lab.startSnakebite('b', lab.clientArgs('b'));
    // B's packets come to A from the port B's NAT opened towards A, not the one the
    // fang sees: A's WireGuard learns it from them, and Snakebite keeps it.
    const bAtA = await waitFor('a direct path from A to B', async () => {
      const entry = await lab.peerOf('a', 'b');
      return entry?.endpoint && entry.allowedIps.length > 0 && entry.latestHandshake > 0 ? entry : undefined;
    }, { timeoutMs: 8_000, intervalMs: 100 });
    t.diagnostic(`forwarded-symmetric direct after ${Date.now() - started} ms at ${formatEndpoint(bAtA.endpoint!)}`);
    const atFang = await lab.peerOf('f', 'b');
    assert.equal(formatIp(bAtA.endpoint!.address), '203.0.113.20');
    assert.notEqual(bAtA.endpoint!.port, atFang!.endpoint!.port, 'A reaches B at the port of its mapping towards A, not towards the fang');
    await new Promise((r) => setTimeout(r, 3000));
    const still = await lab.peerOf('a', 'b');
    assert.ok(still!.allowedIps.length > 0 && formatEndpoint(still!.endpoint!) === formatEndpoint(bAtA.endpoint!), 'and it stays there');
    const ping = await lab.ping('a', b.overlayAddress, 10, { intervalS: 0.1 });
    assert.ok(ping.received >= 9, ping.output);
  });
});

test('ipv6: F over IPv6, peers behind stateful IPv6 firewalls connect directly at [addr]:port', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, { ipv6: true }, async (lab) => {
    const [a, b] = [lab.host('a'), lab.host('b')];
    const fangAtA = await lab.peerOf('a', 'f');
    assert.equal(formatEndpoint(fangAtA!.endpoint!), '[2001:db8::1]:51820');
    await lab.startServer();
    const { spawned, up } = await startClients(lab, ['a', 'b']);
    const bAtA = await lab.waitForDirect('a', 'b', { timeoutMs: remaining(up, BOUND.directMs), since: spawned });
    await lab.waitForDirect('b', 'a', { timeoutMs: remaining(up, BOUND.directMs), since: spawned });
    t.diagnostic(`IPv6 direct path ${Date.now() - up} ms after the clients ran`);
    assert.equal(formatEndpoint(bAtA.endpoint!), '[2001:db8:b::2]:51820');
    assert.equal(b.publicEndpoint, '[2001:db8:b::2]:51820');
    const ping = await lab.ping('a', b.overlayAddress, 5);
    assert.ok(ping.received >= 4, ping.output);
    const s = await status(lab, 'a');
    const peer = s.peers.find((p) => p.publicKey === b.keys.publicKey)!;
    assert.equal(peer.endpoint, '[2001:db8:b::2]:51820');
    assert.equal(peer.path, 'direct');
    void a;
  });
});
