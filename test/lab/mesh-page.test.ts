import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../../lab/exec';
import { FANG_PUBLIC, type HostName, type NatLab } from '../../lab/nat-lab';
import type { MeshView } from '../../src/fang/mesh';
import { labUnavailable, withLab } from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const skip = labUnavailable() ?? (existsSync(CHROMIUM) ? undefined : 'the browser test needs Debian\'s chromium (sh scripts/setup.sh --test installs it)');
/** Kept after the run (git-ignored): the screenshot of the lab's mesh. */
const ARTIFACTS = resolve(__dirname, '..', '..', '..', 'test-artifacts');
const HTTP_GET = resolve(__dirname, '..', '..', 'lab', 'http-get.js');

/** Runs headless Chromium in a host's namespace (so its requests come through that host's tunnel) and returns what it printed on stdout. */
async function chromium(lab: NatLab, name: HostName, args: readonly string[], profile: string): Promise<{ code: number | string; stdout: string }> {
  const flags = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${mkdtempSync(join(profile, 'p-'))}`,
  ];
  const proc = lab.startProcess(name, 'chromium', [CHROMIUM, ...flags, ...args]);
  let stdout = '';
  proc.child.stdout!.on('data', (chunk: string) => (stdout += chunk));
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([proc.exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 90_000)))]);
  clearTimeout(timer);
  if (code === 'timeout') await lab.stop(proc, 'SIGKILL');
  return { code, stdout };
}

async function httpGet(lab: NatLab, ns: string, url: string): Promise<string> {
  return (await lab.inNs(ns, [process.execPath, HTTP_GET, url])).stdout;
}

test('mesh page: headless Chromium on a peer draws every peer and pair; a non-peer gets nothing', { skip, timeout: 300_000 }, async (t) => {
  const profile = mkdtempSync(join(tmpdir(), 'snakebite-chromium-'));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  await withLab(t, { withHostC: true, natB: 'symmetric' }, async (lab) => {
    const f = lab.host('f');
    // A policy that links everyone and names each peer: the page shows the names.
    const policy = join(profile, 'policy');
    writeFileSync(policy, `peer alice ${lab.host('a').keys.publicKey}\npeer bob ${lab.host('b').keys.publicKey}\npeer carol ${lab.host('c').keys.publicKey}\nallow all all\n`);
    await lab.startServer(['--metrics', `${f.overlayAddress}:9586`, '--policy', policy]);
    for (const name of ['a', 'b', 'c'] as const) lab.startSnakebite(name, lab.clientArgs(name, ['--metrics', `${lab.host(name).overlayAddress}:9586`]));
    const a = lab.host('a');
    const url = `http://${f.overlayAddress}:51821/mesh`;
    const short = (name: HostName) => lab.host(name).keys.publicKey.slice(0, 8);

    // Wait until the fang's view has A-C on the LAN and B (symmetric NAT) relayed.
    const view = await waitFor('the mesh to show lan and relayed pairs', async () => {
      const text = await httpGet(lab, a.ns, `http://${f.overlayAddress}:51821/v1/mesh.json`);
      if (!text.startsWith('status 200')) return undefined;
      const mesh = JSON.parse(text.slice(text.indexOf('\n') + 1)) as MeshView;
      const paths = mesh.pairs.map((p) => p.path).sort();
      return paths.join(',') === 'lan,relayed,relayed' && mesh.peers.every((p) => p.reporting) ? mesh : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    assert.equal(view.peers.length, 3);

    const dom = await chromium(lab, 'a', ['--virtual-time-budget=5000', '--dump-dom', url], profile);
    assert.equal(dom.code, 0, dom.stdout.slice(0, 500));
    assert.match(dom.stdout, /<h1>Snakebite mesh<\/h1>/);
    for (const name of ['a', 'b', 'c'] as const) assert.ok(dom.stdout.includes(short(name)), `the page shows ${name}'s key`);
    for (const name of ['alice', 'bob', 'carol']) assert.ok(dom.stdout.includes(`<strong>${name}</strong>`), `the page names ${name}`);
    assert.equal((dom.stdout.match(/class="cell lan"/g) ?? []).length, 2, 'A-C both ways');
    assert.equal((dom.stdout.match(/class="cell relayed"/g) ?? []).length, 4, 'A-B and C-B both ways');
    assert.match(dom.stdout, /class="nat-(symmetric|rewrites-port)"/, 'B\'s NAT is shown as hard');

    mkdirSync(ARTIFACTS, { recursive: true });
    const png = join(ARTIFACTS, 'mesh-page.png');
    rmSync(png, { force: true });
    const shot = await chromium(lab, 'a', ['--window-size=1100,760', '--hide-scrollbars', `--screenshot=${png}`, url], profile);
    assert.equal(shot.code, 0);
    assert.ok(existsSync(png) && statSync(png).size > 10_000, 'a screenshot was taken');
    assert.deepEqual([...readFileSync(png).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
    t.diagnostic(`screenshot: ${png}`);

    // Not a peer: F's own address is in no peer's AllowedIPs.
    const stranger = await chromium(lab, 'f', ['--dump-dom', url], profile);
    assert.doesNotMatch(stranger.stdout, /Snakebite mesh|cell/);
    assert.match(await httpGet(lab, f.ns, url), /^(status 403|error (ECONNRESET|EPIPE|ECONNREFUSED))/);
    // Outside the tunnel the server is not even listening.
    assert.match(await httpGet(lab, lab.router('natA').ns, `http://${FANG_PUBLIC}:51821/mesh`), /^error /);

    // Metrics, inside the tunnel.
    const fangMetrics = await httpGet(lab, a.ns, `http://${f.overlayAddress}:9586/metrics`);
    assert.match(fangMetrics, /^snakebite_fang_peers\{interface="[^"]+"\} 3$/m);
    assert.match(fangMetrics, /^snakebite_fang_relayed_pairs 2$/m);
    assert.match(fangMetrics, /^wireguard_latest_handshake_seconds\{interface=/m);
    const clientMetrics = await httpGet(lab, a.ns, `http://${a.overlayAddress}:9586/metrics`);
    assert.match(clientMetrics, /^snakebite_client_peers\{path="lan"\} 1$/m);
    assert.match(clientMetrics, /^snakebite_client_changes_total\{kind="add-peer"\} [1-9]/m);
    assert.match(clientMetrics, /^snakebite_client_fang_reachable 1$/m);
    assert.match(clientMetrics, /^snakebite_client_time_to_direct_seconds_count [1-9]/m);
  });
});
