import type { LogFields, Logger, LogLevel } from '../log/logger';

/**
 * A log line that an attacker can cause (a refused connection, a refused
 * request) is written at most once per `intervalMs` per event; the lines
 * held back are counted, and the next line of that event (or a summary when
 * the interval ends) carries the count as `dropped`. So 3,000 refusals in a
 * second make two lines, not 3,000.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { until: number; dropped: number; level: LogLevel; fields: LogFields; timer: NodeJS.Timeout | undefined }>();

  constructor(
    private readonly logger: Logger,
    /** At most one line per event in this many milliseconds. */
    private readonly intervalMs = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  warn(event: string, fields: LogFields): void {
    this.write('warn', event, fields);
  }

  info(event: string, fields: LogFields): void {
    this.write('info', event, fields);
  }

  /** How many lines of `event` are held back in the current interval; for tests. */
  dropped(event: string): number {
    return this.windows.get(event)?.dropped ?? 0;
  }

  private write(level: LogLevel, event: string, fields: LogFields): void {
    const now = this.clock();
    const window = this.windows.get(event);
    if (window && now < window.until) {
      window.dropped++;
      window.level = level;
      window.fields = fields;
      window.timer ??= setTimeout(() => this.summarize(event), window.until - now).unref();
      return;
    }
    const dropped = window?.dropped ?? 0;
    if (window?.timer) clearTimeout(window.timer);
    this.windows.set(event, { until: now + this.intervalMs, dropped: 0, level, fields, timer: undefined });
    this.logger[level](event, dropped > 0 ? { ...fields, dropped } : fields);
  }

  /** The interval ended with lines held back: say how many, with the last one's fields. */
  private summarize(event: string): void {
    const window = this.windows.get(event);
    if (!window || window.dropped === 0) return;
    this.windows.delete(event);
    this.logger[window.level](event, { ...window.fields, dropped: window.dropped });
  }

  close(): void {
    for (const window of this.windows.values()) if (window.timer) clearTimeout(window.timer);
    this.windows.clear();
  }
}
