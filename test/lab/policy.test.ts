/**
 * The fang's policy file over real WireGuard and iptables:
 *
 *   A (behind natA) ──┐                 ┌── B (behind natB)
 *                     └── F (fang) ─────┘
 *   policy: A in "staff", B in "devices", no "allow" between them
 *
 * A asks F for the list and gets no B; A's packets to B's overlay address,
 * which F would otherwise relay, are dropped in F's FORWARD path. After a
 * SIGHUP with "allow staff devices", A learns B and the relay passes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePeerList } from '../../src/peer-list/parse';
import type { NatLab } from '../../lab/nat-lab';
import { labUnavailable, withLab } from './helpers';

const skip = labUnavailable();
const HTTP_GET = join(__dirname, '..', '..', 'lab', 'http-get.js');

async function peersSeenBy(lab: NatLab, from: 'a' | 'b'): Promise<{ keys: string[]; names: (string | undefined)[] }> {
  const url = `http://${lab.host('f').overlayAddress}:51821/v1/peers`;
  const out = (await lab.inNs(lab.host(from).ns, [process.execPath, HTTP_GET, url])).stdout;
  assert.match(out, /^status 200\n/, out);
  const { list } = parsePeerList(JSON.parse(out.replace(/^status 200\n/, '')));
  return { keys: list.peers.map((p) => p.publicKey), names: [list.you.name, ...list.peers.map((p) => p.name)] };
}

test('policy: a peer outside the policy learns no endpoint of the peers it may not reach, and is not relayed; SIGHUP lets it in', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-policy-lab-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(t, {}, async (lab) => {
    const a = lab.host('a');
    const b = lab.host('b');
    const file = join(dir, 'policy');
    const policy = `peer laptop ${a.keys.publicKey} staff\npeer printer ${b.keys.publicKey} devices\n`;
    writeFileSync(file, `${policy}allow staff staff\n`);
    const server = await lab.startServer(['--policy', file]);

    // Before the policy allows it: no B in A's list, and F drops what it would relay.
    assert.deepEqual(await peersSeenBy(lab, 'a'), { keys: [], names: ['laptop'] });
    assert.deepEqual((await peersSeenBy(lab, 'b')).keys, []);
    const chain = await lab.inNs(lab.host('f').ns, ['iptables', '-S', `SNAKEBITE-${lab.host('f').wgInterface}`]);
    assert.match(chain.stdout, /-j DROP/);
    const blocked = await lab.ping('a', b.overlayAddress, 3);
    assert.equal(blocked.received, 0, blocked.output);

    // A bad file is refused with its line; the policy in force stays.
    writeFileSync(file, `${policy}alow staff devices\n`);
    server.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !server.output.text().includes('policy-refused'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(server.output.text(), /policy-refused .*line=3 /);
    assert.deepEqual((await peersSeenBy(lab, 'a')).keys, []);

    // SIGHUP with the pair allowed: A learns B and F relays between them.
    writeFileSync(file, `${policy}allow staff devices\n`);
    server.child.kill('SIGHUP');
    for (let i = 0; i < 50 && (server.output.text().match(/policy-loaded/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await peersSeenBy(lab, 'a'), { keys: [b.keys.publicKey], names: ['laptop', 'printer'] });
    const relayed = await lab.ping('a', b.overlayAddress, 3);
    assert.ok(relayed.received >= 1, relayed.output);
    assert.equal(server.child.exitCode, null, 'the server kept running through both reloads');

    // Names appear in status: A's client adds B (one sync), and status names both.
    const bin = require.resolve('../../../bin/snakebite');
    await lab.inNs(a.ns, [process.execPath, bin, 'client', '--interface', a.wgInterface, '--server', lab.host('f').overlayAddress, '--once']);
    const status = await lab.inNs(a.ns, [process.execPath, bin, 'status', '--interface', a.wgInterface, '--server', lab.host('f').overlayAddress]);
    assert.match(status.stdout, /\(laptop\)/, status.stdout);
    assert.match(status.stdout, new RegExp(`${b.keys.publicKey.slice(0, 8).replace(/[+/]/g, '.')} printer`), status.stdout);
  });
});

test('policy: SIGHUP without --policy (systemctl reload) does not stop the server', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const server = await lab.startServer();
    server.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !server.output.text().includes('policy-reload-skipped'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(server.output.text(), /policy-reload-skipped/);
    assert.equal(server.child.exitCode, null);
    assert.deepEqual((await peersSeenBy(lab, 'a')).keys, [lab.host('b').keys.publicKey]);
  });
});
