import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/ip/address';
import { labUnavailable, withLab } from './helpers';

const skip = labUnavailable();

test('cone-cone, daemons: A and B connect directly and F carries none of their traffic', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    await lab.startServer();
    lab.startSnakebite('a', lab.clientArgs('a'));
    lab.startSnakebite('b', lab.clientArgs('b'));

    const bAtA = await lab.waitForDirect('a', 'b', { timeoutMs: 20_000 });
    const aAtB = await lab.waitForDirect('b', 'a', { timeoutMs: 20_000 });
    assert.equal(formatEndpoint(bAtA.endpoint!), lab.host('b').publicEndpoint);
    assert.equal(formatEndpoint(aAtB.endpoint!), lab.host('a').publicEndpoint);
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
    const [a, b] = await Promise.all([lab.clientOnce('a'), lab.clientOnce('b')]);
    assert.equal(a.code, 0, a.output);
    assert.equal(b.code, 0, b.output);
    assert.match(a.output, /peer-added .*peer=\S{8} endpoint=203\.0\.113\.20:51820/);
    await lab.waitForDirect('a', 'b', { timeoutMs: 15_000 });
    await lab.waitForDirect('b', 'a', { timeoutMs: 15_000 });
    const ping = await lab.ping('b', lab.host('a').overlayAddress, 5);
    assert.ok(ping.received >= 4, ping.output);

    // A second run finds nothing to do: the plan converged.
    const again = await lab.clientOnce('a');
    assert.equal(again.code, 0, again.output);
    assert.doesNotMatch(again.output, /peer-added|endpoint-set/);
  });
});

test('cone-cone, peers already configured without endpoints: the client sets the endpoints', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, { peersKnowEachOther: true }, async (lab) => {
    await lab.startServer();
    const [a, b] = await Promise.all([lab.clientOnce('a'), lab.clientOnce('b')]);
    assert.equal(a.code, 0, a.output);
    assert.equal(b.code, 0, b.output);
    assert.match(a.output, /endpoint-set .*endpoint=203\.0\.113\.20:51820 .*reason="no handshake yet"/);
    await lab.waitForDirect('a', 'b', { timeoutMs: 15_000 });
    await lab.waitForDirect('b', 'a', { timeoutMs: 15_000 });
  });
});
