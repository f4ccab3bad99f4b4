/**
 * The transport under every flow: which `fetch` to call, per-request timeouts, when plain `http:`
 * is allowed, and how oauth4webapi's errors and the server's failures become
 * {@link GatehouseClientError}s.
 */
import * as oauth from 'oauth4webapi';
import { GatehouseClientError, OAuthResponseError } from './errors.js';

/**
 * A `fetch`-compatible function: the global `fetch` by default; pass your own to add a proxy
 * agent, logging or instrumentation. It receives requests to the issuer (discovery, token,
 * revocation, userinfo endpoints) and, for {@link createAuthenticatedFetch}, the API calls.
 */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** How every flow reaches the authorization server. */
export interface ConnectionOptions {
  /**
   * The issuer identifier (e.g. `https://id.example.com`). Its metadata is discovered from
   * `/.well-known/openid-configuration` (OpenID Connect Discovery), falling back to
   * `/.well-known/oauth-authorization-server` (RFC 8414), and its `issuer` must match exactly.
   */
  issuer: string | URL;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike | undefined;
  /** Milliseconds before one HTTP request is abandoned (default 30 000). */
  requestTimeout?: number | undefined;
  /**
   * Allows `http:` to a non-loopback issuer. Never in production: tokens and secrets would cross
   * the network in clear. `http:` to a loopback issuer (`127.0.0.1`, `[::1]`, `localhost`) is
   * always allowed, for local development and tests.
   */
  dangerouslyAllowInsecureHttp?: boolean | undefined;
  /**
   * The issuer's metadata, when already known (from {@link discover}, or written by hand for a
   * server without a discovery document): no discovery request is made. Its `issuer` must equal
   * the configured issuer.
   */
  metadata?: oauth.AuthorizationServer | undefined;
}

/** Default per-request timeout, milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT = 30_000;

/** Whether a URL's host is a loopback address or `localhost`. */
export function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/**
 * The longest delay `setTimeout` honours, milliseconds (2³¹−1, about 24.8 days). Node fires a
 * longer timer after 1 ms (with a `TimeoutOverflowWarning`), so every delay this library computes
 * from the server's numbers goes through {@link clampDelay} or is re-armed in steps.
 */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** `ms` as a delay `setTimeout` honours: NaN and negatives become 0, huge values {@link MAX_TIMER_DELAY}. */
export function clampDelay(ms: number): number {
  if (Number.isNaN(ms) || ms <= 0) return 0;
  return Math.min(ms, MAX_TIMER_DELAY);
}

/**
 * Waits `ms` milliseconds, or rejects with an `aborted` error when `signal` fires. A delay longer
 * than {@link MAX_TIMER_DELAY} is waited in steps (a single timer would fire at once).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const end = Date.now() + (Number.isNaN(ms) ? 0 : ms);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      const left = end - Date.now();
      if (left <= 0) {
        signal?.removeEventListener('abort', onAbort);
        return resolve();
      }
      timer = setTimeout(arm, clampDelay(left));
    };
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(arm, clampDelay(ms));
  });
}

/**
 * `promise`, or an `aborted` error as soon as `signal` fires — the promise itself goes on (a
 * shared request is never cancelled by one impatient caller).
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The error for a fired signal: its reason when that is already one of ours (a lock's `timeout`), else `aborted`. */
export function abortError(signal?: AbortSignal): GatehouseClientError {
  if (signal?.reason instanceof GatehouseClientError) return signal.reason;
  return new GatehouseClientError('aborted', 'the operation was aborted', { cause: signal?.reason });
}

/** What every oauth4webapi request gets: a timeout signal, our fetch, and whether http is allowed. */
export interface RequestOptions {
  signal: () => AbortSignal;
  [oauth.customFetch]: (url: string, init: oauth.CustomFetchOptions<string, unknown>) => Promise<Response>;
  [oauth.allowInsecureRequests]?: boolean;
}

/** https, or http to a loopback host (or anywhere, when insecure http was allowed explicitly). */
export function usesHttps(url: URL, allowInsecureHttp: boolean): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && (isLoopbackUrl(url) || allowInsecureHttp));
}

/**
 * One issuer: its URL, its (cached, single-flight) metadata and the options every oauth4webapi
 * call gets (custom fetch, timeouts, whether `http:` is allowed).
 */
export class IssuerConnection {
  readonly issuer: URL;
  readonly fetch: FetchLike;
  readonly requestTimeout: number;
  readonly #insecure: boolean;
  #metadata: Promise<oauth.AuthorizationServer> | undefined;

