import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { repunchDue, REPUNCH_FIRST_SECONDS, REPUNCH_MAX_SECONDS } from '../../src/plan/relay';

const T = 1_700_000_000;

describe('repunchDue', () => {
  // punches so far -> seconds to wait after the last one (or the start of the relay)
  const waits = [
    { punches: 0, wait: 5 },
    { punches: 1, wait: 10 },
    { punches: 2, wait: 20 },
    { punches: 3, wait: 40 },
    { punches: 4, wait: 80 },
    { punches: 5, wait: 120 },
    { punches: 6, wait: 120 },
    { punches: 10, wait: 120 },
    { punches: 1000, wait: 120 },
  ];
  for (const { punches, wait } of waits) {
    test(`after ${punches} punches: due ${wait}s after the last, not a second sooner`, () => {
      assert.equal(repunchDue(punches, T, T + wait - 1), false);
      assert.equal(repunchDue(punches, T, T + wait), true);
      assert.equal(repunchDue(punches, T, T + wait + 1000), true);
    });
  }

  test('not due at the moment of the relay, nor with a clock that went back', () => {
    assert.equal(repunchDue(0, T, T), false);
    assert.equal(repunchDue(0, T, T - 60), false);
  });

  test('the constants say the same', () => {
    assert.equal(REPUNCH_FIRST_SECONDS, 5);
    assert.equal(REPUNCH_MAX_SECONDS, 120);
  });

  test('a relayed peer punched whenever due: at 5, 15, 35, 75, 155, 275, 395 s', () => {
    let punches = 0;
    let last = T;
    const times: number[] = [];
    for (let now = T; now <= T + 400; now++) {
      if (repunchDue(punches, last, now)) {
        times.push(now - T);
        punches++;
        last = now;
      }
    }
    assert.deepEqual(times, [5, 15, 35, 75, 155, 275, 395]);
  });
});
