import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  exitStatus,
  fangFindings,
  formatFinding,
  peerFindings,
  type CheckId,
  type FangFacts,
  type FindingStatus,
  type PeerFacts,
} from '../../src/doctor/checks';
import { firewallVerdict, parseFilterTable } from '../../src/doctor/firewall';
import { parseWgConfig } from '../../src/doctor/wg-config';
import type { PeerList } from '../../src/peer-list/peer-list';
import { device, endpoint, ip, key, type PeerSpec } from '../support/fakes';

const NOW = 1_800_000_000;
const ME = key(1);
const FANG = key(9);
const B = key(2);
const C = key(3);

const fangSpec: PeerSpec = { publicKey: FANG, endpoint: '203.0.113.1:51820', allowedIps: ['10.10.10.0/24'], latestHandshake: NOW - 5, persistentKeepalive: 25 };
const list = (over: Partial<PeerList> = {}): PeerList => ({
  version: 1,
  fang: { publicKey: FANG },
  you: { publicKey: ME, endpoint: endpoint('198.51.100.10:51820') },
  peers: [{ publicKey: B, endpoint: endpoint('198.51.100.20:51820'), allowedIps: [], latestHandshake: NOW - 3, listenPort: 51820 }],
  ...over,
});
const ACCEPTING = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

function peerFacts(over: Partial<PeerFacts> = {}, fang: PeerSpec = fangSpec): PeerFacts {
  return {
    role: 'peer',
    device: device(ME, [fang]),
    server: { address: ip('10.10.10.1'), port: 51821 },
    ownAddresses: [ip('10.10.10.2')],
    config: { path: '/etc/wireguard/wg0.conf', listenPort: 51820, peers: [{ publicKey: FANG, endpoint: 'f.example:51820', allowedIps: ['10.10.10.0/24'] }] },
    firewall: { rules: ACCEPTING },
    fang: { list: list() },
    clientRunning: true,
    nowSeconds: NOW,
    ...over,
  };
}

function fangFacts(over: Partial<FangFacts> = {}): FangFacts {
  return {
    role: 'fang',
    device: device(FANG, [
      { publicKey: ME, endpoint: '198.51.100.10:51820', allowedIps: ['10.10.10.2/32'], latestHandshake: NOW - 1 },
      { publicKey: B, endpoint: '198.51.100.20:51820', allowedIps: ['10.10.10.3/32'], latestHandshake: NOW - 2 },
    ]),
    listen: { address: ip('10.10.10.1'), port: 51821 },
    ownAddresses: [ip('10.10.10.1')],
    config: { path: '/etc/wireguard/wg0.conf', listenPort: 51820, peers: [] },
    firewall: { rules: ACCEPTING },
    forwarding: { ipv4: true, ipv6: false },
    server: { status: 403 },
    nowSeconds: NOW,
    ...over,
  };
}

function statusOf(findings: ReturnType<typeof peerFindings>, check: CheckId): FindingStatus | undefined {
  return findings.find((f) => f.check === check)?.status;
}

describe('doctor on a peer: a good setup passes every check', () => {
  test('all ok, exit 0', () => {
    const findings = peerFindings(peerFacts());
    assert.deepEqual(findings.filter((f) => f.status !== 'ok').map((f) => f.check), []);
    assert.equal(exitStatus(findings), 0);
  });
});

