import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Cookies } from './cookies.js';

/**
 * Stateless CSRF protection that works across instances: a random 256-bit nonce lives in an
 * HttpOnly cookie; a form carries HMAC-SHA256(csrfKey, nonce ":" purpose), base64url, which is
 * recomputed and compared in constant time on POST. Nothing is stored server-side, and every
 * instance derives the same csrfKey from the key-encryption key (HKDF, `KeyEncryptionKey.deriveKey`).
 *
 * The purpose binds a token to one form (e.g. `login:<interaction id>`, `consent:<interaction
 * id>`, `revoke:<grant id>`), so a token leaked from one form is useless on another. The nonce has
 * a fixed length and no `:`, so `nonce ":" purpose` is unambiguous.
 */

/** The hidden form field every page template uses for the token. */
export const CSRF_FIELD = 'csrf_token';

/** Base name of the nonce cookie (see `Cookies.cookieName` for the full name). */
export const CSRF_COOKIE = 'csrf';

/** The HKDF `info` of the CSRF key; changing it invalidates every open form. */
export const CSRF_KEY_INFO = 'gatehouse csrf v1';

/** 32 bytes, base64url without padding. */
const NONCE = /^[A-Za-z0-9_-]{43}$/;
const TOKEN_LENGTH = 43;

export interface Csrf {
  /**
   * The token for a form with this purpose. Sets the nonce cookie when the request has none (or a
   * malformed one); several calls while handling one request share the nonce.
   */
  csrfTokenFor(request: FastifyRequest, reply: FastifyReply, purpose: string): string;
  /** True only when the request's nonce cookie and the submitted token match for this purpose. */
  verifyCsrf(request: FastifyRequest, purpose: string, token: string | undefined): boolean;
}

export interface CsrfOptions {
  /** The CSRF sub-key: `kek.deriveKey(CSRF_KEY_INFO)`, identical on every instance. */
  key: Buffer;
  cookies: Cookies;
}

export function createCsrf(options: CsrfOptions): Csrf {
  if (options.key.length < 32) throw new Error('the CSRF key must hold at least 256 bits');
  const key = Buffer.from(options.key);
  const { cookies } = options;
  /** A nonce minted while handling a request, before the browser has it. */
  const minted = new WeakMap<FastifyRequest, string>();

  const mac = (nonce: string, purpose: string): Buffer => createHmac('sha256', key).update(`${nonce}:${purpose}`, 'utf8').digest();

  const requestNonce = (request: FastifyRequest): string | undefined => {
    const value = cookies.readCookie(request, CSRF_COOKIE);
    return value !== undefined && NONCE.test(value) ? value : undefined;
  };

  const checkPurpose = (purpose: string): void => {
    if (purpose.length === 0) throw new TypeError('a CSRF purpose must not be empty');
  };

  return {
    csrfTokenFor(request, reply, purpose) {
      checkPurpose(purpose);
      let nonce = minted.get(request) ?? requestNonce(request);
      if (nonce === undefined) {
        nonce = randomBytes(32).toString('base64url');
        minted.set(request, nonce);
        cookies.setCookie(reply, CSRF_COOKIE, nonce);
      }
      return mac(nonce, purpose).toString('base64url');
    },

    verifyCsrf(request, purpose, token) {
      checkPurpose(purpose);
      const nonce = requestNonce(request);
      if (nonce === undefined || typeof token !== 'string' || token.length !== TOKEN_LENGTH) return false;
      const presented = Buffer.from(token, 'utf8');
      // A non-base64url character makes the UTF-8 length differ or the comparison fail below.
      const expected = Buffer.from(mac(nonce, purpose).toString('base64url'), 'utf8');
      return presented.length === expected.length && timingSafeEqual(presented, expected);
    },
  };
}
