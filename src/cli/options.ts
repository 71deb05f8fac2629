import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import { createLogger, LOG_LEVELS, type Logger, type LogFormat, type LogLevel } from '../log/logger';
import { describeSource, envName, layerSettings, parseConfigText, type OptionSpec, type SettingSource } from './config';

/** Where the settings of the command being run came from (flags, environment, config file, defaults). */
let currentSources: Record<string, SettingSource> = {};

export function usageError(message: string, command: string): SnakebiteError {
  // A bad value from the environment or a config file: say where to fix it.
  const flag = /^--([a-z-]+)/.exec(message)?.[1];
  const from = flag === undefined ? undefined : describeSource(flag, currentSources[flag]);
  return new SnakebiteError('SB_USAGE', from ? `${message} ${from}` : message, `see snakebite ${command} --help`);
}

/**
 * Every long flag of every command. An environment variable SNAKEBITE_<FLAG>
 * of another command is left alone; one that names no flag at all is refused.
 * test/unit/cli-help.test.ts keeps this true to the commands' --help.
 */
export const ALL_FLAGS: ReadonlySet<string> = new Set([
  'interface', 'listen', 'server', 'once', 'interval', 'wait', 'heartbeat', 'relay-after', 'keepalive', 'timeout',
  'dry-run', 'log-level', 'log-format', 'json', 'help', 'config', 'metrics', 'wg-config', 'policy',
]);

/** Flags that only the command line may give. */
const FLAG_ONLY: ReadonlySet<string> = new Set(['help', 'config']);

/** Where settings come from besides the command line; tests pass their own. */
export interface SettingsContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The config file read when neither --config nor SNAKEBITE_CONFIG names one (and it exists). */
  readonly defaultConfigPath: (command: string) => string;
  readonly readFile: (path: string) => string;
}

export const SYSTEM_SETTINGS: SettingsContext = {
  env: process.env,
  defaultConfigPath: (command) => `/etc/snakebite/${command}.conf`,
  readFile: (path) => readFileSync(path, 'utf8'),
};

