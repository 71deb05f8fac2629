/**
 * Structured logs to stderr: a fixed event name plus fields. The field names
 * are listed in docs/logging.md; keep that list true when adding one.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Readonly<Record<string, LogValue>>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** Fields holding WireGuard public keys: shortened to 8 characters in text output. */
const KEY_FIELDS = new Set(['peer', 'fang', 'you']);

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly write?: (line: string) => void;
  readonly clock?: () => Date;
}

function formatTextValue(key: string, value: Exclude<LogValue, undefined>): string {
  let text = String(value);
  if (KEY_FIELDS.has(key) && typeof value === 'string' && value.length === 44) text = value.slice(0, 8);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const clock = options.clock ?? (() => new Date());
  const emit = (level: LogLevel, event: string, fields: LogFields = {}) => {
    if (RANK[level] < RANK[options.level]) return;
    const all = { ...bound, ...fields };
    const time = clock().toISOString();
    if (options.format === 'json') {
      const record: Record<string, LogValue> = { time, level, event };
      for (const [key, value] of Object.entries(all)) if (value !== undefined) record[key] = value;
      write(`${JSON.stringify(record)}\n`);
      return;
    }
    const parts = [time, level.padEnd(5), event];
    for (const [key, value] of Object.entries(all)) {
      if (value !== undefined) parts.push(`${key}=${formatTextValue(key, value)}`);
    }
    write(`${parts.join(' ')}\n`);
  };
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/** Discards everything; for tests and library callers that do not want logs. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
