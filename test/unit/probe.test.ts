import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import type { TestContext } from 'node:test';
import { PROBE_PORT, PROBE_REPLY, peerSourceCheck, ProbeResponder, probePeers } from '../../src/client/probe';
import { silentLogger } from '../../src/log/logger';
import { formatIp, type IpAddress } from '../../src/ip/address';
import type { DeviceState } from '../../src/wireguard/device-state';
import type { WireGuardDriver } from '../../src/wireguard/driver';
import { captureLogger, device, ip, key, within } from '../support/fakes';

const A = key(1);
const B = key(2);

/** A driver whose peers' rx counters grow by `step[key]` on every read. */
function growingDriver(step: Record<string, number>): WireGuardDriver & { reads: number } {
  const driver = {
    interfaceName: 'wg0',
    reads: 0,
    async readDevice(): Promise<DeviceState> {
      driver.reads++;
      return device(key(9), [
        { publicKey: A, rxBytes: driver.reads * (step[A] ?? 0), allowedIps: ['10.10.10.1/32'] },
        { publicKey: B, rxBytes: driver.reads * (step[B] ?? 0), allowedIps: ['10.10.10.2/32'] },
      ]);
    },
    async applyPeerChanges() {},
  };
  return driver;
}

const targets = [
  { publicKey: A, probeAddress: ip('10.10.10.1') },
  { publicKey: B, probeAddress: ip('10.10.10.2') },
];

describe('probePeers', () => {
  test('no targets: nothing read, nothing sent', async () => {
    const driver = growingDriver({});
    const sent: IpAddress[][] = [];
    const result = await probePeers(driver, [], async (a) => void sent.push([...a]), 1000);
    assert.equal(driver.reads, 0);
    assert.equal(sent.length, 0);
    assert.equal(result.silent.size, 0);
  });

  test('every peer answering ends the probe early', async () => {
    const sent: string[][] = [];
    const started = Date.now();
    const result = await within(3000, probePeers(growingDriver({ [A]: 10, [B]: 10 }), targets, async (a) => void sent.push(a.map(formatIp)), 5000));
    assert.ok(Date.now() - started < 2500);
    assert.deepEqual([...result.answered].sort(), [A, B].sort());
    assert.equal(result.silent.size, 0);
    assert.deepEqual(sent, [['10.10.10.1', '10.10.10.2']]);
  });

  test('a peer whose rx does not grow is silent; it is probed a second time halfway', async () => {
    const sent: string[][] = [];
    const started = Date.now();
    const result = await within(3000, probePeers(growingDriver({ [A]: 10 }), targets, async (a) => void sent.push(a.map(formatIp)), 200));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 2000, `took ${elapsed} ms`);
    assert.deepEqual([...result.answered], [A]);
    assert.deepEqual([...result.silent], [B]);
    assert.deepEqual(sent, [['10.10.10.1', '10.10.10.2'], ['10.10.10.2']]);
  });
});

/** A port of its own, so these tests never meet a real responder on PROBE_PORT. */
const TEST_PORT = 51899;

async function udpAt(t: TestContext, address: string): Promise<Socket> {
  const socket = createSocket('udp4');
  t.after(() => socket.close());
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  return socket;
}

/** The datagrams `socket` receives within `ms`. */
async function received(socket: Socket, ms: number): Promise<string[]> {
  const got: string[] = [];
  const listener = (message: Buffer) => got.push(message.toString());
  socket.on('message', listener);
  await new Promise((resolve) => setTimeout(resolve, ms));
  socket.removeListener('message', listener);
  return got;
}