export const LOGGING_OPTIONS = {
  'log-level': { type: 'string', default: 'info' },
  'log-format': { type: 'string', default: 'text' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

/** The help lines on --config and the environment, the same for every command. */
export function settingsHelp(command: string): { flag: string; epilog: string } {
  return {
    flag: `      --config FILE      settings as "key = value" lines (default /etc/snakebite/${command}.conf, if present)\n`,
    epilog: `Every flag can also be set as SNAKEBITE_<FLAG> (e.g. SNAKEBITE_LOG_LEVEL=debug) or as
"flag = value" in the config file; flags win over the environment, which wins
over the file.
`,
  };
}

const CONFIG_OPTION = { config: { type: 'string' } } as const;

/**
 * util.parseArgs, strict, with its errors turned into usage errors, and every
 * flag also taken from SNAKEBITE_<FLAG> and from a config file (`--config
 * FILE`, SNAKEBITE_CONFIG, or /etc/snakebite/<command>.conf when it exists).
 * Flags win over the environment, which wins over the file, which wins over
 * the defaults. An unknown key or a malformed value is refused with its place.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: T, context: SettingsContext = SYSTEM_SETTINGS) {
  const spec = { ...options, ...CONFIG_OPTION };
  const noDefaults = Object.fromEntries(Object.entries(spec).map(([key, { default: _ignored, ...rest }]) => [key, rest])) as NonNullable<ParseArgsConfig['options']>;
  type Values = ReturnType<typeof parseArgs<{ options: T & typeof CONFIG_OPTION; strict: true; allowPositionals: false }>>['values'];
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: argv, options: noDefaults, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw usageError((error as Error).message, command);
  }
  currentSources = {};
  if (flags.help === true) return { ...flags } as Values;

  const explicit = typeof flags.config === 'string' ? flags.config : context.env.SNAKEBITE_CONFIG;
  const path = explicit ?? context.defaultConfigPath(command);
  let file: { path: string; entries: ReturnType<typeof parseConfigText>['entries'] } | undefined;
  let text: string | undefined;
  try {
    text = context.readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The default file is optional; one that was asked for must be there.
    if (explicit !== undefined || code !== 'ENOENT') {
      throw usageError(`--config ${path}: cannot read it (${code ?? (error as Error).message})`, command);
    }
  }
  const problems = [];
  if (text !== undefined) {
    const parsed = parseConfigText(text, path);
    problems.push(...parsed.problems);
    file = { path, entries: parsed.entries };
  }
  const layered = layerSettings({ spec: spec as Record<string, OptionSpec>, flags, env: context.env, ...(file ? { file } : {}), allFlags: ALL_FLAGS, flagOnly: FLAG_ONLY });
  problems.push(...layered.problems);
  if (problems.length > 0) {
    throw usageError(`bad settings: ${problems.map((p) => `${p.where}: ${p.key}: ${p.reason}`).join('; ')}`, command);
  }
  currentSources = layered.sources;
  return layered.values as Values;
}

export function loggerFromFlags(command: string, values: { 'log-level'?: string; 'log-format'?: string }): Logger {
  const level = values['log-level'] ?? 'info';
  const format = values['log-format'] ?? 'text';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`, command);
  if (format !== 'text' && format !== 'json') throw usageError(`--log-format must be text or json, got "${format}"`, command);
  return createLogger({ level: level as LogLevel, format: format as LogFormat });
}

export function requireString(command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === '') {
    throw usageError(`--${name} is required (or ${envName(name)}, or "${name} = ..." in /etc/snakebite/${command}.conf)`, command);
  }
  return value;
}

const INTERFACE_NAME = /^[A-Za-z0-9_.=+-]{1,15}$/;

export function parseInterfaceName(command: string, value: string | undefined): string {
  const name = requireString(command, 'interface', value);
  if (!INTERFACE_NAME.test(name) || name === '.' || name === '..') {
    throw usageError(`--interface "${name}" is not a valid interface name (1 to 15 letters, digits, _ . = + -)`, command);
  }
  return name;
}

/** `10.10.10.1`, `10.10.10.1:51821`, `fd00::1` or `[fd00::1]:51821`. */
export function parseAddressAndPort(command: string, flag: string, text: string, defaultPort: number): { address: IpAddress; port: number } {
  let host = text;
  let port = defaultPort;
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const portText = text.slice(text.indexOf(':') + 1);
    // Number() alone would take "0x50", "1e3" or " 80" as ports.
    [host, port] = [text.slice(0, text.indexOf(':')), /^[0-9]+$/.test(portText) ? Number(portText) : NaN];
  }
  const address = parseIp(host);
  if (!address || address.zone !== undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError(`--${flag} expects IP or IP:PORT (e.g. 10.10.10.1 or 10.10.10.1:${defaultPort}), got "${text}"`, command);
  }
  return { address, port };
}

/** `30`, `30s`, `500ms`, `2m`: a duration, returned in milliseconds; bare numbers are seconds. */
export function parseDuration(command: string, flag: string, text: string, min: number, max: number): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(text);
  const unit = match?.[2] ?? 's';
  const ms = match ? Number(match[1]) * (unit === 'ms' ? 1 : unit === 'm' ? 60_000 : 1000) : NaN;
  if (!Number.isFinite(ms) || ms < min || ms > max) {
    throw usageError(`--${flag} expects a duration from ${min / 1000}s to ${max / 1000}s (e.g. 30s, 500ms, 2m), got "${text}"`, command);
  }
  return Math.round(ms);
}

export function parseInteger(command: string, flag: string, text: string, min: number, max: number): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`--${flag} expects a whole number from ${min} to ${max}, got "${text}"`, command);
  }
  return value;
}

/** Aborts on the first SIGINT or SIGTERM; a second one exits at once. */
export function shutdownSignal(logger: Logger): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    logger.info('shutdown', { signal });
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}
