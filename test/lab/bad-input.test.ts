import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatEndpoint, formatPrefix } from '../../src/ip/address';
import type { NatLab } from '../../lab/nat-lab';
import type { PeerState } from '../../src/wireguard/device-state';
import { waitFor } from '../../lab/exec';
import { labUnavailable, withLab } from './helpers';

const skip = labUnavailable();
const FAKE_FANG = join(__dirname, '..', '..', 'lab', 'fake-fang.js');

/** The parts of a peer entry the client must never touch (counters and handshakes move by themselves). */
function configOf(peer: PeerState | undefined): string {
  if (!peer) return 'missing';
  return JSON.stringify([peer.publicKey, peer.hasPresharedKey, peer.endpoint && formatEndpoint(peer.endpoint), peer.allowedIps.map(formatPrefix), peer.persistentKeepalive]);
}

async function startFakeFang(lab: NatLab, mode: string, body?: unknown) {
  const dir = mkdtempSync(join(tmpdir(), 'snakebite-fake-fang-'));
  const file = join(dir, 'body.json');
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body ?? {}));
  const f = lab.host('f');
  const argv = [FAKE_FANG, f.overlayAddress, '51821', mode, file];
  const fake = lab.startProcess('f', 'fake fang', [process.execPath, ...argv]);
  await waitFor('the fake fang to listen', async () => (fake.output.text().includes('listening') ? true : undefined), { timeoutMs: 10_000 });
  return { fake, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('hostile fang: bad entries refused with a log line, good ones applied, fang peer untouched', { skip, timeout: 90_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const [a, b, f] = [lab.host('a'), lab.host('b'), lab.host('f')];
    const stranger = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
    const body = {
      version: 1,
      fang: { publicKey: f.keys.publicKey },
      you: { publicKey: a.keys.publicKey, endpoint: a.publicEndpoint },
      peers: [
        { publicKey: f.keys.publicKey, endpoint: '198.51.100.66:4444', allowedIps: ['10.10.10.1/32'], latestHandshake: 1 },
        { publicKey: a.keys.publicKey, endpoint: '198.51.100.66:4445', allowedIps: ['10.10.10.2/32'], latestHandshake: 1 },
        { publicKey: 'not-a-key', endpoint: '198.51.100.66:4446', allowedIps: ['10.10.10.50/32'], latestHandshake: 1 },
        { publicKey: stranger, endpoint: '300.1.1.1:80', allowedIps: ['10.10.10.51/32'], latestHandshake: 1 },
        { publicKey: 'VpJiQKpWH3NRfrLFzJ5Bx6VDtmE8wtBA7DPjhrd+FBw=', endpoint: '198.51.100.66:4447', allowedIps: ['0.0.0.0/0'], latestHandshake: 1 },
        { publicKey: 'DFnv4FUqRzxdC3h4hCjTlyY36OgOdWpWhbC9d7Xmt0Q=', endpoint: '198.51.100.66:4448', allowedIps: ['10.10.10.0/24'], latestHandshake: 1 },
        { publicKey: b.keys.publicKey, endpoint: b.publicEndpoint, allowedIps: ['10.10.10.3/32', '192.0.2.0/24'], latestHandshake: 1 },
      ],
    };
    const { cleanup } = await startFakeFang(lab, 'body', body);
    try {
      const fangBefore = configOf(await lab.peerOf('a', 'f'));
      const run = await lab.clientOnce('a');
      assert.equal(run.code, 0, run.output);
      assert.match(run.output, /peer-refused .*reason="claims the fang peer's key/);
      assert.match(run.output, /peer-refused .*reason="is this interface's own key"/);
      assert.match(run.output, /peer-refused .*path=peers\[2\]\.publicKey/);
      assert.match(run.output, /peer-refused .*path=peers\[3\]\.endpoint .*300\.1\.1\.1:80/);
      assert.match(run.output, /peer-refused .*peer=VpJiQKpW .*0\.0\.0\.0\/0: outside the fang peer's allowed IPs/);
      assert.match(run.output, /peer-refused .*peer=DFnv4FUq .*10\.10\.10\.0\/24: equals the fang peer's allowed IP/);
      assert.match(run.output, /allowed-ip-refused .*prefix=192\.0\.2\.0\/24/);
      assert.match(run.output, /peer-added .*endpoint=203\.0\.113\.20:51820 .*allowedIps=10\.10\.10\.3\/32/);

      const device = await lab.dump('a');
      assert.equal(configOf(device.peers.find((p) => p.publicKey === f.keys.publicKey)), fangBefore);
      assert.deepEqual(device.peers.map((p) => p.publicKey).sort(), [b.keys.publicKey, f.keys.publicKey].sort());
    } finally {
      cleanup();
    }
  });
});

for (const [mode, code] of [['silent', 'did not answer within 1000 ms'], ['slow', 'did not answer within 1000 ms'], ['huge', 'more than the limit']] as const) {
  test(`broken fang (${mode}): --once fails with a clear reason and changes nothing`, { skip, timeout: 60_000 }, async (t) => {
    await withLab(t, {}, async (lab) => {
      const { cleanup } = await startFakeFang(lab, mode);
      try {
        const before = (await lab.dump('a')).peers.map(configOf);
        const started = Date.now();
        // A huge reply needs time to pass the 64 MiB limit through the tunnel; the others must fail at the 1 s deadline.
        const run = await lab.clientOnce('a', ['--timeout', mode === 'huge' ? '30s' : '1s']);
        assert.equal(run.code, 1, run.output);
        assert.ok(run.output.includes(code), run.output);
        assert.ok(Date.now() - started < (mode === 'huge' ? 40_000 : 15_000));
        assert.deepEqual((await lab.dump('a')).peers.map(configOf), before);
      } finally {
        cleanup();
      }
    });
  });
}

test('client: a missing interface is a clear error and exit 1; bad flags exit 2', { skip, timeout: 60_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const missing = lab.startSnakebite('a', ['client', '--interface', 'sbnosuch0', '--server', '10.10.10.1', '--once']);
    assert.equal(await missing.exited, 1);
    assert.match(missing.output.text(), /interface sbnosuch0 does not exist[^\n]*\n {2}hint: bring it up first \(wg-quick up sbnosuch0\)/);
    const bad = lab.startSnakebite('a', ['client', '--interface', lab.host('a').wgInterface, '--server', '10.10.10.1:99999', '--once']);
    assert.equal(await bad.exited, 2);
    assert.match(bad.output.text(), /--server expects IP or IP:PORT/);
    const noServer = lab.startSnakebite('a', ['client', '--interface', lab.host('a').wgInterface, '--once']);
    assert.equal(await noServer.exited, 2);
  });
});