  constructor(options: ConnectionOptions) {
    let issuer: URL;
    try {
      issuer = new URL(options.issuer);
    } catch (cause) {
      throw new GatehouseClientError('invalid_configuration', 'the issuer must be an absolute URL', { cause });
    }
    if (!usesHttps(issuer, options.dangerouslyAllowInsecureHttp === true)) {
      throw new GatehouseClientError('invalid_configuration', `the issuer must use https (http is allowed only on loopback): ${issuer.origin}`);
    }
    this.issuer = issuer;
    this.#insecure = issuer.protocol === 'http:';
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.fetch = fetchImpl;
    const requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    if (!Number.isFinite(requestTimeout) || requestTimeout <= 0) throw new GatehouseClientError('invalid_configuration', 'requestTimeout must be a positive number of milliseconds');
    // AbortSignal.timeout() overflows like setTimeout: a longer timeout would fire after 1 ms.
    this.requestTimeout = clampDelay(requestTimeout);
    const metadata = options.metadata;
    if (metadata !== undefined) {
      if (!sameIssuer(metadata.issuer, issuer)) throw new GatehouseClientError('invalid_configuration', 'the metadata belongs to another issuer');
      this.#metadata = Promise.resolve(metadata);
    }
  }

  /** Options for an oauth4webapi request: our fetch, a timeout (and the caller's signal), http when allowed. */
  requestOptions(signal?: AbortSignal): RequestOptions {
    const timeout = this.requestTimeout;
    return {
      signal: () => (signal === undefined ? AbortSignal.timeout(timeout) : AbortSignal.any([signal, AbortSignal.timeout(timeout)])),
      [oauth.customFetch]: (url, init) => this.fetch(url, init as RequestInit),
      ...(this.#insecure ? { [oauth.allowInsecureRequests]: true } : {}),
    };
  }

  /**
   * The issuer's metadata, fetched once and cached (a failed fetch is not cached). Tries OpenID
   * Connect Discovery first, then RFC 8414; the document's `issuer` must equal the configured one.
   *
   * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
   */
  metadata(signal?: AbortSignal): Promise<oauth.AuthorizationServer> {
    if (this.#metadata === undefined) {
      const pending = this.#discover(signal);
      this.#metadata = pending;
      pending.catch(() => {
        if (this.#metadata === pending) this.#metadata = undefined;
      });
    }
    return this.#metadata;
  }

  async #discover(signal?: AbortSignal): Promise<oauth.AuthorizationServer> {
    let lastError: unknown;
    for (const algorithm of ['oidc', 'oauth2'] as const) {
      try {
        const response = await oauth.discoveryRequest(this.issuer, { ...this.requestOptions(signal), algorithm });
        if (response.status === 404 && algorithm === 'oidc') {
          await response.body?.cancel();
          continue;
        }
        await throwOnServerFailure(response);
        return await oauth.processDiscoveryResponse(this.issuer, response);
      } catch (err) {
        lastError = err;
        break;
      }
    }
    throw await toClientError(lastError, 'discovery');
  }
}

function sameIssuer(a: string, b: URL): boolean {
  try {
    return new URL(a).href === b.href;
  } catch {
    return false;
  }
}

/**
 * Discovers an issuer's metadata: OpenID Connect Discovery
 * (`/.well-known/openid-configuration`), then RFC 8414 (`/.well-known/oauth-authorization-server`);
 * the document's `issuer` must equal the one asked for.
 *
 * @example
 * ```ts
 * const metadata = await discover({ issuer: 'https://id.example.com' });
 * if (metadata.device_authorization_endpoint) { … }
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
 */
export function discover(options: ConnectionOptions & { signal?: AbortSignal | undefined }): Promise<oauth.AuthorizationServer> {
  return new IssuerConnection(options).metadata(options.signal);
}

/** Whether an error says the request never reached the server (connection refused, name not found), so repeating it cannot do anything twice. */
export function neverSent(err: unknown): boolean {
  const codes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
  for (let cause: unknown = err, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && codes.has(code)) return true;
  }
  return false;
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), when present and sane. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

async function readErrorBody(response: Response): Promise<{ error?: string; description?: string }> {
  try {
    const json: unknown = await response.clone().json();
    if (typeof json === 'object' && json !== null) {
      const { error, error_description: description } = json as Record<string, unknown>;
      return {
        ...(typeof error === 'string' && error !== '' ? { error } : {}),
        ...(typeof description === 'string' ? { description } : {}),
      };
    }
  } catch {
    // not JSON
  }
  return {};
}

