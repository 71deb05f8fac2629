/** First retry of the direct path after a peer was relayed, in seconds; it doubles up to the cap. */
export const REPUNCH_FIRST_SECONDS = 5;
export const REPUNCH_MAX_SECONDS = 120;

/**
 * Whether a relayed peer is due for another direct punch: 5 s after it was
 * relayed, then 10, 20, 40... up to every 120 s. `punches` counts the punches
 * since it was relayed; `lastPunch` is when the latest was (or the relay began).
 */
export function repunchDue(punches: number, lastPunch: number, nowSeconds: number): boolean {
  const wait = Math.min(REPUNCH_MAX_SECONDS, REPUNCH_FIRST_SECONDS * 2 ** Math.min(punches, 10));
  return nowSeconds - lastPunch >= wait;
}
