import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isSnakebiteError, type ErrorCode } from '../../src/errors';
import type { PeerChange } from '../../src/wireguard/device-state';
import { addconfText, explainWgFailure, runCommand, WgCommandDriver, wgSetArguments, type CommandRunner } from '../../src/wireguard/wg-command-driver';
import { endpoint, key, prefix, readFixture } from '../support/fakes';

const A = key(1);
const B = key(2);
const C = key(3);

describe('wgSetArguments', () => {
  const rows: { name: string; changes: PeerChange[]; want: string[] }[] = [
    { name: 'no changes', changes: [], want: ['set', 'wg0'] },
    {
      name: 'a new peer: endpoint, keepalive, allowed IPs joined with commas',
      changes: [{ publicKey: A, endpoint: endpoint('192.0.2.1:51820'), persistentKeepalive: 25, allowedIps: [prefix('10.10.10.2/32'), prefix('fd00::2/128')] }],
      want: ['set', 'wg0', 'peer', A, 'endpoint', '192.0.2.1:51820', 'persistent-keepalive', '25', 'allowed-ips', '10.10.10.2/32,fd00::2/128'],
    },
    {
      name: 'IPv6 endpoint in brackets',
      changes: [{ publicKey: A, endpoint: endpoint('[2001:DB8::1]:51820') }],
      want: ['set', 'wg0', 'peer', A, 'endpoint', '[2001:db8::1]:51820'],
    },
    {
      name: 'IPv4-mapped endpoint in brackets',
      changes: [{ publicKey: A, endpoint: endpoint('[::ffff:192.0.2.9]:4500') }],
      want: ['set', 'wg0', 'peer', A, 'endpoint', '[::ffff:192.0.2.9]:4500'],
    },
    {
      name: 'link-local endpoint keeps its zone',
      changes: [{ publicKey: A, endpoint: endpoint('[fe80::1%eth0]:51820') }],
      want: ['set', 'wg0', 'peer', A, 'endpoint', '[fe80::1%eth0]:51820'],
    },
    {
      name: 'keepalive 0 turns it off',
      changes: [{ publicKey: A, persistentKeepalive: 0 }],
      want: ['set', 'wg0', 'peer', A, 'persistent-keepalive', '0'],
    },
    {
      name: 'empty allowed IPs clear them',
      changes: [{ publicKey: A, allowedIps: [] }],
      want: ['set', 'wg0', 'peer', A, 'allowed-ips', ''],
    },
    {
      name: 'host bits are already cleared in allowed IPs',
      changes: [{ publicKey: A, allowedIps: [prefix('10.10.10.7/24')] }],
      want: ['set', 'wg0', 'peer', A, 'allowed-ips', '10.10.10.0/24'],
    },
    {
      name: 'remove ignores every other field',
      changes: [{ publicKey: A, remove: true, endpoint: endpoint('192.0.2.1:1'), allowedIps: [prefix('10.0.0.1/32')] }],
      want: ['set', 'wg0', 'peer', A, 'remove'],
    },
    {
      name: 'a peer with nothing to set still gets its section',
      changes: [{ publicKey: A }],
      want: ['set', 'wg0', 'peer', A],
    },
    {
      name: 'many peers in one command',
      changes: [
        { publicKey: A, endpoint: endpoint('198.51.100.1:1000'), persistentKeepalive: 25, allowedIps: [prefix('10.10.10.2/32')] },
        { publicKey: B, endpoint: endpoint('[2001:db8::2]:2000') },
        { publicKey: C, remove: true },
      ],
      want: [
        'set', 'wg0',
        'peer', A, 'endpoint', '198.51.100.1:1000', 'persistent-keepalive', '25', 'allowed-ips', '10.10.10.2/32',
        'peer', B, 'endpoint', '[2001:db8::2]:2000',
        'peer', C, 'remove',
      ],
    },
  ];
  for (const { name, changes, want } of rows) {
    test(name, () => {
      const args = wgSetArguments('wg0', changes);
      assert.deepEqual(args, want);
      assert.equal(args.filter((a) => a === 'set').length, 1, 'exactly one `wg set`');
      assert.equal(args.filter((a) => a === 'peer').length, changes.length, 'one `peer` section per change');
    });
  }

  test('one hundred changes still make one command', () => {
    const changes = Array.from({ length: 100 }, (_, i) => ({ publicKey: key(i + 10), endpoint: endpoint(`198.51.100.${i + 1}:51820`) }));
    const args = wgSetArguments('wg0', changes);
    assert.equal(args[0], 'set');
    assert.equal(args.length, 2 + 100 * 4);
  });
});