/**
 * 5xx and 429 answers are retryable failures, whatever oauth4webapi would make of them: reads
 * the OAuth error (`temporarily_unavailable`, or `server_error` when there is none) and
 * `Retry-After`, and throws.
 */
export async function throwOnServerFailure(response: Response): Promise<void> {
  if (response.status < 500 && response.status !== 429) return;
  const body = await readErrorBody(response);
  await response.body?.cancel().catch(() => undefined);
  throw new OAuthResponseError(body.error ?? (response.status === 429 ? 'temporarily_unavailable' : 'server_error'), body.description, {
    status: response.status,
    retryable: true,
    retryAfter: parseRetryAfter(response.headers.get('retry-after')),
  });
}

/**
 * A copy of an oauth4webapi error without what it carries for debugging: their `cause` (and
 * `response`) hold the response body — a token response's `access_token`, `refresh_token` and
 * `id_token` when a later check failed — or the authorization response with its `code`. Only the
 * name, message (fixed text), oauth4webapi `code`, HTTP status and OAuth `error` code are kept, so
 * that `console.error(err)` or a logger serialising the cause chain shows no token.
 */
function scrubbed(err: Error): Error {
  const copy = new Error(err.message);
  copy.name = err.name;
  if (err.stack !== undefined) copy.stack = err.stack;
  const { code, status, error } = err as { code?: unknown; status?: unknown; error?: unknown };
  Object.assign(copy, {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof status === 'number' ? { status } : {}),
    ...(typeof error === 'string' ? { error } : {}),
  });
  return copy;
}

/**
 * Turns whatever a request threw into a {@link GatehouseClientError}: OAuth error bodies and
 * `WWW-Authenticate` challenges into {@link OAuthResponseError}, fetch failures into
 * `network_error`, timeouts and aborts, and responses oauth4webapi rejected into
 * `invalid_response`. `what` names the operation in messages. The `cause` of the result never
 * carries a response body (see {@link scrubbed}).
 */
export async function toClientError(err: unknown, what: string): Promise<GatehouseClientError> {
  if (err instanceof GatehouseClientError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    return new OAuthResponseError(err.error, err.error_description, { status: err.status, cause: scrubbed(err) });
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    // RFC 6749 §5.2: invalid_client may come as a 401 with a challenge and a JSON body.
    const body = await readErrorBody(err.response);
    const challenge = err.cause.find((c) => c.parameters.error !== undefined)?.parameters;
    const code = body.error ?? challenge?.error ?? (err.status === 401 ? 'invalid_client' : 'invalid_request');
    return new OAuthResponseError(code, body.description ?? challenge?.error_description, { status: err.status, cause: scrubbed(err) });
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    return new OAuthResponseError(err.error, err.error_description, { cause: scrubbed(err) });
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    if (err.name === 'TimeoutError') return new GatehouseClientError('timeout', `${what}: the authorization server did not answer in time`, { retryable: true, cause: err });
    return new GatehouseClientError('aborted', `${what}: aborted`, { cause: err });
  }
  if (err instanceof DOMException) {
    // Not a cancellation (handled above), so never `aborted`: a key or algorithm the client cannot
    // use (WebCrypto), data that does not decode (the server's), or whatever a custom fetch threw.
    const code = ['InvalidAccessError', 'NotSupportedError'].includes(err.name)
      ? 'invalid_configuration'
      : ['DataError', 'OperationError', 'SyntaxError', 'InvalidCharacterError', 'EncodingError'].includes(err.name)
        ? 'invalid_response'
        : 'network_error';
    return new GatehouseClientError(code, `${what}: ${err.name}: ${err.message}`, { cause: err });
  }
  if (err instanceof oauth.OperationProcessingError || err instanceof oauth.UnsupportedOperationError) {
    return new GatehouseClientError('invalid_response', `${what}: ${err.message}`, { cause: scrubbed(err) });
  }
  if (err instanceof TypeError && err.message === 'fetch failed') {
    return new GatehouseClientError('network_error', `${what}: the authorization server could not be reached`, { retryable: true, cause: err });
  }
  if (err instanceof TypeError && (err as { code?: unknown }).code !== undefined && String((err as { code?: unknown }).code).startsWith('ERR_')) {
    // oauth4webapi's argument checks (CodedTypeError): a configuration mistake. Its cause may be
    // the offending value (a secret of the wrong type, say): dropped.
    return new GatehouseClientError('invalid_configuration', `${what}: ${err.message}`, { cause: scrubbed(err) });
  }
  return new GatehouseClientError('network_error', `${what}: request failed`, { retryable: true, cause: err });
}
