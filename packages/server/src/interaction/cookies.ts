import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLoopbackHost } from '../protocol/issuer.js';

/**
 * Browser cookies of the interaction pages (session, CSRF nonce, …), on top of @fastify/cookie.
 *
 * Every cookie is `HttpOnly; SameSite=Lax` with an explicit `Path`, and `Secure` unless the issuer
 * is plain http on a loopback host (decided once, from the issuer). Names carry a prefix the
 * browser enforces (RFC 6265bis §4.1.3): `__Host-` when Secure with `Path=/` (no Domain, so no
 * sibling subdomain can set or shadow it), `__Secure-` when Secure under an issuer path, else a
 * plain `gh_` (loopback development only).
 */

export interface CookieOptions {
  /** Lifetime in seconds; omitted: a session cookie. */
  maxAge?: number;
  /** Defaults to the issuer's path (`/` for an issuer without one). */
  path?: string;
}

export interface Cookies {
  /** Whether cookies carry `Secure` (false only for an http issuer on a loopback host). */
  readonly secure: boolean;
  /** The issuer's path, `/` when it has none: the default `Path` of every cookie. */
  readonly defaultPath: string;
  /** The full cookie name for a base name such as `csrf` at a path: the one naming rule. */
  cookieName(base: string, path?: string): string;
  setCookie(reply: FastifyReply, base: string, value: string, options?: CookieOptions): void;
  /** Expires the cookie (same name, path and attributes, so browsers accept the removal). */
  clearCookie(reply: FastifyReply, base: string, options?: Pick<CookieOptions, 'path'>): void;
  /** The value the browser sent, if any. */
  readCookie(request: FastifyRequest, base: string, options?: Pick<CookieOptions, 'path'>): string | undefined;
}

const BASE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,=:@%/]*$/;

/** Registers @fastify/cookie (no signing secret: values that need integrity carry their own MAC). */
export async function registerCookies(app: FastifyInstance): Promise<void> {
  await app.register(fastifyCookie, { hook: 'onRequest' });
}

export function createCookies(issuer: string): Cookies {
  const url = new URL(issuer);
  const secure = !(url.protocol === 'http:' && isLoopbackHost(url.hostname));
  const defaultPath = url.pathname.replace(/\/+$/, '') || '/';

  const resolvePath = (path: string | undefined): string => {
    const p = path ?? defaultPath;
    if (!PATH.test(p)) throw new TypeError(`cookie path ${JSON.stringify(p)} is not an absolute URL path`);
    return p;
  };

  const cookieName = (base: string, path?: string): string => {
    if (!BASE_NAME.test(base)) throw new TypeError(`cookie base name ${JSON.stringify(base)} must match ${BASE_NAME.source}`);
    if (!secure) return `gh_${base}`;
    return resolvePath(path) === '/' ? `__Host-gh_${base}` : `__Secure-gh_${base}`;
  };

  const attributes = (path: string) => ({ path, httpOnly: true, secure, sameSite: 'lax' as const });

  return {
    secure,
    defaultPath,
    cookieName,
    setCookie(reply, base, value, options = {}) {
      const path = resolvePath(options.path);
      const maxAge = options.maxAge;
      if (maxAge !== undefined && (!Number.isInteger(maxAge) || maxAge < 0)) throw new TypeError('cookie maxAge must be a whole number of seconds');
      reply.setCookie(cookieName(base, path), value, { ...attributes(path), ...(maxAge === undefined ? {} : { maxAge }) });
    },
    clearCookie(reply, base, options = {}) {
      const path = resolvePath(options.path);
      reply.clearCookie(cookieName(base, path), attributes(path));
    },
    readCookie(request, base, options = {}) {
      const value = request.cookies[cookieName(base, options.path)];
      return value === undefined || value === '' ? undefined : value;
    },
  };
}
