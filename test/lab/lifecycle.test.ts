import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectAB, labUnavailable, withLab } from './helpers';

const skip = labUnavailable();

test('daemons stop cleanly on SIGTERM and SIGINT, exit 0, and leave the tunnels they set', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { server, clientA, clientB } = await connectAB(lab);

    for (const [proc, signal] of [[clientA, 'SIGTERM'], [clientB, 'SIGINT'], [server, 'SIGTERM']] as const) {
      const started = Date.now();
      assert.equal(await lab.stop(proc, signal), 0, proc.output.text());
      assert.ok(Date.now() - started < 3_000, `${proc.name} took ${Date.now() - started} ms to stop`);
      assert.match(proc.output.text(), new RegExp(`shutdown .*signal=${signal}`));
    }
    // Stopping Snakebite changes nothing in WireGuard: A and B still talk directly.
    const ping = await lab.ping('a', lab.host('b').overlayAddress, 5);
    assert.ok(ping.received >= 4, ping.output);
  });
});
