import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';
import { createLogger, LOG_LEVELS, type Logger, type LogFormat, type LogLevel } from '../log/logger';

export function usageError(message: string, command: string): SnakebiteError {
  return new SnakebiteError('SB_USAGE', message, `see snakebite ${command} --help`);
}

export const LOGGING_OPTIONS = {
  'log-level': { type: 'string', default: 'info' },
  'log-format': { type: 'string', default: 'text' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

/** util.parseArgs, strict, with its errors turned into usage errors. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw usageError((error as Error).message, command);
  }
}

export function loggerFromFlags(command: string, values: { 'log-level'?: string; 'log-format'?: string }): Logger {
  const level = values['log-level'] ?? 'info';
  const format = values['log-format'] ?? 'text';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`, command);
  if (format !== 'text' && format !== 'json') throw usageError(`--log-format must be text or json, got "${format}"`, command);
  return createLogger({ level: level as LogLevel, format: format as LogFormat });
}

export function requireString(command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw usageError(`--${name} is required`, command);
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