describe('explainWgFailure', () => {
  const argv = ['show', 'wg0', 'dump'];
  const exitError = (code: number, stderr: string) => Object.assign(new Error(`Command failed: wg show wg0 dump\n${stderr}`), { code, stderr, stdout: '' });
  const rows: { name: string; error: unknown; code: ErrorCode; message: RegExp[]; hint?: RegExp }[] = [
    {
      name: 'ENOENT: wg is not installed',
      error: Object.assign(new Error('spawn wg ENOENT'), { code: 'ENOENT', errno: -2, syscall: 'spawn wg' }),
      code: 'SB_WG_NOT_FOUND',
      message: [/`wg` command was not found/],
      hint: /install wireguard-tools/,
    },
    {
      name: 'no such interface',
      error: exitError(1, 'Unable to access interface: No such device\n'),
      code: 'SB_NO_SUCH_INTERFACE',
      message: [/interface wg0 does not exist/, /wg show wg0 dump/, /Unable to access interface: No such device/],
      hint: /wg-quick up wg0/,
    },
    {
      name: 'no such device alone',
      error: exitError(1, 'No such device'),
      code: 'SB_NO_SUCH_INTERFACE',
      message: [/wg0/],
    },
    {
      name: 'operation not permitted',
      error: exitError(1, 'Unable to modify interface: Operation not permitted\n'),
      code: 'SB_PERMISSION',
      message: [/wg show wg0 dump/, /Operation not permitted/],
      hint: /root|CAP_NET_ADMIN/,
    },
    {
      name: 'permission denied',
      error: exitError(1, 'Unable to open socket: Permission denied'),
      code: 'SB_PERMISSION',
      message: [/Permission denied/],
    },
    {
      name: 'anything else: exit code, argv and stderr',
      error: exitError(3, 'Key is not the correct length or format: `zzz`\n'),
      code: 'SB_WG_FAILED',
      message: [/exit code 3/, /wg show wg0 dump/, /Key is not the correct length or format: `zzz`$/],
    },
    {
      name: 'anything else without stderr falls back to the error message',
      error: Object.assign(new Error('spawn wg EACCES'), { code: 'EACCES' }),
      code: 'SB_WG_FAILED',
      message: [/EACCES/, /wg show wg0 dump/],
    },
    {
      name: 'killed by the timeout',
      error: Object.assign(new Error('killed'), { killed: true, signal: 'SIGTERM', code: null, stderr: '' }),
      code: 'SB_WG_FAILED',
      message: [/wg show wg0 dump: no answer within 10 s/],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const error = explainWgFailure('wg0', argv, row.error);
      assert.equal(error.code, row.code);
      for (const pattern of row.message) assert.match(error.message, pattern);
      if (row.hint) assert.match(error.hint ?? '', row.hint);
      assert.equal(error.cause, row.error, 'the raw error stays reachable as the cause');
    });
  }
});

describe('WgCommandDriver with a fake CommandRunner', () => {
  function recordingRunner(reply: (file: string, args: readonly string[]) => Promise<{ stdout: string; stderr: string }>) {
    const calls: { file: string; args: string[] }[] = [];
    const run: CommandRunner = (file, args) => {
      calls.push({ file, args: [...args] });
      return reply(file, args);
    };
    return { calls, run };
  }

  test('readDevice runs `wg show <if> dump` once and parses it', async () => {
    const { calls, run } = recordingRunner(async () => ({ stdout: readFixture('wireguard-go-ipv6-psk.dump'), stderr: '' }));
    const driver = new WgCommandDriver('wg7', run);
    const state = await driver.readDevice();
    assert.deepEqual(calls, [{ file: 'wg', args: ['show', 'wg7', 'dump'] }]);
    assert.equal(state.interfaceName, 'wg7');
    assert.equal(state.peers.length, 2);
  });

  test('applyPeerChanges runs one `wg set` with every change', async () => {
    const { calls, run } = recordingRunner(async () => ({ stdout: '', stderr: '' }));
    const driver = new WgCommandDriver('wg0', run, '/opt/wg');
    const changes: PeerChange[] = [
      { publicKey: A, endpoint: endpoint('192.0.2.1:51820'), persistentKeepalive: 25, allowedIps: [prefix('10.10.10.2/32')] },
      { publicKey: B, endpoint: endpoint('[2001:db8::1]:51820') },
    ];
    await driver.applyPeerChanges(changes);
    assert.deepEqual(calls, [{ file: '/opt/wg', args: wgSetArguments('wg0', changes) }]);
  });

  test('applyPeerChanges with no changes runs nothing', async () => {
    const { calls, run } = recordingRunner(async () => ({ stdout: '', stderr: '' }));
    await new WgCommandDriver('wg0', run).applyPeerChanges([]);
    assert.equal(calls.length, 0);
  });

  test('a failed read becomes SB_NO_SUCH_INTERFACE', async () => {
    const { run } = recordingRunner(async () => {
      throw Object.assign(new Error('Command failed'), { code: 1, stderr: 'Unable to access interface: No such device\n' });
    });
    await assert.rejects(new WgCommandDriver('wg3', run).readDevice(), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_NO_SUCH_INTERFACE'));
      assert.match(error.message, /wg show wg3 dump/);
      return true;
    });
  });

  test('a failed set names the whole argv', async () => {
    const { run } = recordingRunner(async () => {
      throw Object.assign(new Error('Command failed'), { code: 1, stderr: 'Unable to modify interface: Operation not permitted\n' });
    });
    await assert.rejects(new WgCommandDriver('wg0', run).applyPeerChanges([{ publicKey: A, endpoint: endpoint('192.0.2.1:51820') }]), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_PERMISSION'));
      assert.ok(error.message.includes(`wg set wg0 peer ${A} endpoint 192.0.2.1:51820`), error.message);
      return true;
    });
  });

  test('garbage on stdout becomes SB_DUMP_MALFORMED', async () => {
    const { run } = recordingRunner(async () => ({ stdout: 'interface: wg0\n  public key: x\n', stderr: '' }));
    await assert.rejects(new WgCommandDriver('wg0', run).readDevice(), (error: unknown) => isSnakebiteError(error, 'SB_DUMP_MALFORMED'));
  });
});

