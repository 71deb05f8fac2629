import type { PunchRequest } from '../peer-list/peer-list';
import type { WireGuardKey } from '../wireguard/key';

/** How long the fang passes a punch request on, in seconds (the client re-asks after half of it). */
export const PUNCH_REQUEST_TTL_SECONDS = 30;
/** Punch requests kept per reporting peer; a client asks only for peers that fell silent, so few. */
export const MAX_PUNCH_REQUESTS = 32;

/** A request as the fang keeps it: `at` is the fang's own clock when it first got it. */
interface Held {
  readonly at: number;
  /** The `at` the client sent, to tell a repeated request from a new one. */
  readonly clientAt: number;
}

/**
 * The punch requests of each reporting peer, deduplicated (one per asked
 * peer), capped, limited to the fang's own peers and dated by the fang's
 * clock, so a hostile report of 3,200 requests naming one peer is one
 * request, and a client's wrong clock cannot keep a request alive.
 */
export class PunchRequestBook {
  private readonly byReporter = new Map<WireGuardKey, Map<WireGuardKey, Held>>();

  /** Takes `reporter`'s latest requests and returns them as the fang will pass them on. */
  take(reporter: WireGuardKey, incoming: readonly PunchRequest[], isPeer: (key: WireGuardKey) => boolean, nowSeconds: number): PunchRequest[] {
    const before = this.byReporter.get(reporter);
    const next = new Map<WireGuardKey, Held>();
    // Newest first, so the cap keeps the latest requests and a duplicate keeps its newest `at`.
    const sorted = [...incoming].sort((a, b) => b.at - a.at);
    for (const request of sorted) {
      if (next.size >= MAX_PUNCH_REQUESTS) break;
      if (request.publicKey === reporter || next.has(request.publicKey) || !isPeer(request.publicKey)) continue;
      const held = before?.get(request.publicKey);
      next.set(request.publicKey, held && held.clientAt === request.at ? held : { at: nowSeconds, clientAt: request.at });
    }
    if (next.size > 0) this.byReporter.set(reporter, next);
    else this.byReporter.delete(reporter);
    return this.current(reporter, nowSeconds);
  }

  /** `reporter`'s requests younger than the TTL. */
  current(reporter: WireGuardKey, nowSeconds: number): PunchRequest[] {
    const held = this.byReporter.get(reporter);
    if (!held) return [];
    return [...held].filter(([, h]) => nowSeconds - h.at <= PUNCH_REQUEST_TTL_SECONDS).map(([publicKey, h]) => ({ publicKey, at: h.at }));
  }

  forget(reporter: WireGuardKey): void {
    this.byReporter.delete(reporter);
  }
}

/**
 * What of a peer's punch requests `asker` is shown: only a live request
 * naming the asker itself. Nobody else needs to know who asked whom, and an
 * entry can then carry at most one request however many were made.
 */
export function punchRequestsFor(requests: readonly PunchRequest[] | undefined, asker: WireGuardKey, nowSeconds: number): PunchRequest[] {
  return (requests ?? []).filter((r) => r.publicKey === asker && nowSeconds - r.at <= PUNCH_REQUEST_TTL_SECONDS).slice(0, 1);
}
