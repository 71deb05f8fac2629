import { generateKeyPairSync } from 'node:crypto';

export interface KeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** A WireGuard (X25519) key pair in wg's base64, made without spawning `wg genkey`. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const toBase64 = (jwkValue: string | undefined) => Buffer.from(jwkValue!, 'base64url').toString('base64');
  return {
    privateKey: toBase64(privateKey.export({ format: 'jwk' }).d),
    publicKey: toBase64(publicKey.export({ format: 'jwk' }).x),
  };
}
