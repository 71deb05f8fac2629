import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CheckId, Finding } from '../../src/doctor/checks';
import { waitFor } from '../../lab/exec';
import { generateKeyPair } from '../../lab/keys';
import { FANG_PUBLIC, snakebiteArgv, type HostName, type NatLab } from '../../lab/nat-lab';
import { connectAB, labUnavailable, withLab } from './helpers';

const skip = labUnavailable();

interface Report {
  code: number;
  findings: Finding[];
}

/** Runs `snakebite doctor --json` inside a host's namespace. */
async function doctor(lab: NatLab, name: HostName, args: readonly string[]): Promise<Report> {
  const host = lab.host(name);
  const argv = [...snakebiteArgv(), 'doctor', '--interface', host.wgInterface, '--json', ...args];
  const run = await lab.inNs(host.ns, argv).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (error: Error & { stdout?: string }) => ({ code: 1, stdout: error.stdout ?? '' }),
  );
  assert.ok(run.stdout.startsWith('{'), `doctor printed: ${run.stdout}`);
  return { code: run.code, findings: (JSON.parse(run.stdout) as { findings: Finding[] }).findings };
}

function status(report: Report, check: CheckId): string {
  const finding = report.findings.find((f) => f.check === check);
  return finding ? `${finding.status}` : 'missing';
}

function notOk(report: Report): string[] {
  return report.findings.filter((f) => f.status !== 'ok').map((f) => `${f.check}=${f.status}: ${f.message}`);
}

