import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, silentLogger, type LogFields, type LogFormat, type LogLevel } from '../../src/log/logger';
import { key } from '../support/fakes';

const TIME = new Date('2024-05-06T07:08:09.010Z');
const KEY = key(0x42); // "QkJCQkJC..."

function capture(level: LogLevel, format: LogFormat) {
  const lines: string[] = [];
  const logger = createLogger({ level, format, clock: () => TIME, write: (line) => lines.push(line) });
  return { logger, lines };
}

describe('logger: text', () => {
  const rows: { name: string; fields: LogFields; want: string }[] = [
    { name: 'no fields', fields: {}, want: 'peer-added' },
    { name: 'plain values', fields: { endpoint: '192.0.2.1:51820', keepalive: 25, dryRun: true }, want: 'peer-added endpoint=192.0.2.1:51820 keepalive=25 dryRun=true' },
    { name: 'null is printed', fields: { previous: null }, want: 'peer-added previous=null' },
    { name: 'undefined is left out', fields: { previous: undefined, reason: 'new' }, want: 'peer-added reason=new' },
    { name: 'a value with spaces is quoted', fields: { reason: 'no handshake for 300s' }, want: 'peer-added reason="no handshake for 300s"' },
    { name: 'a value with quotes is escaped', fields: { reason: 'got "300.1.1.1:80"' }, want: 'peer-added reason="got \\"300.1.1.1:80\\""' },
    { name: 'a value with "=" is quoted', fields: { reason: 'a=b' }, want: 'peer-added reason="a=b"' },
    { name: 'an empty value is quoted', fields: { reason: '' }, want: 'peer-added reason=""' },
    { name: 'a newline cannot break the line', fields: { reason: 'one\ntwo' }, want: 'peer-added reason="one\\ntwo"' },
    { name: 'a tab is quoted', fields: { reason: 'a\tb' }, want: 'peer-added reason="a\\tb"' },
    { name: 'peer key shortened to 8 characters', fields: { peer: KEY }, want: `peer-added peer=${KEY.slice(0, 8)}` },
    { name: 'fang and you keys shortened too', fields: { fang: KEY, you: KEY }, want: `peer-added fang=${KEY.slice(0, 8)} you=${KEY.slice(0, 8)}` },
    { name: 'other fields keep a key whole (quoted: it ends in "=")', fields: { publicKey: KEY }, want: `peer-added publicKey="${KEY}"` },
    { name: 'a peer field that is not a key is kept whole', fields: { peer: 'laptop' }, want: 'peer-added peer=laptop' },
    { name: 'fields in the order given', fields: { b: 1, a: 2 }, want: 'peer-added b=1 a=2' },
  ];
  for (const { name, fields, want } of rows) {
    test(name, () => {
      const { logger, lines } = capture('debug', 'text');
      logger.info('peer-added', fields);
      assert.deepEqual(lines, [`2024-05-06T07:08:09.010Z info  ${want}\n`]);
    });
  }

  test('the level is padded to line up', () => {
    const { logger, lines } = capture('debug', 'text');
    logger.debug('a');
    logger.info('b');
    logger.warn('c');
    logger.error('d');
    assert.deepEqual(lines.map((l) => l.slice(25, 31)), ['debug ', 'info  ', 'warn  ', 'error ']);
  });

  test('every line is one line', () => {
    const { logger, lines } = capture('debug', 'text');
    logger.warn('peer-refused', { reason: 'line one\r\nline two', path: 'peers[1].endpoint' });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.split('\n').length, 2, 'only the final newline');
  });
});

describe('logger: json', () => {
  test('one object per line, full keys, no undefined', () => {
    const { logger, lines } = capture('debug', 'json');
    logger.warn('peer-refused', { peer: KEY, reason: 'has spaces', count: 3, ok: false, previous: null, gone: undefined });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.endsWith('\n'));
    assert.deepEqual(JSON.parse(lines[0]!), {
      time: '2024-05-06T07:08:09.010Z',
      level: 'warn',
      event: 'peer-refused',
      peer: KEY,
      reason: 'has spaces',
      count: 3,
      ok: false,
      previous: null,
    });
  });

  test('time, level and event come first', () => {
    const { logger, lines } = capture('debug', 'json');
    logger.info('x', { a: 1 });
    assert.deepEqual(Object.keys(JSON.parse(lines[0]!) as object), ['time', 'level', 'event', 'a']);
  });
});

describe('logger: levels', () => {
  const rows: { level: LogLevel; want: string[] }[] = [
    { level: 'debug', want: ['debug', 'info', 'warn', 'error'] },
    { level: 'info', want: ['info', 'warn', 'error'] },
    { level: 'warn', want: ['warn', 'error'] },
    { level: 'error', want: ['error'] },
  ];
  for (const { level, want } of rows) {
    test(`at ${level}`, () => {
      const { logger, lines } = capture(level, 'json');
      logger.debug('e');
      logger.info('e');
      logger.warn('e');
      logger.error('e');
      assert.deepEqual(lines.map((l) => (JSON.parse(l) as { level: string }).level), want);
    });
  }
});

describe('logger: child', () => {
  test('adds its fields to every line; a line can override them', () => {
    const { logger, lines } = capture('debug', 'text');
    const child = logger.child({ interface: 'wg0' });
    child.info('a', { peer: KEY });
    child.child({ round: 2 }).info('b');
    child.info('c', { interface: 'wg1' });
    assert.deepEqual(
      lines.map((l) => l.slice(31).trimEnd()),
      [`a interface=wg0 peer=${KEY.slice(0, 8)}`, 'b interface=wg0 round=2', 'c interface=wg1'],
    );
  });

  test('keeps the level', () => {
    const { logger, lines } = capture('warn', 'text');
    logger.child({ x: 1 }).info('hidden');
    assert.equal(lines.length, 0);
  });
});

describe('silentLogger', () => {
  test('writes nothing and its child is silent too', () => {
    silentLogger.error('x', { a: 1 });
    silentLogger.child({ a: 1 }).error('x');
    assert.equal(silentLogger.child({}), silentLogger);
  });
});
