/**
 * Calling an API with a bearer token (RFC 6750 §2.1), and recovering once when the API says the
 * token is no longer good (RFC 6750 §3.1 `invalid_token`): the token is dropped, a new one
 * obtained, and the request sent again.
 */
import type { FetchLike } from './http.js';

/**
 * Anything that hands out access tokens and can be told one was rejected: a
 * {@link TokenSource}, a stored CLI {@link Session}, or your own.
 */
export interface AccessTokenProvider {
  /** A currently valid access token. */
  getToken(options?: { signal?: AbortSignal | undefined }): Promise<string>;
  /** Forget `token` (the API rejected it); the next `getToken()` must not return it. */
  invalidate(token?: string): void;
}

/** Options of {@link createAuthenticatedFetch}. */
export interface AuthenticatedFetchOptions {
  /** The `fetch` that sends the API requests (default: the global one). */
  fetch?: FetchLike | undefined;
}

/**
 * Whether a 401 response's `WWW-Authenticate` carries a Bearer challenge with
 * `error="invalid_token"` (RFC 6750 §3).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function isInvalidTokenChallenge(response: Response): boolean {
  if (response.status !== 401) return false;
  const header = response.headers.get('www-authenticate');
  if (header === null) return false;
  // A Bearer challenge and an invalid_token error (this library sends only Bearer tokens).
  return /(?:^|,)\s*bearer(?:\s|,|$)/i.test(header) && /(?:^|[\s,])error\s*=\s*(?:"invalid_token"|invalid_token\b)/i.test(header);
}

/**
 * Whether a request can be sent a second time: no body, or a body held in memory (string,
 * `URLSearchParams`, `ArrayBuffer`, a typed array, `Blob`, `FormData`). A stream is consumed by
 * the first attempt, and so is the body of a `Request` object.
 */
export function isReplayable(input: string | URL | Request, init?: RequestInit): boolean {
  if (input instanceof Request && input.body !== null && init?.body === undefined) return false;
  const body = init?.body;
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob ||
    body instanceof FormData
  );
}

/**
 * A `fetch` that sends `Authorization: Bearer <token>` from `provider`. When the answer is a 401
 * with `error="invalid_token"`, the token is invalidated and the request is sent exactly once
 * more with a fresh token — only when its body can be replayed (see {@link isReplayable});
 * otherwise, or if the second answer is a 401 too, the 401 response is returned as it is. Any
 * other answer (403 `insufficient_scope` included) is returned untouched.
 *
 * @example
 * ```ts
 * const api = createAuthenticatedFetch(tokenSource);
 * const response = await api('https://orders.example.com/orders', { method: 'POST', body: JSON.stringify(order) });
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function createAuthenticatedFetch(provider: AccessTokenProvider, options: AuthenticatedFetchOptions = {}): FetchLike {
  const send = options.fetch ?? ((input, init) => fetch(input, init));
  const attempt = async (input: string | URL | Request, init: RequestInit | undefined, signal: AbortSignal | undefined) => {
    const token = await provider.getToken({ signal });
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', `Bearer ${token}`);
    return { token, response: await send(input, { ...init, headers }) };
  };
  return async (input, init) => {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined) ?? undefined;
    const first = await attempt(input, init, signal);
    if (!isInvalidTokenChallenge(first.response) || !isReplayable(input, init)) return first.response;
    provider.invalidate(first.token);
    await first.response.body?.cancel().catch(() => undefined);
    return (await attempt(input, init, signal)).response;
  };
}
