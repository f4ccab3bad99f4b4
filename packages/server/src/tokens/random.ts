import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A 256-bit random value, base64url (43 characters): tokens, codes, secrets. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 digest, base64url: how every bearer secret is stored and looked up. */
export function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}

/** Constant-time comparison of two digests of equal, public length. */
export function digestsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
