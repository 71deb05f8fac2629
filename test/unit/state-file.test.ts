import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLiveState, readStateFile, stateProblem, writeState, type ClientState } from '../../src/client/state-file';
import { key } from '../support/fakes';

const GOOD: ClientState = { interface: 'wg0', server: '10.10.10.1', pid: 4242, lastSync: 100, relayed: [{ publicKey: key(1), since: 90 }], added: [key(2)] };

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('stateProblem', () => {
  const rows: { name: string; value: unknown; want: RegExp | undefined }[] = [
    { name: 'a good state', value: GOOD, want: undefined },
    { name: 'no added list (older daemon)', value: { ...GOOD, added: undefined }, want: undefined },
    { name: 'not an object', value: 5, want: /expected an object/ },
    { name: 'an array', value: [], want: /expected an object/ },
    { name: 'added is a number', value: { ...GOOD, added: 5 }, want: /^added: / },
    { name: 'added holds a non-key', value: { ...GOOD, added: [key(2), 'x'] }, want: /^added\[1\]/ },
    { name: 'relayed missing', value: { ...GOOD, relayed: undefined }, want: /^relayed: / },
    { name: 'relayed item without since', value: { ...GOOD, relayed: [{ publicKey: key(1) }] }, want: /^relayed\[0\]/ },
    { name: 'pid is a string', value: { ...GOOD, pid: '1' }, want: /^pid: / },
    { name: 'only {"added":5}', value: { added: 5 }, want: /^interface: / },
    { name: "a user's relayed peer with its original allowed IPs", value: { ...GOOD, changed: [{ publicKey: key(3), since: 80, allowedIps: ['10.10.10.3/32', 'fd00::3/128'], viaFang: true }] }, want: undefined },
    { name: 'changed is not an array', value: { ...GOOD, changed: {} }, want: /^changed: / },
    { name: 'changed holds a bad prefix', value: { ...GOOD, changed: [{ publicKey: key(3), since: 80, allowedIps: ['10.10.10.300/32'], viaFang: false }] }, want: /^changed\[0\]/ },
    { name: 'changed without viaFang', value: { ...GOOD, changed: [{ publicKey: key(3), since: 80, allowedIps: [] }] }, want: /^changed\[0\]/ },
  ];
  for (const { name, value, want } of rows) {
    test(name, () => {
      const problem = stateProblem(value);
      if (want === undefined) assert.equal(problem, undefined);
      else assert.match(problem ?? '', want);
    });
  }
});

describe('readStateFile', () => {
  test('missing file: no state and no problem', (t) => {
    assert.deepEqual(readStateFile(join(scratch(t), 'wg0.json')), {});
  });

  test('valid JSON of the wrong shape is a problem, not a crash', (t) => {
    const path = join(scratch(t), 'wg0.json');
    writeFileSync(path, '{"added":5}');
    const read = readStateFile(path);
    assert.equal(read.state, undefined);
    assert.match(read.problem ?? '', /wg0\.json: interface: expected a string/);
    assert.equal(readLiveState(path, () => true), undefined);
  });

  test('not JSON is a problem', (t) => {
    const path = join(scratch(t), 'wg0.json');
    writeFileSync(path, '{"added":');
    assert.match(readStateFile(path).problem ?? '', /is not JSON/);
  });

  test('written and read back', (t) => {
    const path = join(scratch(t), 'run', 'wg0.json');
    writeState(path, GOOD);
    assert.deepEqual(readStateFile(path), { state: GOOD });
    assert.deepEqual(readLiveState(path, (pid) => pid === 4242), GOOD);
    assert.equal(readLiveState(path, () => false), undefined);
  });
});

describe('writeState', () => {
  test('leaves no temp file behind and uses an unpredictable temp name', (t) => {
    const dir = scratch(t);
    const path = join(dir, 'wg0.json');
    // The old name was `<path>.<pid>.tmp`: a link planted there must not be written through.
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, `${path}.${process.pid}.tmp`);
    writeState(path, GOOD);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.deepEqual(readdirSync(dir).sort(), ['victim', 'wg0.json', `wg0.json.${process.pid}.tmp`].sort());
  });

  test('replaces a symlink at the final name instead of writing through it', (t) => {
    const dir = scratch(t);
    const path = join(dir, 'wg0.json');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, path);
    writeState(path, GOOD);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.equal(lstatSync(path).isSymbolicLink(), false);
    assert.deepEqual(readStateFile(path), { state: GOOD });
  });
});