describe('WgCommandDriver spawning a fake `wg`', () => {
  let dir = '';
  let wg = '';

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'snakebite-fake-wg-'));
    wg = path.join(dir, 'wg');
    writeFileSync(path.join(dir, 'dump'), readFixture('wireguard-go-ipv6-psk.dump'));
    // Records each run as NUL-separated arguments plus a newline, and the locale it ran with.
    writeFileSync(
      wg,
      [
        '#!/bin/sh',
        `dir='${dir}'`,
        'printf "%s\\0" "$@" >> "$dir/argv"',
        'printf "\\n" >> "$dir/argv"',
        'printf "%s" "$LC_ALL" > "$dir/lc_all"',
        'case "$2" in missing) echo "Unable to access interface: No such device" >&2; exit 1;; esac',
        'if [ "$1" = show ]; then cat "$dir/dump"; fi',
        // wg reads its configuration by path (fopen): keep a copy, and show it can be opened.
        'if [ "$1" = addconf ]; then cat "$3" > "$dir/conf" || exit 1; fi',
        'exit 0',
        '',
      ].join('\n'),
    );
    chmodSync(wg, 0o755);
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function runs(): string[][] {
    const text = existsSync(path.join(dir, 'argv')) ? readFileSync(path.join(dir, 'argv'), 'utf8') : '';
    rmSync(path.join(dir, 'argv'), { force: true });
    return text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => line.split('\0').slice(0, -1));
  }

  test('arguments arrive as an array: spaces and ";" are not interpreted by a shell', async () => {
    const hostile = `wg0; touch ${dir}/pwned`;
    const driver = new WgCommandDriver(hostile, runCommand, wg);
    const state = await driver.readDevice();
    assert.equal(state.peers.length, 2);
    assert.deepEqual(runs(), [['show', hostile, 'dump']]);
    assert.equal(existsSync(path.join(dir, 'pwned')), false, 'nothing after ";" ran');
  });

  test('wg runs with LC_ALL=C, so its messages can be matched', async () => {
    await new WgCommandDriver('wg0', runCommand, wg).readDevice();
    runs();
    assert.equal(readFileSync(path.join(dir, 'lc_all'), 'utf8'), 'C');
  });

  test('one spawn applies every change', async () => {
    const changes: PeerChange[] = [
      { publicKey: A, endpoint: endpoint('[2001:db8::1]:51820'), persistentKeepalive: 25, allowedIps: [prefix('10.10.10.2/32'), prefix('fd00::2/128')] },
      { publicKey: B, endpoint: endpoint('198.51.100.2:4000') },
    ];
    await new WgCommandDriver('wg0', runCommand, wg).applyPeerChanges(changes);
    assert.deepEqual(runs(), [wgSetArguments('wg0', changes)]);
  });

  test('a batch too large for argv: one addconf from a readable file (removed after), then wg set runs', async () => {
    const changes: PeerChange[] = Array.from({ length: 3000 }, (_, i) => ({
      publicKey: Buffer.alloc(32, 9).fill(i & 0xff, 0, 1).fill(i >> 8, 1, 2).toString('base64'),
      endpoint: endpoint(`198.51.100.${(i % 250) + 1}:${1000 + i}`),
      persistentKeepalive: 25,
      ...(i % 2 ? { allowedIps: [prefix(`10.1.${i >> 8}.${i & 255}/32`)] } : {}),
    }));
    await new WgCommandDriver('wg0', runCommand, wg).applyPeerChanges(changes);
    const [config, ...sets] = runs();
    assert.deepEqual(config!.slice(0, 2), ['addconf', 'wg0']);
    assert.equal(existsSync(config![2]!), false, 'the configuration file is removed');
    assert.equal(readFileSync(path.join(dir, 'conf'), 'utf8'), addconfText(changes.filter((c) => c.allowedIps)));
    assert.ok(sets.length >= 1 && sets.every((args) => args[0] === 'set'));
    assert.equal(sets.flat().filter((a) => a === 'peer').length, 1500);
  });

  test("a real failure carries wg's stderr", async () => {
    await assert.rejects(new WgCommandDriver('missing', runCommand, wg).readDevice(), (error: unknown) => {
      assert.ok(isSnakebiteError(error, 'SB_NO_SUCH_INTERFACE'), String(error));
      assert.match(error.message, /Unable to access interface: No such device/);
      assert.match(error.hint ?? '', /wg-quick up missing/);
      return true;
    });
    runs();
  });

  test('a wg that does not exist is SB_WG_NOT_FOUND', async () => {
    await assert.rejects(new WgCommandDriver('wg0', runCommand, path.join(dir, 'no-such-wg')).readDevice(), (error: unknown) => isSnakebiteError(error, 'SB_WG_NOT_FOUND'));
  });
});

