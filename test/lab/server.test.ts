import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePeerList } from '../../src/peer-list/parse';
import type { NatLab } from '../../lab/nat-lab';
import { labUnavailable, withLab } from './helpers';

const skip = labUnavailable();
const HTTP_GET = join(__dirname, '..', '..', 'lab', 'http-get.js');

async function get(lab: NatLab, from: 'f' | 'a' | 'b', path: string, localAddress?: string): Promise<string> {
  const url = `http://${lab.host('f').overlayAddress}:51821${path}`;
  const result = await lab.inNs(lab.host(from).ns, [process.execPath, HTTP_GET, url, ...(localAddress ? [localAddress] : [])]);
  return result.stdout;
}

test('fang server: answers peers through the tunnel, refuses everyone else', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const server = await lab.startServer(['--log-level', 'debug']);

    const fromA = await get(lab, 'a', '/v1/peers');
    assert.match(fromA, /^status 200\n/);
    const { list, rejected } = parsePeerList(JSON.parse(fromA.replace(/^status 200\n/, '')));
    assert.deepEqual(rejected, []);
    assert.equal(list.you.publicKey, lab.host('a').keys.publicKey);
    assert.equal(list.fang.publicKey, lab.host('f').keys.publicKey);
    assert.deepEqual(list.peers.map((p) => p.publicKey), [lab.host('b').keys.publicKey]);
    assert.ok(!fromA.includes(lab.host('f').keys.privateKey) && !fromA.includes(lab.host('b').keys.privateKey));

    const text = await get(lab, 'b', '/v1/peers.txt');
    assert.equal(text, `status 200\n${lab.host('a').keys.publicKey} ${lab.host('a').publicEndpoint}\n`);

    // F itself is no peer: its own source address is in nobody's AllowedIPs.
    assert.match(await get(lab, 'f', '/v1/peers'), /^status 403\n/);
    assert.match(server.output.text(), /request-refused .*source=10\.10\.10\.1/);
    assert.match(await get(lab, 'a', '/v1/nothing'), /^status 404\n/);

    // A claims an overlay address that is not its own: F's WireGuard drops the
    // packets (cryptokey routing), so no answer ever comes.
    await lab.inNs(lab.host('a').ns, ['ip', 'addr', 'add', '10.10.10.99/32', 'dev', lab.host('a').wgInterface]);
    assert.match(await get(lab, 'a', '/v1/peers', '10.10.10.99'), /^error (TIMEOUT|ECONNRESET)/);

    // The server is still healthy after all of that.
    assert.match(await get(lab, 'b', '/v1/peers'), /^status 200\n/);
  });
});

test('fang server: refuses to start on an address that is not its WireGuard interface', { skip, timeout: 60_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const f = lab.host('f');
    const proc = lab.startSnakebite('f', ['server', '--interface', f.wgInterface, '--listen', '203.0.113.1']);
    assert.equal(await proc.exited, 1);
    assert.match(proc.output.text(), /203\.0\.113\.1 is not an address of sb\w+wgf; sb\w+wgf has 10\.10\.10\.1/);
    assert.match(proc.output.text(), /hint: listen on/);

    const missing = lab.startSnakebite('f', ['server', '--interface', 'sbnosuch0', '--listen', '10.10.10.1']);
    assert.equal(await missing.exited, 1);
    assert.match(missing.output.text(), /interface sbnosuch0 does not exist/);
  });
});
