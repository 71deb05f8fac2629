import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { learnableBy, mayLink, parsePolicy, PolicyError } from '../../src/fang/policy';
import { loadPolicyFile } from '../../src/fang/policy-file';
import { MAX_RELAY_RULES, relayRules } from '../../src/fang/relay-firewall';
import { parsePeerList } from '../../src/peer-list/parse';
import { isSnakebiteError } from '../../src/errors';
import { device, key, stringify } from '../support/fakes';
import { ask, fangWith, loopbackPeers, MutableDriver, peerKey, peerSource, startTestFang } from '../support/fang-harness';

const [LAPTOP, PHONE, NAS, PRINTER, STRANGER] = [0, 1, 2, 3, 4].map(peerKey) as [string, string, string, string, string];

const POLICY = `
# who may learn whose endpoint
peer laptop  ${LAPTOP}  staff
peer phone   ${PHONE}   staff
peer nas     ${NAS}     servers
peer printer ${PRINTER} devices   # nobody may reach it
allow staff servers
allow staff staff
`;

describe('parsePolicy', () => {
  test('a good file: names, groups, links', () => {
    const policy = parsePolicy(POLICY);
    assert.equal(policy.names.get(NAS), 'nas');
    assert.deepEqual(policy.groups.get(LAPTOP), ['all', 'staff']);
    assert.deepEqual(policy.summary, { peers: 4, groups: 4, allows: 2 });
  });

  const bad: { name: string; text: string; line: number; reason: RegExp }[] = [
    { name: 'a misspelt verb', text: `peer a ${key(1)}\nalow all all`, line: 2, reason: /unknown word "alow"/ },
    { name: 'a bad key', text: `\n\npeer a notakey=`, line: 3, reason: /not a WireGuard public key/ },
    { name: 'a missing key', text: 'peer a', line: 1, reason: /expected "peer NAME PUBLIC-KEY/ },
    { name: 'a bad name', text: `peer a;rm ${key(1)}`, line: 1, reason: /is not a name/ },
    { name: 'a name used twice', text: `peer a ${key(1)}\npeer a ${key(2)}`, line: 2, reason: /already used/ },
    { name: 'a key named twice', text: `peer a ${key(1)}\npeer b ${key(1)}`, line: 2, reason: /already named "a"/ },
    { name: 'a bad group', text: `peer a ${key(1)} st@ff`, line: 1, reason: /not a group name/ },
    { name: 'allow with one group', text: 'allow all', line: 1, reason: /expected "allow GROUP GROUP"/ },
    { name: 'allow naming an unknown group (a typo)', text: `peer a ${key(1)} staff\n\nallow staf all`, line: 3, reason: /no peer is in the group "staf"/ },
  ];
  for (const row of bad) {
    test(`refused with its line: ${row.name}`, () => {
      assert.throws(
        () => parsePolicy(row.text, '/etc/snakebite/policy'),
        (error: unknown) => error instanceof PolicyError && error.line === row.line && row.reason.test(error.reason) && error.message.startsWith(`/etc/snakebite/policy:${row.line}: `),
      );
    });
  }
});

describe('mayLink', () => {
  const policy = parsePolicy(POLICY);
  const rows: [string, string, string, boolean][] = [
    ['staff and servers', LAPTOP, NAS, true],
    ['servers and staff (symmetric)', NAS, LAPTOP, true],
    ['staff and staff', LAPTOP, PHONE, true],
    ['servers and devices', NAS, PRINTER, false],
    ['staff and devices', PHONE, PRINTER, false],
    ['a peer the file does not name (only in "all")', STRANGER, LAPTOP, false],
  ];
  for (const [name, a, b, want] of rows) test(name, () => assert.equal(mayLink(policy, a, b), want));
  test('no policy: everyone', () => assert.equal(mayLink(undefined, STRANGER, PRINTER), true));
  test('learnableBy agrees with mayLink for every pair, under several policies', () => {
    const keys = [LAPTOP, PHONE, NAS, PRINTER, STRANGER];
    for (const text of [POLICY, `${POLICY}\nallow devices all`, 'allow all all', `peer x ${LAPTOP} a\nallow a all`, '']) {
      const p = parsePolicy(text);
      for (const a of keys) for (const b of keys) assert.equal(learnableBy(p, a)(b), mayLink(p, a, b), `${text} ${a} ${b}`);
    }
  });
  test('"allow all all" is the default again', () => assert.equal(mayLink(parsePolicy('allow all all'), STRANGER, PRINTER), true));
});

describe('loadPolicyFile', () => {
  test('a missing file is a clear error', () => {
    assert.throws(() => loadPolicyFile('/nonexistent/snakebite-policy'), (e: unknown) => isSnakebiteError(e, 'SB_POLICY_INVALID') && /ENOENT/.test(e.message));
  });
  test('a file on disk', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-policy-'));
    try {
      writeFileSync(path.join(dir, 'policy'), POLICY);
      assert.equal(loadPolicyFile(path.join(dir, 'policy')).names.size, 4);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('the fang under a policy', () => {
  const listOf = async (port: number, from: string, query = '') => {
    const reply = await ask(port, { from, path: `/v1/peers${query}` });
    assert.equal(reply.status, 200, reply.body);
    return parsePeerList(JSON.parse(reply.body)).list;
  };

  test('a peer learns only the peers it may reach, by name; a peer outside the policy learns none', async (t) => {
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(5))));
    await server.setPolicy(parsePolicy(POLICY));
    const laptop = await listOf(server.port, peerSource(0));
    assert.equal(laptop.you.name, 'laptop');
    assert.deepEqual(laptop.peers.map((p) => p.name), ['phone', 'nas']);
    const nas = await listOf(server.port, peerSource(2));
    assert.deepEqual(nas.peers.map((p) => p.name), ['laptop', 'phone']);
    assert.deepEqual((await listOf(server.port, peerSource(3))).peers, [], 'the printer learns nobody');
    assert.deepEqual((await listOf(server.port, peerSource(4))).peers, [], 'an unnamed peer learns nobody');
    const text = await ask(server.port, { from: peerSource(4), path: '/v1/peers.txt' });
    assert.equal(text.body, '', 'nor in peers.txt');
  });

  test('reports: a peer it may not reach is not in seenBy, nor its punch requests', async (t) => {
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(5))));
    await server.setPolicy(parsePolicy(POLICY));
    // The printer (may reach nobody) claims to see the laptop and asks it to punch.
    const now = Math.floor(Date.now() / 1000);
    const report = { listenPort: 51820, candidates: [], seen: [{ publicKey: LAPTOP, endpoint: '198.51.100.1:10000' }], punchRequests: [{ publicKey: LAPTOP, at: now }] };
    assert.equal((await ask(server.port, { from: peerSource(3), path: '/v1/report', method: 'POST', body: JSON.stringify(report) })).status, 204);
    const laptop = await listOf(server.port, peerSource(0));
    assert.equal(laptop.you.seenBy, undefined);
    assert.ok(!stringify(laptop).includes(PRINTER));
  });

  test('SIGHUP-style reload: a waiting client is woken with a full list under the new policy', async (t) => {
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(5))));
    await server.setPolicy(parsePolicy(POLICY));
    const before = await listOf(server.port, peerSource(0));
    const waiting = listOf(server.port, peerSource(0), `?since=${before.revision}&wait=10`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await server.setPolicy(parsePolicy(POLICY.replace('allow staff servers', '')));
    const after = await waiting;
    assert.equal(after.since, undefined, 'a full list, not a delta');
    assert.deepEqual(after.peers.map((p) => p.name), ['phone']);
  });
});

