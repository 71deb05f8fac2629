import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { envName, parseBooleanText, parseConfigText } from '../../src/cli/config';
import { parseCommandArgs, parseDuration, type SettingsContext } from '../../src/cli/options';
import { isSnakebiteError } from '../../src/errors';

const SPEC = {
  interface: { type: 'string', short: 'i' },
  server: { type: 'string', short: 's' },
  wait: { type: 'string', default: '25s' },
  once: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function context(env: Record<string, string | undefined>, files: Record<string, string | undefined> = {}): SettingsContext {
  return {
    env,
    defaultConfigPath: (command) => `/etc/snakebite/${command}.conf`,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return text;
    },
  };
}

function refused(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isSnakebiteError(error, 'SB_USAGE'), String(error));
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('settings precedence: flags > environment > config file > defaults', () => {
  const file = '/etc/snakebite/client.conf';
  const cases = [
    { name: 'defaults only', argv: [], env: {}, files: {}, want: { wait: '25s', once: false, server: undefined } },
    { name: 'file over defaults', argv: [], env: {}, files: { [file]: 'wait = 10s\nonce = yes\nserver = 10.0.0.1\n' }, want: { wait: '10s', once: true, server: '10.0.0.1' } },
    { name: 'env over file', argv: [], env: { SNAKEBITE_WAIT: '5s', SNAKEBITE_ONCE: 'false' }, files: { [file]: 'wait = 10s\nonce = yes\n' }, want: { wait: '5s', once: false, server: undefined } },
    { name: 'flag over env and file', argv: ['--wait', '1s', '--once', '-s', '10.0.0.9'], env: { SNAKEBITE_WAIT: '5s', SNAKEBITE_SERVER: '10.0.0.2' }, files: { [file]: 'wait = 10s\nserver = 10.0.0.1' }, want: { wait: '1s', once: true, server: '10.0.0.9' } },
    { name: '--config names another file, the default one is not read', argv: ['--config', '/tmp/x.conf'], env: {}, files: { [file]: 'wait = 10s', '/tmp/x.conf': 'wait = 7s' }, want: { wait: '7s', once: false, server: undefined } },
    { name: 'SNAKEBITE_CONFIG names the file', argv: [], env: { SNAKEBITE_CONFIG: '/tmp/y.conf' }, files: { '/tmp/y.conf': '# comment\n\nserver = "10.0.0.3"\n' }, want: { wait: '25s', once: false, server: '10.0.0.3' } },
    { name: 'a variable of another command is left alone', argv: [], env: { SNAKEBITE_LISTEN: '10.0.0.1', SNAKEBITE_JSON: 'maybe' }, files: {}, want: { wait: '25s', once: false, server: undefined } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const values = parseCommandArgs('client', c.argv, SPEC, context(c.env, c.files));
      assert.deepEqual({ wait: values.wait, once: values.once, server: values.server }, c.want);
    });
  }
});

describe('settings refused with the key and the reason', () => {
  const file = '/etc/snakebite/client.conf';
  const cases = [
    { name: 'unknown key in the file', env: {}, files: { [file]: 'sever = 10.0.0.1' }, argv: [], want: [/client\.conf:1: sever: unknown key/] },
    { name: 'a flag of another command in the file', env: {}, files: { [file]: 'listen = 10.0.0.1' }, argv: [], want: [/listen: unknown key/] },
    { name: 'a line that is no key = value', env: {}, files: { [file]: 'server 10.0.0.1' }, argv: [], want: [/client\.conf:1: .*expected "key = value"/] },
    { name: 'a key set twice', env: {}, files: { [file]: 'wait = 1s\nwait = 2s' }, argv: [], want: [/:2: wait: set twice \(first on line 1\)/] },
    { name: 'config in the file', env: {}, files: { [file]: 'config = /x' }, argv: [], want: [/config: only allowed on the command line/] },
    { name: 'a bad boolean in the file', env: {}, files: { [file]: 'once = sometimes' }, argv: [], want: [/once: expected true or false, got "sometimes"/] },
    { name: 'a bad boolean in the environment', env: { SNAKEBITE_DRY_RUN: 'maybe' }, files: {}, argv: [], want: [/environment SNAKEBITE_DRY_RUN: dry-run: expected true or false/] },
    { name: 'an environment variable that names no flag', env: { SNAKEBITE_SERVR: '10.0.0.1' }, files: {}, argv: [], want: [/environment: SNAKEBITE_SERVR: names no snakebite flag/] },
    { name: 'an empty value', env: { SNAKEBITE_SERVER: '' }, files: {}, argv: [], want: [/SNAKEBITE_SERVER: server: empty value/] },
    { name: '--config that does not exist', env: {}, files: {}, argv: ['--config', '/nope.conf'], want: [/--config \/nope\.conf: cannot read it \(ENOENT\)/] },
  ];
  for (const c of cases) test(c.name, () => refused(() => parseCommandArgs('client', c.argv, SPEC, context(c.env, c.files)), ...c.want));

  test('a bad value from the environment names the variable', () => {
    const values = parseCommandArgs('client', [], SPEC, context({ SNAKEBITE_WAIT: 'soon' }));
    refused(() => parseDuration('client', 'wait', values.wait, 1000, 60_000), /--wait expects a duration .* got "soon" from the environment \(SNAKEBITE_WAIT\)/);
  });
  test('a bad value from the file names the file and line', () => {
    const values = parseCommandArgs('client', [], SPEC, context({}, { [file]: '\nwait = soon' }));
    refused(() => parseDuration('client', 'wait', values.wait, 1000, 60_000), /got "soon" from \/etc\/snakebite\/client\.conf:2 \(wait\)/);
  });
  test('--help skips the environment and the file', () => {
    const values = parseCommandArgs('client', ['--help'], SPEC, context({ SNAKEBITE_SERVR: 'x' }, { [file]: 'garbage' }));
    assert.equal(values.help, true);
  });
});

describe('config pieces', () => {
  test('envName', () => assert.deepEqual(['relay-after', 'log-level', 'server'].map(envName), ['SNAKEBITE_RELAY_AFTER', 'SNAKEBITE_LOG_LEVEL', 'SNAKEBITE_SERVER']));
  test('booleans', () => assert.deepEqual(['yes', 'On', '1', 'false', 'no', 'x'].map(parseBooleanText), [true, true, true, false, false, undefined]));
  test('comments, blanks, CRLF and spaces', () => {
    const { entries, problems } = parseConfigText('# c\r\n; c\r\n  Server =  10.0.0.1  \r\n\r\nwait=5s', 'f');
    assert.deepEqual(problems, []);
    assert.deepEqual(entries.map((e) => [e.key, e.value, e.line]), [['server', '10.0.0.1', 3], ['wait', '5s', 5]]);
  });
});
