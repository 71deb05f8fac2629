import type { DeviceState } from '../wireguard/device-state';
import type { WireGuardDriver } from '../wireguard/driver';

/**
 * One read of the interface shared by every request that arrives while it is
 * running or fresh, so a burst of N requests costs one `wg show`, not N.
 */
export class SharedDeviceView {
  private cached: { state: DeviceState; at: number } | undefined;
  private inFlight: Promise<DeviceState> | undefined;
  /** How many reads reached the driver; for tests and metrics. */
  reads = 0;

  constructor(
    private readonly driver: WireGuardDriver,
    /** How long a read is served to later requests, in milliseconds. */
    private readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The interface as read at most `maxAgeMs` ago (or by a read still running). */
  read(maxAgeMs = this.maxAgeMs): Promise<DeviceState> {
    if (this.cached && this.clock() - this.cached.at < maxAgeMs) return Promise.resolve(this.cached.state);
    if (this.inFlight) return this.inFlight;
    this.reads++;
    const started = this.clock();
    this.inFlight = this.driver
      .readDevice()
      .then((state) => {
        this.cached = { state, at: started };
        return state;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
