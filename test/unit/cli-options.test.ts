import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loggerFromFlags, parseAddressAndPort, parseCommandArgs, parseDuration, parseInteger, parseInterfaceName, requireString } from '../../src/cli/options';
import { isSnakebiteError } from '../../src/errors';
import { formatIp } from '../../src/ip/address';

function usage(fn: () => unknown, message?: RegExp, command = 'client'): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isSnakebiteError(error, 'SB_USAGE'), String(error));
    if (message) assert.match(error.message, message);
    assert.equal(error.hint, `see snakebite ${command} --help`);
    return true;
  });
}

describe('parseAddressAndPort', () => {
  const good = [
    { name: 'IPv4', input: '10.10.10.1', want: { address: '10.10.10.1', port: 51821 } },
    { name: 'IPv4:port', input: '10.10.10.1:8080', want: { address: '10.10.10.1', port: 8080 } },
    { name: 'IPv4:65535', input: '10.10.10.1:65535', want: { address: '10.10.10.1', port: 65535 } },
    { name: 'IPv6', input: 'fd00::1', want: { address: 'fd00::1', port: 51821 } },
    { name: 'IPv6 that ends in digits', input: 'fd00::8080', want: { address: 'fd00::8080', port: 51821 } },
    { name: '[IPv6]', input: '[fd00::1]', want: { address: 'fd00::1', port: 51821 } },
    { name: '[IPv6]:port', input: '[fd00::1]:8080', want: { address: 'fd00::1', port: 8080 } },
    { name: 'IPv4-mapped IPv6', input: '::ffff:10.10.10.1', want: { address: '::ffff:10.10.10.1', port: 51821 } },
  ];
  for (const { name, input, want } of good) {
    test(`${name}: ${input}`, () => {
      const { address, port } = parseAddressAndPort('client', 'server', input, 51821);
      assert.deepEqual({ address: formatIp(address), port }, want);
    });
  }

  const bad = [
    { name: 'empty', input: '' },
    { name: 'host name', input: 'fang.example' },
    { name: 'host name with port', input: 'fang.example:51821' },
    { name: 'bad IPv4', input: '300.1.1.1' },
    { name: 'port 0', input: '10.10.10.1:0' },
    { name: 'port 65536', input: '10.10.10.1:65536' },
    { name: 'empty port', input: '10.10.10.1:' },
    { name: 'port not a number', input: '10.10.10.1:http' },
    { name: 'hex port', input: '10.10.10.1:0x50' },
    { name: 'exponent port', input: '10.10.10.1:1e3' },
    { name: 'port with a space', input: '10.10.10.1: 80' },
    { name: 'negative port', input: '10.10.10.1:-1' },
    { name: 'fractional port', input: '10.10.10.1:80.5' },
    { name: 'two ports', input: '10.10.10.1:80:81' },
    { name: '[IPv6]:0', input: '[fd00::1]:0' },
    { name: '[IPv6]: empty port', input: '[fd00::1]:' },
    { name: '[IPv6]:hex', input: '[fd00::1]:0x50' },
    { name: 'unclosed bracket', input: '[fd00::1:80' },
    { name: 'zone', input: 'fe80::1%eth0' },
    { name: 'bracketed zone', input: '[fe80::1%eth0]:80' },
    { name: 'garbage', input: '!!!' },
    { name: 'prefix', input: '10.10.10.0/24' },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => {
      usage(() => parseAddressAndPort('client', 'server', input, 51821), new RegExp(`--server expects IP or IP:PORT .* got "${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    });
  }
});

describe('parseDuration', () => {
  const good = [
    { input: '30', want: 30_000 },
    { input: '30s', want: 30_000 },
    { input: '500ms', want: 500 },
    { input: '2m', want: 120_000 },
    { input: '1.5s', want: 1500 },
    { input: '0.5', want: 500 },
    { input: '1s', want: 1000 },
    { input: '60m', want: 3_600_000 },
  ];
  for (const { input, want } of good) {
    test(`${input} -> ${want} ms`, () => assert.equal(parseDuration('client', 'interval', input, 100, 3_600_000), want));
  }

  const bad = [
    { name: 'below the minimum', input: '99ms' },
    { name: 'above the maximum', input: '61m' },
    { name: 'zero', input: '0' },
    { name: 'negative', input: '-5s' },
    { name: 'hours are not a unit', input: '1h' },
    { name: 'upper-case unit', input: '30S' },
    { name: 'space', input: '30 s' },
    { name: 'empty', input: '' },
    { name: 'exponent', input: '1e3' },
    { name: 'unit only', input: 's' },
    { name: 'trailing dot', input: '5.' },
    { name: 'two units', input: '1m30s' },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => {
      usage(() => parseDuration('client', 'interval', input, 100, 3_600_000), /--interval expects a duration from 0\.1s to 3600s/);
    });
  }

  test('sub-millisecond values are rounded', () => {
    assert.equal(parseDuration('client', 'timeout', '100.4ms', 100, 1000), 100);
    assert.equal(parseDuration('client', 'timeout', '0.1006s', 100, 1000), 101);
  });
});

describe('parseInteger', () => {
  const rows = [
    { input: '25', min: 1, max: 65535, want: 25 },
    { input: '1', min: 1, max: 65535, want: 1 },
    { input: '65535', min: 1, max: 65535, want: 65535 },
    { input: '007', min: 1, max: 65535, want: 7 },
  ];
  for (const { input, min, max, want } of rows) {
    test(`${input} -> ${want}`, () => assert.equal(parseInteger('client', 'keepalive', input, min, max), want));
  }

  for (const input of ['0', '65536', '-1', '1.5', '', ' 5', '5 ', '0x10', '1e2', '99999999999999999999', 'ten']) {
    test(`refuses ${JSON.stringify(input)}`, () => usage(() => parseInteger('client', 'keepalive', input, 1, 65535), /--keepalive expects a whole number from 1 to 65535/));
  }
});

describe('parseInterfaceName', () => {
  for (const name of ['wg0', 'wg-home', 'a', 'WG_1.2=+', 'x'.repeat(15)]) {
    test(`accepts ${name}`, () => assert.equal(parseInterfaceName('server', name), name));
  }

  const bad = [
    { name: 'missing', input: undefined, message: /--interface is required/ },
    { name: 'empty', input: '', message: /--interface is required/ },
    { name: '16 characters', input: 'x'.repeat(16), message: /not a valid interface name/ },
    { name: 'a slash', input: 'wg/0', message: /not a valid interface name/ },
    { name: 'a space', input: 'wg 0', message: /not a valid interface name/ },
    { name: 'a semicolon', input: 'wg0;reboot', message: /not a valid interface name/ },
    { name: '"."', input: '.', message: /not a valid interface name/ },
    { name: '".."', input: '..', message: /not a valid interface name/ },
  ];
  for (const { name, input, message } of bad) {
    test(`refuses ${name}`, () => usage(() => parseInterfaceName('server', input), message, 'server'));
  }
});

describe('parseCommandArgs / requireString / loggerFromFlags', () => {
  const spec = { interface: { type: 'string', short: 'i' }, once: { type: 'boolean', default: false } } as const;

  test('parses known flags', () => {
    const values = parseCommandArgs('client', ['-i', 'wg0', '--once'], spec);
    assert.equal(values.interface, 'wg0');
    assert.equal(values.once, true);
  });

  for (const argv of [['--nope'], ['wg0'], ['--interface'], ['--once=yes']]) {
    test(`refuses ${JSON.stringify(argv)}`, () => usage(() => parseCommandArgs('client', argv, spec)));
  }

  test('requireString', () => {
    assert.equal(requireString('client', 'server', '10.10.10.1'), '10.10.10.1');
    usage(() => requireString('client', 'server', undefined), /--server is required/);
    usage(() => requireString('client', 'server', ''), /--server is required/);
  });

  test('loggerFromFlags refuses unknown levels and formats', () => {
    usage(() => loggerFromFlags('client', { 'log-level': 'verbose' }), /--log-level must be one of debug, info, warn, error, got "verbose"/);
    usage(() => loggerFromFlags('client', { 'log-format': 'xml' }), /--log-format must be text or json, got "xml"/);
    assert.ok(loggerFromFlags('client', {}));
    assert.ok(loggerFromFlags('client', { 'log-level': 'debug', 'log-format': 'json' }));
  });
});
