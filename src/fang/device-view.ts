import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardDriver } from '../wireguard/driver';

/** A read is served at least this many times as long as it took. */
export const SLOW_READ_FACTOR = 3;

/**
 * One read of the interface shared by every request that arrives while it is
 * running or fresh, so a burst of N requests costs one `wg show`, not N.
 */
export class SharedDeviceView {
  private cached: { state: DeviceState; at: number; tookMs: number } | undefined;
  private inFlight: Promise<DeviceState> | undefined;
  /** How many reads reached the driver; for tests and metrics. */
  reads = 0;

  constructor(
    private readonly driver: WireGuardDriver,
    /** How long a read is served to later requests, in milliseconds. */
    private readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * The interface as read at most `maxAgeMs` ago (or by a read still running).
   * A slow read is served longer: at least SLOW_READ_FACTOR times as long as
   * it took, so requests never keep the interface busy more than a quarter of the time
   * (a 50,000-peer dump takes about 60 ms to read and parse on a quiet 2-core machine).
   */
  read(maxAgeMs = this.maxAgeMs): Promise<DeviceState> {
    const servedFor = maxAgeMs > 0 ? Math.max(maxAgeMs, SLOW_READ_FACTOR * (this.cached?.tookMs ?? 0)) : 0;
    if (this.cached && this.clock() - this.cached.at < servedFor) return Promise.resolve(this.cached.state);
    if (this.inFlight) return this.inFlight;
    this.reads++;
    const started = this.clock();
    this.inFlight = this.driver
      .readDevice()
      .then((state) => {
        this.cached = { state, at: started, tookMs: this.clock() - started };
        return state;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