describe('relay firewall rules', () => {
  test('only linked pairs return; everything else on the interface is dropped', () => {
    const state = fangWith(loopbackPeers(5));
    const rules = relayRules(parsePolicy(POLICY), { ...state, interfaceName: 'wg0' });
    assert.equal(rules.chain, 'SNAKEBITE-wg0');
    const returns = rules.ipv4.split('\n').filter((l) => l.endsWith('-j RETURN'));
    // laptop<->phone, laptop<->nas, phone<->nas, each both ways
    assert.deepEqual(returns.sort(), [
      '-A SNAKEBITE-wg0 -s 127.1.0.0/32 -d 127.1.0.1/32 -j RETURN',
      '-A SNAKEBITE-wg0 -s 127.1.0.0/32 -d 127.1.0.2/32 -j RETURN',
      '-A SNAKEBITE-wg0 -s 127.1.0.1/32 -d 127.1.0.0/32 -j RETURN',
      '-A SNAKEBITE-wg0 -s 127.1.0.1/32 -d 127.1.0.2/32 -j RETURN',
      '-A SNAKEBITE-wg0 -s 127.1.0.2/32 -d 127.1.0.0/32 -j RETURN',
      '-A SNAKEBITE-wg0 -s 127.1.0.2/32 -d 127.1.0.1/32 -j RETURN',
    ]);
    assert.match(rules.ipv4, /^\*filter\n:SNAKEBITE-wg0 - \[0:0\]\n[\s\S]*-A SNAKEBITE-wg0 -j DROP\nCOMMIT\n$/);
    assert.equal(rules.count, 6);
  });

  test('past MAX_RELAY_RULES the chain is not built at all (no quadratic work every 2 s)', () => {
    const many = device(key(0xf0), Array.from({ length: 400 }, (_, i) => ({ publicKey: key(1000 + i), allowedIps: [`10.20.${i >> 8}.${i & 255}/32`] })));
    const started = process.hrtime.bigint();
    const rules = relayRules(parsePolicy('allow all all\n'), many);
    assert.ok(rules.count > MAX_RELAY_RULES);
    assert.equal(rules.ipv4, '');
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 2000, 'stops early');
  });

  test('the server keeps the chain in step with a new policy, and removes it when it stops', async (t) => {
    const applied: number[] = [];
    const removed: string[] = [];
    const server = await startTestFang(t, new MutableDriver(fangWith(loopbackPeers(5))), {
      policy: parsePolicy(POLICY),
      relayFirewall: { apply: async (rules) => void applied.push(rules.count), remove: async (chain) => void removed.push(chain) },
    });
    await server.setPolicy(parsePolicy('allow all all'));
    assert.deepEqual(applied.slice(-1), [20]);
    assert.ok(applied.includes(6));
    await server.close();
    assert.deepEqual(removed, ['SNAKEBITE-wg0']);
  });
});

describe('snakebite server --policy', () => {
  test('a bad file stops the start with its line and reason, before the interface is touched', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-policy-'));
    try {
      const file = path.join(dir, 'policy');
      writeFileSync(file, `peer laptop ${LAPTOP} staff\n\nalow staff staff\n`);
      const run = spawnSync(process.execPath, [require.resolve('../../../bin/snakebite'), 'server', '--interface', 'sbnosuch0', '--listen', '10.10.10.1', '--policy', file], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(run.status, 1);
      assert.match(run.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3: unknown word "alow"`));
      assert.doesNotMatch(run.stderr, /sbnosuch0/, 'the policy is checked first');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