test('doctor catches each misconfiguration the cone-cone lab can make, on a peer and on the fang', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snakebite-doctor-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(t, {}, async (lab) => {
    const { server, clientA } = await connectAB(lab);
    const a = lab.host('a');
    const f = lab.host('f');
    const b = lab.host('b');
    const conf = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const good = conf('a.conf', `[Interface]\nAddress = 10.10.10.2/24\nListenPort = 51820\n\n[Peer]\nPublicKey = ${f.keys.publicKey}\nEndpoint = ${FANG_PUBLIC}:51820\nAllowedIPs = 10.10.10.0/24\nPersistentKeepalive = 25\n`);
    const fangConf = conf('f.conf', `[Interface]\nAddress = 10.10.10.1/24\nListenPort = 51820\n`);
    const onA = (extra: string[] = []) => doctor(lab, 'a', ['--server', f.overlayAddress, '--wg-config', good, ...extra]);
    const onF = (extra: string[] = []) => doctor(lab, 'f', ['--listen', f.overlayAddress, '--wg-config', fangConf, ...extra]);
    const wgA = (...args: string[]) => lab.inNs(a.ns, ['wg', 'set', a.wgInterface, 'peer', f.keys.publicKey, ...args]);

    const baseline = await onA();
    assert.deepEqual(notOk(baseline), [], 'a good peer passes');
    assert.equal(baseline.code, 0);
    const fangBaseline = await onF();
    assert.deepEqual(notOk(fangBaseline), [], 'a good fang passes');
    assert.equal(fangBaseline.code, 0);

    // Peer A, one misconfiguration at a time, each undone before the next.
    const noPort = conf('a-noport.conf', `[Interface]\nAddress = 10.10.10.2/24\n\n[Peer]\nPublicKey = ${f.keys.publicKey}\nEndpoint = ${FANG_PUBLIC}:51820\n`);
    const r1 = await doctor(lab, 'a', ['--server', f.overlayAddress, '--wg-config', noPort]);
    assert.equal(status(r1, 'listen-port-fixed'), 'fail');
    assert.equal(r1.code, 1);

    const withEndpoint = conf('a-endpoint.conf', `[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = ${f.keys.publicKey}\nEndpoint = ${FANG_PUBLIC}:51820\n[Peer]\nPublicKey = ${b.keys.publicKey}\nEndpoint = 203.0.113.20:51820\n`);
    assert.equal(status(await doctor(lab, 'a', ['--server', f.overlayAddress, '--wg-config', withEndpoint]), 'peer-endpoints'), 'warn');

    await wgA('persistent-keepalive', '0');
    const r2 = await onA();
    await wgA('persistent-keepalive', '25');
    assert.equal(status(r2, 'fang-keepalive'), 'fail');

    await wgA('allowed-ips', `${f.overlayAddress}/32`);
    const r3 = await onA();
    await wgA('allowed-ips', '10.10.10.0/24');
    assert.equal(status(r3, 'fang-allowed-ips'), 'warn');

    const rule = ['INPUT', '-i', a.wgInterface, '-p', 'udp', '--dport', '51822', '-j', 'DROP'];
    await lab.inNs(a.ns, ['iptables', '-w', '5', '-A', ...rule]);
    const r4 = await onA();
    await lab.inNs(a.ns, ['iptables', '-w', '5', '-D', ...rule]);
    assert.equal(status(r4, 'probe-port'), 'fail');
    assert.equal(r4.code, 1);

    assert.equal(status(await doctor(lab, 'a', ['--server', a.overlayAddress, '--wg-config', good]), 'fang-allowed-ips'), 'fail', '--server given our own address');
    assert.equal(status(await doctor(lab, 'a', ['--server', '10.99.0.1', '--wg-config', good]), 'fang-peer'), 'fail', 'no peer routes the server address');

    // The fang peer re-added without its Endpoint (what a config without one gives): no endpoint, no session.
    await wgA('remove');
    await wgA('allowed-ips', '10.10.10.0/24', 'persistent-keepalive', '25');
    const r8 = await onA();
    await wgA('endpoint', `${FANG_PUBLIC}:51820`);
    assert.equal(status(r8, 'fang-endpoint'), 'fail');
    assert.equal(status(r8, 'fang-handshake'), 'fail');
    await waitFor('A\'s handshake with F again', async () => ((await lab.peerOf('a', 'f'))?.latestHandshake ? true : undefined), { timeoutMs: 15_000 });

    // The fang.
    await lab.inNs(f.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    const r5 = await onF();
    await lab.inNs(f.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    assert.equal(status(r5, 'ip-forwarding'), 'fail');

    // A peer in F's config that never connects.
    const ghost = generateKeyPair().publicKey;
    await lab.inNs(f.ns, ['wg', 'set', f.wgInterface, 'peer', ghost, 'allowed-ips', '10.10.10.99/32']);
    const r9 = await onF();
    await lab.inNs(f.ns, ['wg', 'set', f.wgInterface, 'peer', ghost, 'remove']);
    assert.equal(status(r9, 'peer-handshakes'), 'warn');

    await lab.inNs(f.ns, ['iptables', '-w', '5', '-P', 'FORWARD', 'DROP']);
    const r6 = await onF();
    await lab.inNs(f.ns, ['iptables', '-w', '5', '-P', 'FORWARD', 'ACCEPT']);
    assert.equal(status(r6, 'forward-policy'), 'fail');

    assert.equal(status(await doctor(lab, 'f', ['--listen', FANG_PUBLIC, '--wg-config', fangConf]), 'listen-address'), 'fail');

    await lab.stop(clientA);
    assert.equal(status(await onA(), 'client-running'), 'warn');

    await lab.stop(server);
    const r7 = await onA();
    assert.equal(status(r7, 'server-reachable'), 'fail');
    assert.equal(status(await onF(), 'server-running'), 'fail');
  });
});

test('doctor sees a ListenPort clash behind one NAT and a symmetric NAT', { skip, timeout: 180_000 }, async (t) => {
  await withLab(t, { withHostC: true, natB: 'symmetric' }, async (lab) => {
    await lab.startServer();
    for (const name of ['a', 'b', 'c'] as const) lab.startSnakebite(name, lab.clientArgs(name));
    const server = ['--server', lab.host('f').overlayAddress];
    // A and C sit behind natA and both listen on 51820: the NAT must give one another port.
    const clash = await waitFor('a listen-port clash on C', async () => {
      const report = await doctor(lab, 'c', server);
      return status(report, 'listen-port-clash') === 'fail' ? report : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.equal(clash.code, 1);
    const nat = await waitFor('B\'s NAT seen as hard', async () => {
      const report = await doctor(lab, 'b', server);
      return status(report, 'nat-behaviour') === 'warn' ? report : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.match(nat.findings.find((f) => f.check === 'nat-behaviour')!.message, /symmetric|rewrites its port/);
  });
});
