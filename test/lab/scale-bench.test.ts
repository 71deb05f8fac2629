import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runScaleBench } from '../../bench/scale-bench';
import { labUnavailable } from './helpers';

const skip = labUnavailable();

interface Load {
  concurrency: number;
  requests: number;
  errors: number;
  abandoned: number;
}

/** `npm run bench:scale -- --quick` (200 peers): every part runs and says what it should; figures are not asserted. */
test('bench:scale --quick: list, delta, 200 waiting clients notified, client sync, seed way', { skip, timeout: 180_000 }, async () => {
  const result = (await runScaleBench(['--quick'])) as { error?: string; sizes: Record<string, any>[] };
  assert.equal(result.error, undefined);
  const [size] = result.sizes;
  assert.equal(size!.peers, 200);
  const server = size!.server;
  assert.equal(server.error, undefined);
  for (const load of [...server.fullList, ...server.delta] as Load[]) {
    assert.ok(load.requests > 0, `no answers at ${load.concurrency} concurrent`);
    assert.equal(load.errors + load.abandoned, 0);
  }
  const [waiting] = server.waiting;
  assert.equal(waiting.parked, 200);
  assert.equal(waiting.notified, 200);
  assert.ok(waiting.lastMs < 10_000);
  assert.deepEqual(server.serverErrors, {});
  assert.ok((size!.seedServer.fullList as Load[]).every((load) => load.requests > 0));
  const client = size!.client;
  assert.equal(client.allNew.changes, 200);
  assert.equal(client.allNew.applyError, undefined);
  assert.equal(client.changed50.changes, 50);
  assert.equal(client.changed50.applyError, undefined);
});
