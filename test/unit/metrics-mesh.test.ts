import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { buildMesh, DirectSince, MAX_MESH_MATRIX_PEERS, type PairPath } from '../../src/fang/mesh';
import { meshBuilder, meshRoutes, renderMeshPage } from '../../src/fang/mesh-page';
import { startFangServer } from '../../src/fang/server';
import { parsePolicy } from '../../src/fang/policy';
import { ClientMetrics } from '../../src/metrics/client-metrics';
import { Histogram, renderExposition } from '../../src/metrics/exposition';
import { FangMetrics, outcomeOf } from '../../src/metrics/fang-metrics';
import { parseForwardedBytes } from '../../src/metrics/forwarded';
import type { PeerReport } from '../../src/peer-list/peer-list';
import { captureLogger, device, endpoint, ip, key, type PeerSpec } from '../support/fakes';
import { FakeDriver } from '../support/fakes';

const NOW = 1_800_000_000;
const [A, B, C, F] = [key(1), key(2), key(3), key(9)];

const fangPeers: PeerSpec[] = [
  { publicKey: A, endpoint: '198.51.100.10:51820', allowedIps: ['10.10.10.2/32'], latestHandshake: NOW - 2 },
  { publicKey: B, endpoint: '198.51.100.20:40000', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW - 7 },
  { publicKey: C, endpoint: '198.51.100.10:1024', allowedIps: ['10.10.10.4/32'], latestHandshake: NOW - 400 },
];
const report = (listenPort: number, seen: [string, string][]): PeerReport => ({ listenPort, candidates: [], seen: seen.map(([publicKey, at]) => ({ publicKey, endpoint: endpoint(at) })) });

describe('mesh view', () => {
  const cases: { name: string; reports: [string, PeerReport][]; want: Record<string, PairPath> }[] = [
    { name: 'no reports: live pairs relayed, a peer without a session none', reports: [], want: { AB: 'relayed', AC: 'none', BC: 'none' } },
    { name: 'one side reports the other: direct', reports: [[A, report(51820, [[B, '198.51.100.20:40001']])]], want: { AB: 'direct', AC: 'none', BC: 'none' } },
    { name: 'seen at a private address: lan', reports: [[C, report(51820, [[A, '192.168.1.2:51820']])]], want: { AB: 'relayed', AC: 'lan', BC: 'none' } },
  ];
  const names: Record<string, string> = { [A]: 'A', [B]: 'B', [C]: 'C' };
  for (const c of cases) {
    test(c.name, () => {
      const view = buildMesh(device(F, fangPeers), new Map(c.reports), NOW);
      const got = Object.fromEntries(view.pairs.map((p) => [[names[p.a], names[p.b]].sort().join(''), p.path]));
      assert.deepEqual(got, c.want);
    });
  }
  test(`a large fang: pairs among the first ${MAX_MESH_MATRIX_PEERS} peers only, and the view says so`, () => {
    const many: PeerSpec[] = Array.from({ length: MAX_MESH_MATRIX_PEERS + 44 }, (_, i) => ({ publicKey: key(1000 + i), endpoint: `198.51.100.${(i % 250) + 1}:${2000 + i}`, allowedIps: [`10.20.${i >> 8}.${i & 255}/32`], latestHandshake: NOW - 1 }));
    const view = buildMesh(device(F, many), new Map(), NOW);
    assert.equal(view.peers.length, many.length);
    assert.equal(view.pairs.length, (MAX_MESH_MATRIX_PEERS * (MAX_MESH_MATRIX_PEERS - 1)) / 2);
    assert.equal(view.pairsLimitedTo, MAX_MESH_MATRIX_PEERS);
    assert.equal(buildMesh(device(F, fangPeers), new Map(), NOW).pairsLimitedTo, undefined);
  });

  test('relayed pairs carry the older handshake with F; NAT behaviour from the reports', () => {
    const view = buildMesh(device(F, fangPeers), new Map([[A, report(51820, [[B, '198.51.100.20:40001']])], [B, report(51820, [])]]), NOW);
    assert.equal(view.pairs.find((p) => p.a === A && p.b === B)?.path, 'direct');
    assert.equal(view.peers.find((p) => p.publicKey === B)?.nat, 'symmetric', 'F sees 40000, A sees 40001');
    assert.equal(view.peers.find((p) => p.publicKey === A)?.nat, 'keeps-port');
    const relayed = buildMesh(device(F, fangPeers), new Map(), NOW).pairs.find((p) => p.path === 'relayed')!;
    assert.equal(relayed.handshakeAgeSeconds, 7);
  });
  test('direct-since clock starts when a pair goes direct and stops when it does not', () => {
    const since = new DirectSince();
    const reports = new Map([[A, report(51820, [[B, '198.51.100.20:40001']])]]);
    since.update(buildMesh(device(F, fangPeers), reports, NOW));
    const later = buildMesh(device(F, fangPeers), reports, NOW + 30, { directSince: since.map });
    assert.equal(later.pairs.find((p) => p.path === 'direct')?.directForSeconds, 30);
    since.update(buildMesh(device(F, fangPeers), new Map(), NOW + 40));
    assert.equal(since.map.size, 0);
  });
});