describe('re-creating a peer (recreate) in one wg set', () => {
  const PSK = key(0x77);
  test('arguments: remove, then the same peer with its fields; the preshared key only as a file path', () => {
    const args = wgSetArguments('wg0', [{ publicKey: A, recreate: true, keepPresharedKey: true, endpoint: endpoint('192.0.2.1:51820'), persistentKeepalive: 5, allowedIps: [prefix('10.10.10.2/32')] }], new Map([[A, '/tmp/x/psk0']]));
    assert.deepEqual(args, ['set', 'wg0', 'peer', A, 'remove', 'peer', A, 'preshared-key', '/tmp/x/psk0', 'endpoint', '192.0.2.1:51820', 'persistent-keepalive', '5', 'allowed-ips', '10.10.10.2/32']);
  });

  test('the driver reads the preshared key, hands wg a 0600 file, never the key on argv, and removes the file after', async () => {
    const calls: string[][] = [];
    let seen: { path: string; mode: number; text: string } | undefined;
    const run: CommandRunner = async (_file, args) => {
      calls.push([...args]);
      if (args[2] === 'preshared-keys') return { stdout: `${A}\t${PSK}\n${B}\t(none)\n`, stderr: '' };
      const at = args.indexOf('preshared-key');
      const file = args[at + 1]!;
      const { statSync } = await import('node:fs');
      seen = { path: file, mode: statSync(file).mode & 0o777, text: readFileSync(file, 'utf8') };
      return { stdout: '', stderr: '' };
    };
    await new WgCommandDriver('wg0', run).applyPeerChanges([
      { publicKey: A, recreate: true, keepPresharedKey: true, endpoint: endpoint('192.0.2.1:51820'), allowedIps: [prefix('10.10.10.2/32')] },
      { publicKey: B, endpoint: endpoint('192.0.2.2:51820') },
    ]);
    assert.deepEqual(calls.map((c) => c.slice(0, 3)), [['show', 'wg0', 'preshared-keys'], ['set', 'wg0', 'peer']]);
    assert.ok(!calls.flat().includes(PSK), 'the preshared key is never an argument');
    assert.equal(seen?.mode, 0o600);
    assert.equal(seen?.text.trim(), PSK);
    assert.equal(existsSync(seen!.path), false, 'the key file is gone after');
  });

  test('a preshared key to keep that wg no longer shows: nothing is applied, and the error says so', async () => {
    const calls: string[][] = [];
    const run: CommandRunner = async (_file, args) => {
      calls.push([...args]);
      return { stdout: args[2] === 'preshared-keys' ? `${A}\t(none)\n` : '', stderr: '' };
    };
    await assert.rejects(
      new WgCommandDriver('wg0', run).applyPeerChanges([{ publicKey: A, recreate: true, keepPresharedKey: true, endpoint: endpoint('192.0.2.1:51820') }]),
      (error: unknown) => isSnakebiteError(error, 'SB_WG_FAILED') && /nothing was changed/.test(error.message),
    );
    assert.deepEqual(calls, [['show', 'wg0', 'preshared-keys']], 'no wg set ran');
  });

  test('no preshared key to keep: no read, no file', async () => {
    const calls: string[][] = [];
    const run: CommandRunner = async (_file, args) => {
      calls.push([...args]);
      return { stdout: '', stderr: '' };
    };
    await new WgCommandDriver('wg0', run).applyPeerChanges([{ publicKey: A, recreate: true, endpoint: endpoint('192.0.2.1:51820') }]);
    assert.deepEqual(calls, [['set', 'wg0', 'peer', A, 'remove', 'peer', A, 'endpoint', '192.0.2.1:51820']]);
  });
});
