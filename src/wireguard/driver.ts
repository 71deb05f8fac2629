import type { DeviceState, PeerChange } from './device-state';

/**
 * The only seam between Snakebite and a WireGuard implementation. It exists so
 * that the client and server can run against a fake device in tests, and so a
 * UAPI-socket driver can replace the `wg` command without touching callers.
 */
export interface WireGuardDriver {
  readonly interfaceName: string;
  /** Reads the interface in one operation. */
  readDevice(): Promise<DeviceState>;
  /** Applies every change in one operation; does nothing for an empty list. */
  applyPeerChanges(changes: readonly PeerChange[]): Promise<void>;
}
