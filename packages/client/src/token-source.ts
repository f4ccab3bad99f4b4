/**
 * Service tokens: the client credentials grant (RFC 6749 §4.4) behind a small cache. One token
 * request is in flight at a time however many callers wait (single flight); the token is renewed
 * before it expires, at a jittered moment so a fleet of instances does not renew in step; failed
 * requests are retried with backoff when they may succeed later, never when the server refused
 * the client (`invalid_client`, `invalid_scope`, `unauthorized_client`, …).
 */
import * as oauth from 'oauth4webapi';
import { createAuthenticatedFetch, type AccessTokenProvider } from './authenticated-fetch.js';
import { addScopeAndResource, clientAuthentication, type ClientAuthOptions } from './client-auth.js';
import { GatehouseClientError } from './errors.js';
import { clampDelay, IssuerConnection, MAX_TIMER_DELAY, raceAbort, sleep as realSleep, throwOnServerFailure, toClientError, type ConnectionOptions, type FetchLike } from './http.js';
import { decodeJwtClaims } from './jwt.js';
import { withRetry, type RetryOptions } from './retry.js';

/**
 * Options of {@link createTokenSource}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 */
export interface TokenSourceOptions extends ConnectionOptions, ClientAuthOptions {
  /** The client's `client_id`. */
  clientId: string;
  /** Scopes to request (a space-separated string or a list); the server's default when absent. */
  scope?: string | readonly string[] | undefined;
  /** RFC 8707 resource indicator(s): the API the token is for (its `aud`). */
  resource?: string | readonly string[] | undefined;
  /**
   * Seconds before expiry at which a cached token is renewed. Default: 10 % of the token's
   * lifetime, at least 30 s, at most half the lifetime; a random jitter of up to 5 % of the
   * lifetime (at most 30 s) is added so instances spread their renewals.
   */
  refreshBefore?: number | undefined;
  /**
   * Renew in the background when the renewal moment comes, so callers never wait for a token
   * request once the first token is there (default false: renewal happens in the first
   * `getToken()` call after that moment). The timer does not keep the process alive.
   */
  backgroundRefresh?: boolean | undefined;
  /** Retries of failed token requests (network errors, timeouts, 5xx, 429). */
  retry?: RetryOptions | undefined;
  /** Lifetime assumed when the server sends neither `expires_in` nor a JWT `exp`, seconds (default 300). */
  defaultLifetime?: number | undefined;
  /** Extra token request parameters (e.g. `audience` for servers that use that instead of `resource`). */
  additionalParameters?: Record<string, string> | undefined;
  /** The clock, milliseconds since the epoch (default `Date.now`); for tests. */
  now?: (() => number) | undefined;
  /** How to wait between retries (default: a timer); for tests. */
  sleep?: ((ms: number, signal?: AbortSignal) => Promise<void>) | undefined;
  /** Randomness for jitter, in [0, 1) (default `Math.random`); for tests. */
  random?: (() => number) | undefined;
}

/** A cached access token and when this source will renew it. */
export interface CachedAccessToken {
  access_token: string;
  /** Lowercased token type (`bearer`). */
  token_type: string;
  /** The granted scope, when the server said. */
  scope: string | undefined;
  /** Milliseconds since the epoch when the token expires (by `expires_in`, else its `exp`). */
  expiresAt: number;
  /** Milliseconds since the epoch from which `getToken()` renews it. */
  renewAt: number;
}

/**
 * A source of service access tokens: `getToken()` for the value, `fetch` to call an API with it.
 */
export interface TokenSource extends AccessTokenProvider {
  /**
   * A valid access token: the cached one, or a new one when there is none or it is due for
   * renewal. Concurrent callers share one token request. If a renewal fails while the cached
   * token is still valid for more than 5 s, that token is returned (the next call tries again).
   */
  getToken(options?: { signal?: AbortSignal | undefined }): Promise<string>;
  /** The cached token with its expiry, without any request (undefined when there is none). */
  peek(): CachedAccessToken | undefined;
  /**
   * `fetch` with `Authorization: Bearer <token>`; on a 401 whose `WWW-Authenticate` says
   * `invalid_token`, the token is dropped and the request sent once more with a new one (when its
   * body can be sent again). See {@link createAuthenticatedFetch}.
   */
  fetch: FetchLike;
  /** Drops the cached token (only if it is `token`, when given), so the next call gets a new one. */
  invalidate(token?: string): void;
  /** Stops background renewal and aborts a request in flight; later calls fail with `aborted`. */
  close(): void;
}

/** Tokens this close to expiry are not handed out as a fallback, milliseconds. */
const FALLBACK_MARGIN = 5_000;
/** The longest lifetime believed, milliseconds (a year): a larger `expires_in` is taken as this. */
const MAX_LIFETIME = 365 * 24 * 3600 * 1000;

