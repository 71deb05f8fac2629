import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/ip/address';
import { BOUND, connectAB, labUnavailable, remaining, startClients, withLab } from './helpers';

const skip = labUnavailable();

test('cone-cone, daemons: A and B connect directly and F carries none of their traffic', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { connectedMs } = await connectAB(lab);
    t.diagnostic(`direct both ways ${connectedMs} ms after the clients ran`);
    const bAtA = (await lab.peerOf('a', 'b'))!;
    assert.equal(formatEndpoint(bAtA.endpoint!), lab.host('b').publicEndpoint);
    assert.equal(bAtA.persistentKeepalive, 25, 'the client sets a keepalive on peers it adds');
    assert.deepEqual(bAtA.allowedIps.map((p) => p.length), [32]);

    const fBefore = await lab.dump('f');
    const ping = await lab.ping('a', lab.host('b').overlayAddress, 50, { intervalS: 0.02, size: 1000 });
    assert.ok(ping.received >= 45, `ping over the direct tunnel: ${ping.output}`);
    const fAfter = await lab.dump('f');
    for (const name of ['a', 'b'] as const) {
      const key = lab.host(name).keys.publicKey;
      const before = fBefore.peers.find((p) => p.publicKey === key)!;
      const after = fAfter.peers.find((p) => p.publicKey === key)!;
      const carried = after.rxBytes - before.rxBytes + (after.txBytes - before.txBytes);
      // The ping moved 100 KB between A and B; F saw only heartbeats and peer-list traffic.
      assert.ok(carried < 10_000, `F carried ${carried} bytes for ${name}`);
    }
  });
});

test('cone-cone, --once on both: direct handshake, exit 0, one log line per change', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    await lab.startServer();
    const since = Date.now();
    const [a, b] = await Promise.all([lab.clientOnce('a'), lab.clientOnce('b')]);
    assert.equal(a.code, 0, a.output);
    assert.equal(b.code, 0, b.output);
    assert.match(a.output, /peer-added .*peer=\S{8} endpoint=203\.0\.113\.20:51820/);
    // Both have punched and exited.
    const done = Date.now();
    await lab.waitForDirect('a', 'b', { timeoutMs: remaining(done, BOUND.directMs), since });
    await lab.waitForDirect('b', 'a', { timeoutMs: remaining(done, BOUND.directMs), since });
    const ping = await lab.ping('b', lab.host('a').overlayAddress, 5);
    assert.ok(ping.received >= 4, ping.output);

    // A second run finds nothing to do: the plan converged.
    const again = await lab.clientOnce('a');
    assert.equal(again.code, 0, again.output);
    assert.doesNotMatch(again.output, /peer-added|endpoint-set/);
  });
});

test('cone-cone, wg-quick PostUp runs `snakebite client --once`, then the daemons: direct at once', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, { postUp: true }, async (lab) => {
    for (const name of ['a', 'b'] as const) assert.equal(lab.host(name).postUp?.code, 0, lab.host(name).postUp?.output);
    const { up } = await startClients(lab, ['a', 'b']);
    await lab.waitForDirect('a', 'b', { timeoutMs: remaining(up, BOUND.directMs), since: lab.createdAt });
    await lab.waitForDirect('b', 'a', { timeoutMs: remaining(up, BOUND.directMs), since: lab.createdAt });
    t.diagnostic(`direct both ways ${Date.now() - up} ms after the daemons ran`);
  });
});
