import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { PROBE_PORT, ProbeResponder, probePeers } from '../../src/client/probe';
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

describe('ProbeResponder', () => {
  test('echoes small datagrams on the bound address, ignores large ones', async (t) => {
    const { logger, lines } = captureLogger();
    const responder = new ProbeResponder(logger);
    t.after(() => responder.close());
    await responder.bind([ip('127.0.0.1'), ip('127.0.0.1'), ip('fe80::1%lo')]);
    if (lines.some((l) => l.event === 'probe-responder-unavailable')) return t.skip(`port ${PROBE_PORT} is busy on 127.0.0.1`);
    assert.deepEqual(
      lines.filter((l) => l.event === 'probe-responder-listening').map((l) => l.listen),
      ['127.0.0.1'],
      'one socket per address; zoned addresses are skipped',
    );

    const client = createSocket('udp4');
    t.after(() => client.close());
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', () => resolve()));
    const replies: string[] = [];
    client.on('message', (message) => replies.push(message.toString()));
    client.send(Buffer.from('x'.repeat(65)), PROBE_PORT, '127.0.0.1');
    client.send(Buffer.from('ping'), PROBE_PORT, '127.0.0.1');
    const deadline = Date.now() + 1000;
    while (replies.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.deepEqual(replies, ['ping']);
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
