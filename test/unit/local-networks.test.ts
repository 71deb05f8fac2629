import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { localCandidates, localNetworks, type InterfaceTable } from '../../src/client/local-networks';
import { formatEndpoint, formatPrefix } from '../../src/ip/address';

function v4(address: string, cidr: string | null, internal = false): NetworkInterfaceInfo {
  return { address, netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal, cidr };
}
function v6(address: string, cidr: string | null, internal = false): NetworkInterfaceInfo {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal, cidr, scopeid: 0 };
}

/** What os.networkInterfaces() gives on a laptop with a LAN, Docker and WireGuard. */
const TABLE: InterfaceTable = {
  lo: [v4('127.0.0.1', '127.0.0.1/8', true), v6('::1', '::1/128', true)],
  eth0: [v4('192.168.1.20', '192.168.1.20/24'), v6('fe80::a00:27ff:fe4e:66a1', 'fe80::a00:27ff:fe4e:66a1/64'), v6('2001:db8:1::20', '2001:db8:1::20/64')],
  wg0: [v4('10.10.10.2', '10.10.10.2/24'), v6('fd00::2', 'fd00::2/64')],
  docker0: [v4('172.17.0.1', '172.17.0.1/16'), v4('169.254.3.4', '169.254.0.0/16')],
  usb0: [v6('FE80::1', 'FE80::1/64')],
  odd: [v4('10.1.2.3', null)],
  down: undefined,
};

describe('localNetworks', () => {
  const rows: { name: string; wg: string; want: string[] }[] = [
    {
      name: 'every usable network but the WireGuard interface, loopback and link-local',
      wg: 'wg0',
      want: ['192.168.1.0/24', '2001:db8:1::/64', '172.17.0.0/16'],
    },
    {
      name: 'another WireGuard interface name: wg0 counts as a network like any other',
      wg: 'wg1',
      want: ['192.168.1.0/24', '2001:db8:1::/64', '10.10.10.0/24', 'fd00::/64', '172.17.0.0/16'],
    },
  ];
  for (const { name, wg, want } of rows) {
    test(name, () => assert.deepEqual(localNetworks(wg, TABLE).map(formatPrefix), want));
  }

  test('an empty table: none', () => assert.deepEqual(localNetworks('wg0', {}), []));

  test("this machine's own table never yields loopback or link-local networks", () => {
    for (const network of localNetworks('wg0').map(formatPrefix)) assert.doesNotMatch(network, /^(127\.|::1\/|fe80:|169\.254\.)/);
  });
});

describe('localCandidates', () => {
  const rows: { name: string; wg: string; listenPort: number; max?: number; want: string[] }[] = [
    {
      name: 'each usable address with the ListenPort; an address without a cidr still counts',
      wg: 'wg0',
      listenPort: 51820,
      want: ['192.168.1.20:51820', '[2001:db8:1::20]:51820', '172.17.0.1:51820', '10.1.2.3:51820'],
    },
    { name: 'at most max', wg: 'wg0', listenPort: 51820, max: 2, want: ['192.168.1.20:51820', '[2001:db8:1::20]:51820'] },
    { name: 'ListenPort 0 (not bound yet): none', wg: 'wg0', listenPort: 0, want: [] },
    {
      name: "the WireGuard interface's addresses are never candidates",
      wg: 'eth0',
      listenPort: 4000,
      want: ['10.10.10.2:4000', '[fd00::2]:4000', '172.17.0.1:4000', '10.1.2.3:4000'],
    },
  ];
  for (const { name, wg, listenPort, max, want } of rows) {
    test(name, () => assert.deepEqual(localCandidates(wg, listenPort, TABLE, max).map(formatEndpoint), want));
  }

  test('the default limit is the peer list limit on candidates (16)', () => {
    const many: InterfaceTable = { eth0: Array.from({ length: 20 }, (_, i) => v4(`192.168.1.${i + 1}`, `192.168.1.${i + 1}/24`)) };
    assert.equal(localCandidates('wg0', 51820, many).length, 16);
  });
});