describe('ProbeResponder', () => {
  test('answers a small datagram with the fixed reply, ignores large ones', async (t) => {
    const { logger, lines } = captureLogger();
    const responder = new ProbeResponder(logger, { port: TEST_PORT });
    t.after(() => responder.close());
    await responder.bind([ip('127.0.0.1'), ip('127.0.0.1'), ip('fe80::1%lo')]);
    if (lines.some((l) => l.event === 'probe-responder-unavailable')) return t.skip(`port ${TEST_PORT} is busy on 127.0.0.1`);
    assert.deepEqual(
      lines.filter((l) => l.event === 'probe-responder-listening').map((l) => l.listen),
      ['127.0.0.1'],
      'one socket per address; zoned addresses are skipped',
    );
    const client = await udpAt(t, '127.0.0.1');
    client.send(Buffer.from('x'.repeat(65)), TEST_PORT, '127.0.0.1');
    client.send(Buffer.from('ping'), TEST_PORT, '127.0.0.1');
    assert.deepEqual(await received(client, 300), [PROBE_REPLY.toString()]);
  });

  test('attack: a datagram from a source in no peer\'s allowed IPs (a host on the LAN) gets nothing', async (t) => {
    const responder = new ProbeResponder(silentLogger, { port: TEST_PORT, isPeer: async (source) => formatIp(source) === '127.0.0.2' });
    t.after(() => responder.close());
    await responder.bind([ip('127.0.0.1')]);
    const lanHost = await udpAt(t, '127.0.0.3');
    const peer = await udpAt(t, '127.0.0.2');
    const replies = Promise.all([received(lanHost, 200), received(peer, 200)]);
    lanHost.send(Buffer.from('hello'), TEST_PORT, '127.0.0.1');
    peer.send(Buffer.alloc(0), TEST_PORT, '127.0.0.1');
    assert.deepEqual(await replies, [[], [PROBE_REPLY.toString()]]);
    assert.equal(responder.ignored.notPeer, 1);
  });

  test('attack: a UDP echo service bounces the reply back: one reply, no loop', async (t) => {
    const responder = new ProbeResponder(silentLogger, { port: TEST_PORT });
    t.after(() => responder.close());
    await responder.bind([ip('127.0.0.1')]);
    const echo = await udpAt(t, '127.0.0.2');
    let echoed = 0;
    echo.on('message', (message, remote) => {
      echoed++;
      echo.send(message, remote.port, remote.address);
    });
    echo.send(Buffer.from('start'), TEST_PORT, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(echoed, 1, `the echo service got ${echoed} datagrams in 0.5 s`);
  });

  test('attack: a flood from a peer gets at most 5 replies a second', async (t) => {
    const responder = new ProbeResponder(silentLogger, { port: TEST_PORT });
    t.after(() => responder.close());
    await responder.bind([ip('127.0.0.1')]);
    const peer = await udpAt(t, '127.0.0.2');
    for (let i = 0; i < 1000; i++) peer.send(Buffer.from('p'), TEST_PORT, '127.0.0.1');
    const replies = await received(peer, 300);
    assert.ok(replies.length >= 1 && replies.length <= 10, `${replies.length} replies`);
  });

  test('a busy port is reported, not thrown', async (t) => {
    const holder = createSocket('udp4');
    t.after(() => holder.close());
    const bound = await new Promise<boolean>((resolve) => {
      holder.once('error', () => resolve(false));
      holder.bind({ address: '127.0.0.1', port: PROBE_PORT, exclusive: true }, () => resolve(true));
    });
    if (!bound) return t.skip(`port ${PROBE_PORT} is busy on 127.0.0.1`);
    const { logger, lines } = captureLogger();
    const responder = new ProbeResponder(logger);
    await responder.bind([ip('127.0.0.1')]);
    responder.close();
    assert.ok(lines.some((l) => l.event === 'probe-responder-unavailable' && l.listen === '127.0.0.1'));
  });
});

describe('peerSourceCheck', () => {
  test('a source inside any peer\'s allowed IPs is a peer; the interface is read once per second at most', async () => {
    const driver = growingDriver({});
    const isPeer = peerSourceCheck(driver);
    assert.deepEqual(await Promise.all(['10.10.10.1', '10.10.10.2', '192.168.1.5', '10.10.10.3'].map((a) => isPeer(ip(a)))), [true, true, false, false]);
    assert.equal(driver.reads, 1);
  });
});