describe('mesh page', () => {
  const view = buildMesh(device(F, fangPeers), new Map(), NOW, { names: new Map([[A, '</script><img src=x onerror=alert(1)>']]) });
  const html = renderMeshPage(view);
  test('self-contained: no external scripts, styles, images or fonts', () => {
    assert.doesNotMatch(html, /\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
    assert.doesNotMatch(html, /@import|url\(/);
    assert.match(html, /Content-Security-Policy/);
  });
  test('peer data cannot close the script element', () => {
    assert.equal(html.split('</script>').length - 1, 2, 'only the two script elements end');
    assert.match(html, /\\u003c\/script>/);
  });
  test('a non-peer gets 403, a peer the page and the JSON', async (t) => {
    const fang = device(F, [{ publicKey: A, endpoint: '198.51.100.10:51820', allowedIps: ['127.0.0.1/32'], latestHandshake: NOW }]);
    const { logger } = captureLogger();
    const server = await startFangServer({ driver: new FakeDriver(fang), listenAddress: ip('127.0.0.1'), port: 0, logger, peerRoutes: meshRoutes(meshBuilder()) });
    t.after(() => server.close());
    const fetch = (path: string, from = '127.0.0.1') =>
      new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        get({ host: '127.0.0.1', port: server.port, path, localAddress: from }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
        }).on('error', reject);
      });
    const page = await fetch('/mesh');
    assert.equal(page.status, 200);
    assert.match(page.type, /text\/html/);
    assert.match(page.body, /Snakebite mesh/);
    const json = await fetch('/v1/mesh.json');
    assert.equal((JSON.parse(json.body) as { peers: unknown[] }).peers.length, 1);
    // 127.0.0.2 is in no peer's AllowedIPs.
    // The fang refuses a stranger's connection (or answers 403): either way, nothing of the mesh.
    const stranger = await fetch('/mesh', '127.0.0.2').catch(() => ({ status: 0, type: '', body: '' }));
    assert.ok(stranger.status === 0 || stranger.status === 403, `status ${stranger.status}`);
    assert.doesNotMatch(stranger.body, /Snakebite mesh|198\.51/);
  });
});

