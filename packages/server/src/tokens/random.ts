import { hash, randomFillSync, timingSafeEqual } from 'node:crypto';

/**
 * Random bytes for tokens, drawn from the CSPRNG 128 tokens at a time: one `randomFillSync` per
 * 4 KiB instead of one `randomBytes` call (a native job and a buffer) per token. Each token's
 * bytes are wiped from the pool as they are taken, so no past token stays in memory here.
 */
const TOKEN_BYTES = 32;
const pool = Buffer.alloc(TOKEN_BYTES * 128);
let offset = pool.length;

/** A 256-bit random value, base64url (43 characters): tokens, codes, secrets. */
export function randomToken(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('base64url', offset, offset + TOKEN_BYTES);
  pool.fill(0, offset, offset + TOKEN_BYTES);
  offset += TOKEN_BYTES;
  return token;
}

/** SHA-256 digest, base64url: how every bearer secret is stored and looked up. */
export function sha256(value: string): string {
  return hash('sha256', value, 'base64url');
}

/** Constant-time comparison of two digests of equal, public length. */
export function digestsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