describe('doctor on a peer: one misconfiguration per case', () => {
  const cases: { name: string; facts: PeerFacts; check: CheckId; want: FindingStatus }[] = [
    { name: 'no ListenPort in the config', facts: peerFacts({ config: { path: 'x.conf', peers: [] } }), check: 'listen-port-fixed', want: 'fail' },
    { name: 'config says another ListenPort than the interface', facts: peerFacts({ config: { path: 'x.conf', listenPort: 51999, peers: [] } }), check: 'listen-port-fixed', want: 'warn' },
    { name: 'config unreadable', facts: peerFacts({ config: { path: 'x.conf', unreadable: 'ENOENT' } }), check: 'listen-port-fixed', want: 'skip' },
    { name: 'no peer routes the server address', facts: peerFacts({ server: { address: ip('10.20.0.1'), port: 51821 } }), check: 'fang-peer', want: 'fail' },
    { name: 'fang peer without endpoint', facts: peerFacts({}, { ...fangSpec, endpoint: null }), check: 'fang-endpoint', want: 'fail' },
    { name: 'fang peer without keepalive', facts: peerFacts({}, { ...fangSpec, persistentKeepalive: null }), check: 'fang-keepalive', want: 'fail' },
    { name: 'fang peer routes only the server /32', facts: peerFacts({}, { ...fangSpec, allowedIps: ['10.10.10.1/32'] }), check: 'fang-allowed-ips', want: 'warn' },
    { name: 'fang AllowedIPs do not hold our Address', facts: peerFacts({ ownAddresses: [ip('10.99.0.2')] }), check: 'fang-allowed-ips', want: 'warn' },
    { name: '--server is our own address', facts: peerFacts({ ownAddresses: [ip('10.10.10.1')] }), check: 'fang-allowed-ips', want: 'fail' },
    { name: 'no handshake with the fang', facts: peerFacts({}, { ...fangSpec, latestHandshake: 0 }), check: 'fang-handshake', want: 'fail' },
    { name: 'old handshake with the fang', facts: peerFacts({}, { ...fangSpec, latestHandshake: NOW - 600 }), check: 'fang-handshake', want: 'fail' },
    { name: 'server does not answer', facts: peerFacts({ fang: { error: 'ECONNREFUSED' } }), check: 'server-reachable', want: 'fail' },
    {
      name: 'another peer has an Endpoint in the config',
      facts: peerFacts({ config: { path: 'x.conf', listenPort: 51820, peers: [{ publicKey: FANG, endpoint: 'f:1', allowedIps: [] }, { publicKey: B, endpoint: '198.51.100.20:51820', allowedIps: [] }] } }),
      check: 'peer-endpoints',
      want: 'warn',
    },
    { name: 'firewall drops the probe port on the interface', facts: peerFacts({ firewall: { rules: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i wg0 -p udp -m udp --dport 51822 -j DROP\nCOMMIT\n' } }), check: 'probe-port', want: 'fail' },
    { name: 'INPUT policy DROP without a rule for the probe port', facts: peerFacts({ firewall: { rules: '*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p udp --dport 51820 -j ACCEPT\nCOMMIT\n' } }), check: 'probe-port', want: 'fail' },
    { name: 'firewall unreadable', facts: peerFacts({ firewall: { unavailable: 'iptables-save is not installed' } }), check: 'probe-port', want: 'skip' },
    {
      name: 'another peer behind our NAT with our ListenPort',
      facts: peerFacts({ fang: { list: list({ peers: [{ publicKey: C, endpoint: endpoint('198.51.100.10:1024'), allowedIps: [], latestHandshake: NOW, listenPort: 51820 }] }) } }),
      check: 'listen-port-clash',
      want: 'fail',
    },
    {
      name: 'symmetric NAT: F and a peer see different ports',
      facts: peerFacts({ fang: { list: list({ you: { publicKey: ME, endpoint: endpoint('198.51.100.10:40000'), seenBy: [{ publicKey: B, endpoint: endpoint('198.51.100.10:40001') }] } }) } }),
      check: 'nat-behaviour',
      want: 'warn',
    },
    { name: 'NAT rewrites the ListenPort', facts: peerFacts({ fang: { list: list({ you: { publicKey: ME, endpoint: endpoint('198.51.100.10:40000') } }) } }), check: 'nat-behaviour', want: 'warn' },
    { name: 'no client daemon', facts: peerFacts({ clientRunning: false }), check: 'client-running', want: 'warn' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const findings = peerFindings(c.facts);
      assert.equal(statusOf(findings, c.check), c.want, findings.map(formatFinding).join('\n'));
      const finding = findings.find((f) => f.check === c.check)!;
      if (c.want === 'fail' || c.want === 'warn') assert.ok(finding.fix, 'says what to change');
      assert.equal(exitStatus(findings), findings.some((f) => f.status === 'fail') ? 1 : 0);
    });
  }
});

describe('doctor on the fang', () => {
  test('a good setup passes', () => {
    const findings = fangFindings(fangFacts());
    assert.deepEqual(findings.filter((f) => f.status !== 'ok').map(formatFinding), []);
  });
  const cases: { name: string; facts: FangFacts; check: CheckId; want: FindingStatus }[] = [
    { name: 'listen address not on the interface', facts: fangFacts({ listen: { address: ip('203.0.113.1'), port: 51821 } }), check: 'listen-address', want: 'fail' },
    { name: 'no ListenPort in the config', facts: fangFacts({ config: { path: 'x.conf', peers: [] } }), check: 'listen-port-fixed', want: 'fail' },
    { name: 'server not running', facts: fangFacts({ server: { error: 'ECONNREFUSED' } }), check: 'server-running', want: 'fail' },
    { name: 'server closes our (non-peer) connection: running', facts: fangFacts({ server: { status: 0 } }), check: 'server-running', want: 'ok' },
    { name: 'IPv4 forwarding off', facts: fangFacts({ forwarding: { ipv4: false, ipv6: false } }), check: 'ip-forwarding', want: 'fail' },
    {
      name: 'IPv6 overlay without IPv6 forwarding',
      facts: fangFacts({ device: device(FANG, [{ publicKey: ME, allowedIps: ['fd00::2/128'], latestHandshake: NOW }]) }),
      check: 'ip-forwarding',
      want: 'fail',
    },
    { name: 'FORWARD policy DROP', facts: fangFacts({ firewall: { rules: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n' } }), check: 'forward-policy', want: 'fail' },
    { name: 'FORWARD DROP but wg0 to wg0 accepted', facts: fangFacts({ firewall: { rules: '*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i wg0 -o wg0 -j ACCEPT\nCOMMIT\n' } }), check: 'forward-policy', want: 'ok' },
    { name: 'a peer without a session', facts: fangFacts({ device: device(FANG, [{ publicKey: ME, allowedIps: ['10.10.10.2/32'] }]) }), check: 'peer-handshakes', want: 'warn' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const findings = fangFindings(c.facts);
      assert.equal(statusOf(findings, c.check), c.want, findings.map(formatFinding).join('\n'));
    });
  }
});

describe('firewall walk', () => {
  const packet = { inInterface: 'wg0', protocol: 'udp' as const, destinationPort: 51822, state: 'NEW' as const, source: ip('10.10.10.3') };
  const cases = [
    { name: 'no filter table', rules: '', want: 'no-rules' },
    { name: 'accept by policy', rules: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT', want: 'accept' },
    { name: 'user chain drops', rules: '*filter\n:INPUT ACCEPT [0:0]\n:wg-in - [0:0]\n-A INPUT -i wg+ -j wg-in\n-A wg-in -p udp -j REJECT --reject-with icmp-port-unreachable\nCOMMIT', want: 'drop' },
    { name: 'user chain returns, policy accepts', rules: '*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n-A INPUT -j x\n-A x -j RETURN\n-A x -j DROP\nCOMMIT', want: 'accept' },
    { name: 'another interface dropped', rules: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i eth0 -j DROP\nCOMMIT', want: 'accept' },
    { name: 'negated interface', rules: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT ! -i lo -p udp -m multiport --dports 51820:51830 -j DROP\nCOMMIT', want: 'drop' },
    { name: 'source outside the rule', rules: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.168.0.0/16 -j DROP\nCOMMIT', want: 'accept' },
    { name: 'accepted before a later drop', rules: '*filter\n:INPUT DROP [0:0]\n-A INPUT -i wg0 -p udp --dport 51822 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT', want: 'accept' },
  ];
  for (const c of cases) test(c.name, () => assert.equal(firewallVerdict(parseFilterTable(c.rules), 'INPUT', packet).kind, c.want));
});

describe('wg-quick config facts', () => {
  test('ListenPort, peers, endpoints; keys of the interface are not kept', () => {
    const facts = parseWgConfig('[Interface]\nPrivateKey = secret\nListenPort = 51820 # fixed\n\n[Peer]\nPublicKey = F\nEndpoint = f.example:51820\nAllowedIPs = 10.10.10.0/24, fd00::/64\nPersistentKeepalive = 25\n[Peer]\nPublicKey = B\n', 'wg0.conf');
    assert.equal(facts.listenPort, 51820);
    assert.deepEqual(facts.peers, [
      { publicKey: 'F', endpoint: 'f.example:51820', allowedIps: ['10.10.10.0/24', 'fd00::/64'], persistentKeepalive: 25 },
      { publicKey: 'B', allowedIps: [] },
    ]);
    assert.doesNotMatch(JSON.stringify(facts), /secret/);
  });
  test('no ListenPort', () => assert.equal(parseWgConfig('[Interface]\nAddress = 10.0.0.2/24\n', 'x').listenPort, undefined));
});