describe('metrics', () => {
  test('exposition format: HELP, TYPE, escaped labels, histogram buckets', () => {
    const h = new Histogram([1, 5]);
    h.observe(0.5);
    h.observe(3);
    const text = renderExposition([
      { name: 'x_total', help: 'a\nb', type: 'counter', samples: [{ labels: { k: 'a"b\\c\nd' }, value: 2 }] },
      { name: 'h_seconds', help: 'h', type: 'histogram', samples: h.samples() },
    ]);
    assert.equal(
      text,
      '# HELP x_total a\\nb\n# TYPE x_total counter\nx_total{k="a\\"b\\\\c\\nd"} 2\n# HELP h_seconds h\n# TYPE h_seconds histogram\nh_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="5"} 2\nh_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 3.5\nh_seconds_count 2\n',
    );
  });
  test('outcomes', () => assert.deepEqual([200, 204, 403, 404, 400, 413, 503, 500].map(outcomeOf), ['ok', 'ok', 'refused', 'not-found', 'bad-request', 'bad-request', 'unavailable', 'error']));
  test('fang metrics: requests, endpoint changes, relayed pairs, wireguard exporter names', () => {
    const metrics = new FangMetrics();
    metrics.request('/v1/peers', 200);
    metrics.request('/v1/peers', 403);
    metrics.request('/etc/passwd', 404);
    const before = device(F, fangPeers);
    metrics.observeDevice(before);
    const moved = device(F, [{ ...fangPeers[0]!, endpoint: '198.51.100.11:51820' }, fangPeers[1]!, fangPeers[2]!]);
    const text = metrics.render({ device: moved, mesh: buildMesh(moved, new Map(), NOW), waiting: 3, forwardedBytes: 1234 });
    for (const line of [
      'snakebite_fang_requests_total{path="/v1/peers",outcome="ok"} 1',
      'snakebite_fang_requests_total{path="/v1/peers",outcome="refused"} 1',
      'snakebite_fang_requests_total{path="other",outcome="not-found"} 1',
      'snakebite_fang_peers{interface="wg0"} 3',
      'snakebite_fang_endpoint_changes_total 1',
      'snakebite_fang_waiting_clients 3',
      'snakebite_fang_relayed_pairs 1',
      'snakebite_fang_forwarded_bytes_total{interface="wg0"} 1234',
      `wireguard_latest_handshake_seconds{interface="wg0",public_key="${B}",allowed_ips="10.10.10.3/32"} ${NOW - 7}`,
    ]) {
      assert.ok(text.split('\n').includes(line), `missing: ${line}\n${text}`);
    }
  });
  test('client metrics: changes by kind from log events, time to direct, peers by path, fang reachable', () => {
    let now = 1000;
    const metrics = new ClientMetrics(() => now);
    const { logger, lines } = captureLogger();
    const tapped = metrics.tap(logger).child({ interface: 'wg0' });
    tapped.info('peer-added', { peer: B, endpoint: '198.51.100.20:51820' });
    tapped.info('peer-added', { peer: C, dryRun: true });
    now += 1500;
    tapped.info('relay-ended', { peer: B });
    tapped.info('relay-started', { peer: C });
    assert.equal(lines.length, 4, 'everything still reaches the logger');
    metrics.published({ relayed: new Map([[C, NOW - 10]]) });
    const peers: PeerSpec[] = [
      { publicKey: F, endpoint: '203.0.113.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW - 1 },
      { publicKey: B, endpoint: '198.51.100.20:51820', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW - 1 },
      { publicKey: C, endpoint: '198.51.100.30:51820', allowedIps: [], latestHandshake: 0 },
    ];
    const text = metrics.render(device(A, peers), F, new Date(NOW * 1000));
    for (const line of [
      'snakebite_client_changes_total{kind="add-peer"} 1',
      'snakebite_client_changes_total{kind="direct-again"} 1',
      'snakebite_client_changes_total{kind="relay"} 1',
      'snakebite_client_peers{path="direct"} 1',
      'snakebite_client_peers{path="relayed"} 1',
      'snakebite_client_time_to_direct_seconds_bucket{le="2"} 1',
      'snakebite_client_time_to_direct_seconds_sum 1.5',
      'snakebite_client_fang_reachable 1',
    ]) {
      assert.ok(text.split('\n').includes(line), `missing: ${line}\n${text}`);
    }
    metrics.published({ lastError: 'timeout', relayed: new Map() });
    assert.match(metrics.render(device(A, peers), F, new Date(NOW * 1000)), /^snakebite_client_fang_reachable 0$/m);
  });
  test('forwarded bytes from iptables -nvxL FORWARD', () => {
    const text = `Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
     120    98765 ACCEPT     all  --  wg0    wg0     0.0.0.0/0            0.0.0.0/0
       3      300 ACCEPT     all  --  wg0    eth0    0.0.0.0/0            0.0.0.0/0
      10     1000 ACCEPT     udp  --  wg0    wg0     0.0.0.0/0            0.0.0.0/0            udp dpt:53
`;
    assert.equal(parseForwardedBytes(text, 'wg0'), 99765);
    assert.equal(parseForwardedBytes(text, 'wg1'), undefined);
  });
});

describe('mesh under a policy', () => {
  test('an asker sees itself and the peers the policy lets it learn, with their names, and no evidence from hidden peers', () => {
    const policy = parsePolicy(`peer alice ${A} home\npeer bob ${B} home\npeer carol ${C} work\nallow home home\n`);
    const mesh = meshBuilder(() => NOW * 1000);
    const reports = new Map([[C, report(51820, [[A, '198.51.100.10:51999']])]]);
    const seenByAlice = mesh(device(F, fangPeers), reports, { asker: A, policy });
    assert.deepEqual(seenByAlice.peers.map((p) => p.name), ['alice', 'bob']);
    assert.deepEqual(seenByAlice.pairs.map((p) => p.path), ['relayed']);
    assert.doesNotMatch(JSON.stringify(seenByAlice), new RegExp(C.slice(0, 8).replace(/[+/]/g, '.')));
    const whole = mesh(device(F, fangPeers), reports);
    assert.equal(whole.peers.length, 3);
  });
});
