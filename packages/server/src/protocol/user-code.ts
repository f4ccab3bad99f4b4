import { createHmac, randomBytes } from 'node:crypto';

/**
 * Device-flow user codes (RFC 8628 §6.1): eight characters from a base-20 alphabet without
 * vowels (no words spelled by accident) or look-alikes, shown as `XXXX-XXXX`: 20^8 ≈ 2^34.6.
 *
 * RFC 8628 §6.1: "The user code SHOULD have enough entropy that when combined with rate-limiting
 * and other mitigations makes a brute-force attack infeasible." The mitigations here: typed codes
 * are throttled per browser session and per address, and each code is split into a selector (the
 * first four characters, which find the pending authorization) and a verifier (the last four): a
 * code whose selector is typed with a wrong verifier a few times is locked, so guessing at one
 * pending authorization ends after a handful of tries.
 */
export const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
export const USER_CODE_LENGTH = 8;
const HALF = USER_CODE_LENGTH / 2;
/** The largest multiple of 20 that fits a byte: bytes at or above it are drawn again (no modulo bias). */
const UNBIASED_LIMIT = 256 - (256 % USER_CODE_ALPHABET.length);

/** A new user code, normalized (eight letters, no dash), from crypto.randomBytes without bias. */
export function generateUserCode(): string {
  let out = '';
  while (out.length < USER_CODE_LENGTH) {
    for (const byte of randomBytes(16)) {
      if (byte >= UNBIASED_LIMIT) continue;
      out += USER_CODE_ALPHABET[byte % USER_CODE_ALPHABET.length];
      if (out.length === USER_CODE_LENGTH) break;
    }
  }
  return out;
}

/** As shown to people: `BCDF-GHJK`. */
export function formatUserCode(normalized: string): string {
  return `${normalized.slice(0, HALF)}-${normalized.slice(HALF)}`;
}

/**
 * What a person typed, normalized: case, spaces and dashes are ignored. Undefined when it cannot
 * be a user code (wrong length, a character outside the alphabet).
 */
export function normalizeUserCode(typed: string): string | undefined {
  if (typed.length > 64) return undefined;
  const compact = typed.replace(/[\s\-‐‑‒–—]/g, '').toUpperCase();
  if (compact.length !== USER_CODE_LENGTH) return undefined;
  for (const c of compact) if (!USER_CODE_ALPHABET.includes(c)) return undefined;
  return compact;
}

/** The HKDF `info` of the user-code key (`kek.deriveKey`); changing it invalidates pending codes. */
export const USER_CODE_KEY_INFO = 'gatehouse device user codes v1';

/** The stored forms of a user code: keyed digests, so a copy of the database does not reveal live codes. */
export interface UserCodeDigests {
  /** Finds the pending authorization: HMAC of the first half. */
  selector: string;
  /** Proves the whole code: HMAC of all of it. */
  code: string;
}

/**
 * Keyed digests (HMAC-SHA256 with a sub-key of the server secret): a user code has only ~35 bits,
 * so a plain hash of it could be reversed by trying them all.
 */
export function userCodeDigests(key: Buffer, normalized: string): UserCodeDigests {
  const mac = (label: string, value: string) => createHmac('sha256', key).update(`${label}:${value}`, 'utf8').digest('base64url');
  return { selector: mac('selector', normalized.slice(0, HALF)), code: mac('code', normalized) };
}