/**
 * When a token of `lifetime` ms obtained at `now` should be renewed: `refreshBefore` (or 10 % of
 * the lifetime, at least 30 s, at most half of it) before expiry, minus a jitter of up to 5 % of
 * the lifetime (at most 30 s).
 */
export function renewalTime(now: number, lifetime: number, refreshBefore: number | undefined, random: () => number): number {
  const before = refreshBefore !== undefined ? refreshBefore * 1000 : Math.min(lifetime / 2, Math.max(lifetime * 0.1, 30_000));
  const jitter = random() * Math.min(lifetime * 0.05, 30_000);
  return now + Math.max(0, lifetime - before - jitter);
}

/**
 * Creates a token source for a confidential client (client secret or `private_key_jwt`) using
 * the client credentials grant. Nothing is requested until the first `getToken()`; the issuer's
 * metadata is discovered once.
 *
 * @example
 * ```ts
 * const tokens = createTokenSource({ issuer: 'https://id.example.com', clientId, clientSecret, scope: 'orders:read', resource: 'https://orders.example.com' });
 * const response = await tokens.fetch('https://orders.example.com/orders');
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 * @see https://www.rfc-editor.org/rfc/rfc8707
 */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  const connection = new IssuerConnection(options);
  const client: oauth.Client = { client_id: options.clientId };
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const wait = options.sleep ?? realSleep;
  const controller = new AbortController();
  let cached: CachedAccessToken | undefined;
  let inflight: Promise<CachedAccessToken> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function requestToken(signal: AbortSignal): Promise<CachedAccessToken> {
    try {
      const as = await connection.metadata(signal);
      const params = addScopeAndResource(new URLSearchParams(options.additionalParameters), options);
      const response = await oauth.clientCredentialsGrantRequest(as, client, clientAuthentication(as, options), params, connection.requestOptions(signal));
      await throwOnServerFailure(response);
      const result = await oauth.processClientCredentialsResponse(as, client, response);
      const issuedAt = now();
      const exp = decodeJwtClaims(result.access_token)?.exp;
      const lifetime = Math.min(
        MAX_LIFETIME,
        result.expires_in !== undefined ? result.expires_in * 1000 : typeof exp === 'number' ? exp * 1000 - issuedAt : (options.defaultLifetime ?? 300) * 1000,
      );
      return {
        access_token: result.access_token,
        token_type: result.token_type,
        scope: result.scope,
        expiresAt: issuedAt + lifetime,
        renewAt: renewalTime(issuedAt, lifetime, options.refreshBefore, random),
      };
    } catch (err) {
      throw await toClientError(err, 'client credentials token request');
    }
  }

  function schedule(token: CachedAccessToken): void {
    if (options.backgroundRefresh !== true || controller.signal.aborted) return;
    clearTimeout(timer);
    const delay = token.renewAt - now();
    // setTimeout fires a delay over 2³¹−1 ms (24.8 days) after 1 ms: a long wait is re-armed in steps.
    timer = setTimeout(() => {
      if (delay > MAX_TIMER_DELAY) return schedule(token);
      renew().catch(() => undefined); // the next getToken() retries and reports
    }, clampDelay(delay));
    timer.unref();
  }

  /** The single flight: every caller during a request shares its promise. */
  function renew(): Promise<CachedAccessToken> {
    if (inflight === undefined) {
      const signal = controller.signal;
      const flight = withRetry(() => requestToken(signal), options.retry ?? {}, { sleep: wait, random, signal })
        .then((token) => {
          if (!signal.aborted) {
            cached = token;
            schedule(token);
          }
          return token;
        })
        .finally(() => {
          if (inflight === flight) inflight = undefined;
        });
      inflight = flight;
    }
    return inflight;
  }

  function closedError(): GatehouseClientError {
    return new GatehouseClientError('aborted', 'the token source is closed');
  }

  const source: TokenSource = {
    async getToken(callOptions = {}) {
      if (controller.signal.aborted) throw closedError();
      const current = cached;
      if (current !== undefined && now() < current.renewAt) return current.access_token;
      const flight = renew();
      try {
        const token = await raceAbort(flight, callOptions.signal);
        return token.access_token;
      } catch (err) {
        if (controller.signal.aborted) throw closedError();
        // Renewal failed but the token we had is still good: use it, try again next time.
        if (current !== undefined && cached === current && now() < current.expiresAt - FALLBACK_MARGIN && !callOptions.signal?.aborted) return current.access_token;
        throw err;
      }
    },
    peek: () => (cached === undefined ? undefined : { ...cached }),
    fetch: (input, init) => authenticated(input, init),
    invalidate(token) {
      if (token === undefined || cached?.access_token === token) cached = undefined;
    },
    close() {
      clearTimeout(timer);
      cached = undefined;
      controller.abort();
    },
  };
  const authenticated = createAuthenticatedFetch(source, { fetch: connection.fetch });
  return source;
}
