import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptReply, reconcile, syncOnce, type SyncDeps, type SyncOptions } from '../../src/client/sync';
import { isSnakebiteError, SnakebiteError } from '../../src/errors';
import { formatIp, type IpAddress } from '../../src/ip/address';
import type { DeviceState } from '../../src/wireguard/device-state';
import { parseDump } from '../../src/wireguard/dump-parser';
import { captureLogger, FakeDriver, ip, key, readFixture, stringify, type CapturedLine } from '../support/fakes';

/** The client fixture: this interface, the fang peer (10.10.10.0/24, fd00::/64), a LAN peer at .3 and an unreached peer at .4. */
const DEVICE = parseDump('wg0', readFixture('client-fang-and-two-peers.dump'));
const SELF = DEVICE.publicKey!;
const [FANG_PEER, LAN_PEER, UNREACHED_PEER] = DEVICE.peers as [DeviceState['peers'][0], DeviceState['peers'][0], DeviceState['peers'][0]];
const FANG = FANG_PEER.publicKey;
const NEW_A = key(0x05);
const NEW_B = key(0x07);
const BAD = key(0x08);
const GREEDY = key(0x09);

/** 90 s after the LAN peer's handshake: it is flowing. */
const NOW = new Date((LAN_PEER.latestHandshake + 90) * 1000);

const OPTIONS: SyncOptions = { serverAddress: ip('10.10.10.1'), keepaliveSeconds: 25, flowingWithinSeconds: 180, dryRun: false };

