/** A WireGuard key in base64, as `wg` prints it: 32 bytes, 44 characters ending in `=`. */
export type WireGuardKey = string;

// 32 bytes encode to 43 significant characters; the last one carries 4 data bits
// and 2 zero bits, so only 16 letters are possible there.
const KEY_PATTERN = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWireGuardKey(text: unknown): text is WireGuardKey {
  return typeof text === 'string' && KEY_PATTERN.test(text);
}

/** The first 8 characters, enough to tell peers apart in human output. */
export function shortKey(key: WireGuardKey): string {
  return key.slice(0, 8);
}