function reply(peers: unknown[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { version: 1, fang: { publicKey: FANG }, you: { publicKey: SELF, endpoint: '203.0.113.1:40000' }, peers, ...overrides };
}

const HOSTILE = reply([
  { publicKey: NEW_A, endpoint: '198.51.100.5:4000', allowedIps: ['10.10.10.5/32'], latestHandshake: 1 },
  { publicKey: BAD, endpoint: '300.1.1.1:80', allowedIps: ['10.10.10.8/32'], latestHandshake: 1 },
  { publicKey: FANG, endpoint: '203.0.113.66:666', allowedIps: ['10.10.10.0/24'], latestHandshake: 1 },
  { publicKey: SELF, endpoint: '203.0.113.1:40000', allowedIps: ['10.10.10.2/32'], latestHandshake: 1 },
  { publicKey: GREEDY, endpoint: '198.51.100.9:4000', allowedIps: ['0.0.0.0/0', '10.99.0.0/16', '10.10.10.1/32'], latestHandshake: 1 },
  { publicKey: UNREACHED_PEER.publicKey, endpoint: '198.51.100.4:5000', allowedIps: ['10.10.10.4/32'], latestHandshake: 1 },
  'not a peer',
  { publicKey: NEW_B, endpoint: '[2001:db8::7]:4000', allowedIps: ['0.0.0.0/0', '10.10.10.6/32'], latestHandshake: 1 },
  { publicKey: LAN_PEER.publicKey, endpoint: '203.0.113.3:7000', allowedIps: ['10.10.10.3/32'], latestHandshake: 1 },
]);

function setup(body: unknown | (() => Promise<unknown>), state: DeviceState = DEVICE) {
  const driver = new FakeDriver(state);
  const triggers: IpAddress[][] = [];
  const { logger, lines, raw } = captureLogger();
  let fetches = 0;
  const deps: SyncDeps = {
    driver,
    fetchPeerList: async () => {
      fetches++;
      return typeof body === 'function' ? (body as () => Promise<unknown>)() : structuredClone(body);
    },
    triggerHandshakes: async (addresses) => {
      triggers.push([...addresses]);
    },
    logger,
    clock: () => NOW,
  };
  return { driver, triggers, lines, raw, deps, fetchCount: () => fetches };
}

const events = (lines: CapturedLine[], event: string) => lines.filter((l) => l.event === event);

describe('syncOnce', () => {
  test('a hostile list: bad items refused with a warning each, good items applied in one batch', async () => {
    const { driver, triggers, lines, deps } = setup(HOSTILE);
    const fangBefore = stringify(driver.state.peers.find((p) => p.publicKey === FANG));
    const lanBefore = stringify(driver.state.peers.find((p) => p.publicKey === LAN_PEER.publicKey));

    const result = await syncOnce(deps, OPTIONS);

    assert.equal(driver.batches.length, 1, 'one applyPeerChanges call');
    assert.deepEqual(
      driver.batches[0]!.map((c) => ({ publicKey: c.publicKey, allowedIps: c.allowedIps?.map((p) => `${formatIp(p.address)}/${p.length}`) })),
      [
        { publicKey: NEW_A, allowedIps: ['10.10.10.5/32'] },
        // Never had a handshake: re-created with its own allowed IPs so WireGuard tries it at once.
        { publicKey: UNREACHED_PEER.publicKey, allowedIps: ['10.10.10.4/32'] },
        { publicKey: NEW_B, allowedIps: ['10.10.10.6/32'] },
      ],
    );
    assert.equal(stringify(driver.state.peers.find((p) => p.publicKey === FANG)), fangBefore, 'the fang peer is byte-for-byte the same');
    assert.equal(stringify(driver.state.peers.find((p) => p.publicKey === LAN_PEER.publicKey)), lanBefore, 'a flowing peer keeps its endpoint');
    assert.ok(!driver.state.peers.some((p) => p.publicKey === GREEDY || p.publicKey === BAD || p.publicKey === SELF));
    assert.deepEqual(triggers.map((t) => t.map(formatIp)), [['10.10.10.5', '10.10.10.4', '10.10.10.6']]);

    // One warning per refused item, naming what and why.
    const refused = events(lines, 'peer-refused');
    assert.ok(refused.every((l) => l.level === 'warn'));
    assert.deepEqual(
      refused.map((l) => l.path ?? l.peer),
      ['peers[1].endpoint', 'peers[6]', FANG, SELF, GREEDY],
    );
    assert.match(String(refused[0]?.reason), /expected ip:port.*"300\.1\.1\.1:80"/);
    assert.equal(refused[0]?.peer, BAD);
    assert.match(String(refused[2]?.reason), /fang peer is never changed/);
    assert.match(String(refused[3]?.reason), /own key/);
    assert.match(String(refused[4]?.reason), /0\.0\.0\.0\/0: outside.*10\.99\.0\.0\/16: outside.*10\.10\.10\.1\/32: (contains the fang server's address|.*fang)/);
    const partly = events(lines, 'allowed-ip-refused');
    assert.deepEqual(partly.map((l) => [l.level, l.peer, l.prefix]), [['warn', NEW_B, '0.0.0.0/0']]);

    // One info line per change applied.
    assert.deepEqual(
      lines.filter((l) => l.level === 'info').map((l) => [l.event, l.peer, l.endpoint]),
      [
        ['peer-added', NEW_A, '198.51.100.5:4000'],
        ['peer-rebuilt', UNREACHED_PEER.publicKey, '198.51.100.4:5000'],
        ['peer-added', NEW_B, '[2001:db8::7]:4000'],
      ],
    );
    assert.equal(events(lines, 'peer-rebuilt')[0]?.keepalive, 25, 'keepalive set because it was off');
    assert.equal(driver.batches[0]![1]!.recreate, true);
    assert.deepEqual(events(lines, 'peer-kept').map((l) => [l.level, l.peer]), [['debug', LAN_PEER.publicKey]]);
    assert.equal(events(lines, 'sync-done').length, 1);

    assert.equal(result.rejected.length, 2);
    assert.equal(result.plan.changes.length, 3);
    assert.equal(result.device, DEVICE, 'the result carries the device as read before applying');
  });

  test('syncing the same list again changes nothing and applies nothing', async () => {
    const { driver, triggers, deps } = setup(HOSTILE);
    await syncOnce(deps, OPTIONS);
    const state = stringify(driver.state);
    const second = await syncOnce(deps, OPTIONS);
    assert.equal(second.plan.changes.length, 0);
    assert.equal(driver.batches.length, 1);
    assert.equal(triggers.length, 1);
    assert.equal(stringify(driver.state), state);
  });

  test("an entry with the fang's key and a new endpoint leaves the fang peer alone", async () => {
    const { driver, deps } = setup(reply([{ publicKey: FANG, endpoint: '203.0.113.66:666', allowedIps: ['0.0.0.0/0'], latestHandshake: 0 }]));
    const before = stringify(driver.state);
    await syncOnce(deps, OPTIONS);
    assert.equal(driver.batches.length, 0);
    assert.equal(stringify(driver.state), before);
  });

  test("an entry with the client's own key is refused", async () => {
    const { driver, lines, deps } = setup(reply([{ publicKey: SELF, endpoint: '203.0.113.1:1', allowedIps: ['10.10.10.2/32'], latestHandshake: 0 }]));
    await syncOnce(deps, OPTIONS);
    assert.equal(driver.batches.length, 0);
    assert.equal(events(lines, 'peer-refused')[0]?.peer, SELF);
  });

  test('allowed IPs outside the fang range: the peer is refused', async () => {
    const { driver, lines, deps } = setup(reply([{ publicKey: NEW_A, endpoint: '198.51.100.5:1', allowedIps: ['192.168.0.0/16', '0.0.0.0/1'], latestHandshake: 0 }]));
    await syncOnce(deps, OPTIONS);
    assert.equal(driver.batches.length, 0);
    assert.match(String(events(lines, 'peer-refused')[0]?.reason), /192\.168\.0\.0\/16: outside.*0\.0\.0\.0\/1: outside/);
  });

  test("a new peer taking the LAN peer's address is refused", async () => {
    const { driver, lines, deps } = setup(reply([{ publicKey: NEW_A, endpoint: '198.51.100.5:1', allowedIps: ['10.10.10.3/32'], latestHandshake: 0 }]));
    await syncOnce(deps, OPTIONS);
    assert.equal(driver.batches.length, 0);
    assert.match(String(events(lines, 'peer-refused')[0]?.reason), /overlaps 10\.10\.10\.3\/32/);
  });

  test('a list from another fang: SB_FANG_MISMATCH and nothing applied', async () => {
    const { driver, triggers, deps } = setup({ ...HOSTILE, fang: { publicKey: key(0xee) } });
    await assert.rejects(syncOnce(deps, OPTIONS), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_FANG_MISMATCH'));
      assert.ok(error.message.includes(key(0xee).slice(0, 8)));
      assert.ok(error.message.includes(FANG.slice(0, 8)));
      return true;
    });
    assert.equal(driver.batches.length, 0);
    assert.equal(triggers.length, 0);
  });

  const malformed = [
    { name: 'version 2', body: { ...HOSTILE, version: 2 } },
    { name: 'not an object', body: 'hello' },
    { name: 'peers not an array', body: { ...HOSTILE, peers: {} } },
    { name: 'bad fang key', body: { ...HOSTILE, fang: { publicKey: 'x' } } },
  ];
  for (const { name, body } of malformed) {
    test(`a malformed envelope (${name}): SB_REPLY_MALFORMED and nothing applied`, async () => {
      const { driver, triggers, deps } = setup(body);
      await assert.rejects(syncOnce(deps, OPTIONS), (error: unknown) => isSnakebiteError(error, 'SB_REPLY_MALFORMED'));
      assert.equal(driver.batches.length, 0);
      assert.equal(triggers.length, 0);
    });
  }

  test('a failed fetch is passed on and nothing is applied', async () => {
    const { driver, deps } = setup(async () => {
      throw new SnakebiteError('SB_FETCH_TIMEOUT', 'too slow');
    });
    await assert.rejects(syncOnce(deps, OPTIONS), (error: unknown) => isSnakebiteError(error, 'SB_FETCH_TIMEOUT'));
    assert.equal(driver.batches.length, 0);
  });

  test('no peer routes the server address: SB_NO_FANG_PEER before any fetch', async () => {
    const { driver, deps, fetchCount } = setup(HOSTILE);
    await assert.rejects(syncOnce(deps, { ...OPTIONS, serverAddress: ip('172.16.0.1') }), (error: unknown) => isSnakebiteError(error, 'SB_NO_FANG_PEER'));
    assert.equal(fetchCount(), 0);
    assert.equal(driver.batches.length, 0);
  });

  test('dry run: the plan is logged, nothing is applied or punched', async () => {
    const { driver, triggers, lines, deps } = setup(HOSTILE);
    const before = stringify(driver.state);
    const result = await syncOnce(deps, { ...OPTIONS, dryRun: true });
    assert.equal(result.plan.changes.length, 3);
    assert.equal(driver.batches.length, 0);
    assert.equal(triggers.length, 0);
    assert.equal(stringify(driver.state), before);
    const info = lines.filter((l) => l.level === 'info');
    assert.equal(info.length, 3);
    assert.ok(info.every((l) => l.dryRun === true));
  });

  test('triggerHandshakes gets the probe address of each change, IPv4 and IPv6', async () => {
    const { triggers, deps } = setup(
      reply([
        { publicKey: NEW_A, endpoint: '198.51.100.5:1', allowedIps: ['fd00::5/128', '10.10.10.5/32'], latestHandshake: 0 },
        { publicKey: NEW_B, endpoint: '198.51.100.6:1', allowedIps: ['10.10.10.6/32'], latestHandshake: 0 },
      ]),
    );
    await syncOnce(deps, OPTIONS);
    assert.deepEqual(triggers.map((t) => t.map(formatIp)), [['fd00::5', '10.10.10.6']]);
  });

  test('an empty list: no apply, no punch', async () => {
    const { driver, triggers, deps } = setup(reply([]));
    await syncOnce(deps, OPTIONS);
    assert.equal(driver.batches.length, 0);
    assert.equal(triggers.length, 0);
  });

  test('a fang that names someone else as "you" is warned about', async () => {
    const { lines, deps } = setup(reply([], { you: { publicKey: key(0x42), endpoint: null } }));
    await syncOnce(deps, OPTIONS);
    const warning = events(lines, 'fang-misidentifies-us')[0];
    assert.equal(warning?.level, 'warn');
    assert.equal(warning?.you, key(0x42));
    assert.equal(warning?.peer, SELF);
  });

  test('a failing apply is passed on, and nothing is punched', async () => {
    const { driver, triggers, deps } = setup(HOSTILE);
    driver.applyPeerChanges = async () => {
      throw new SnakebiteError('SB_PERMISSION', 'wg set: Operation not permitted');
    };
    await assert.rejects(syncOnce(deps, OPTIONS), (error: unknown) => isSnakebiteError(error, 'SB_PERMISSION'));
    assert.equal(triggers.length, 0);
  });

  test('no log line carries key material beyond public keys', async () => {
    const { raw, deps } = setup(HOSTILE);
    await syncOnce(deps, OPTIONS);
    const dump = readFixture('client-fang-and-two-peers.dump');
    const privateKey = dump.split('\t')[0]!;
    assert.ok(!raw.join('').includes(privateKey));
  });
});

describe('reconcile: why a listed peer is left alone, said once (issue 7 item 5)', () => {
  test('a refusal and an unmanaged peer each get one line while the reason stays; it is said again after it went away and came back', async () => {
    const SITE = key(0x0c);
    const state: DeviceState = { ...DEVICE, peers: [...DEVICE.peers, { publicKey: SITE, hasPresharedKey: false, endpoint: null, allowedIps: [{ address: ip('192.168.50.0'), length: 24 }], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null }] };
    const body = reply([
      { publicKey: SITE, endpoint: '198.51.100.12:4000', allowedIps: ['10.10.10.12/32'], latestHandshake: 1 },
      { publicKey: GREEDY, endpoint: '198.51.100.9:4000', allowedIps: ['0.0.0.0/0'], latestHandshake: 1 },
    ]);
    const { deps, lines } = setup(body, state);
    const { list } = acceptReply(body, deps.logger);
    const explained = new Map<string, { code: string; reason: string }>();
    for (let round = 0; round < 3; round++) await reconcile(deps, OPTIONS, list, { addedByUs: new Set() }, undefined, { explained });
    assert.deepEqual(lines.filter((l) => l.event === 'peer-unmanaged').map((l) => [l.level, l.peer]), [['info', SITE]]);
    assert.deepEqual(lines.filter((l) => l.event === 'peer-refused').map((l) => [l.level, l.peer]), [['warn', GREEDY]]);
    assert.deepEqual([...explained.keys()].sort(), [SITE, GREEDY].sort());
    const { list: without } = acceptReply(reply([]), deps.logger);
    await reconcile(deps, OPTIONS, without, { addedByUs: new Set() }, undefined, { explained });
    await reconcile(deps, OPTIONS, list, { addedByUs: new Set() }, undefined, { explained });
    assert.equal(lines.filter((l) => l.event === 'peer-refused').length, 2, 'said again after the reason came back');
  });
});

test('a peer about to be re-created that got a handshake meanwhile (the other side answered) is not re-created', async () => {
  const never = { ...UNREACHED_PEER, endpoint: null, latestHandshake: 0, rxBytes: 0 };
  const before: DeviceState = { ...DEVICE, peers: [FANG_PEER, LAN_PEER, never] };
  const after: DeviceState = { ...DEVICE, peers: [FANG_PEER, LAN_PEER, { ...never, endpoint: { address: ip('198.51.100.4'), port: 5000 }, latestHandshake: LAN_PEER.latestHandshake + 89, rxBytes: 92 }] };
  const body = reply([{ publicKey: UNREACHED_PEER.publicKey, endpoint: '198.51.100.4:5000', allowedIps: ['10.10.10.4/32'], latestHandshake: 1 }]);
  const { deps, driver } = setup(body, before);
  let reads = 0;
  driver.readDevice = async () => (reads++ === 0 ? before : after);
  const { list } = acceptReply(body, deps.logger);
  const result = await reconcile(deps, OPTIONS, list, { addedByUs: new Set() });
  assert.equal(reads, 2, 'read again before re-creating');
  assert.deepEqual(result.plan.changes, [], 'the fresh session is kept');
  assert.deepEqual(driver.batches, []);
});
