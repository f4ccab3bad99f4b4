/**
 * One error hierarchy for everything this library throws. `code` is the OAuth `error` code when
 * the server sent one, otherwise one of this library's own codes; messages never contain a
 * token, a secret, a code or a code verifier, and what the server said in them has its control
 * characters escaped (safe to print on a terminal).
 */
import { escapeControlChars } from './terminal.js';

/**
 * OAuth error codes a server may answer with (RFC 6749 §5.2 and §4.1.2.1, RFC 6750 §3.1,
 * RFC 7009 §2.2.1, RFC 8628 §3.5, RFC 8707 §2); any other string the server sends is kept as is.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.5
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'access_denied'
  | 'unsupported_response_type'
  | 'server_error'
  | 'temporarily_unavailable'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'unsupported_token_type'
  | 'authorization_pending'
  | 'slow_down'
  | 'expired_token';

/**
 * Codes this library uses when there is no OAuth error code to report:
 * - `network_error`: the server could not be reached (connection refused, reset, DNS);
 * - `timeout`: a request, a login or a lock wait took longer than allowed;
 * - `aborted`: the caller's `AbortSignal` fired;
 * - `invalid_response`: the server answered something this library must not accept (bad metadata,
 *   wrong `iss`, malformed JSON, an ID token that does not validate);
 * - `invalid_callback`: the loopback redirect carried no code or failed its checks;
 * - `login_required`: there is no stored session, or its refresh token was refused;
 * - `ambiguous_session`: several stored sessions match and none was named;
 * - `insecure_permissions`: the session directory or file can be changed or read by other users
 *   (or belongs to another user), so it is not used (like ssh with a private key);
 * - `invalid_configuration`: the options given to the library cannot work (e.g. an `http:` issuer
 *   that is not loopback, a server without the needed endpoint).
 */
export type LibraryErrorCode =
  | 'network_error'
  | 'timeout'
  | 'aborted'
  | 'invalid_response'
  | 'invalid_callback'
  | 'login_required'
  | 'ambiguous_session'
  | 'insecure_permissions'
  | 'invalid_configuration';

/** Every `code` a {@link GatehouseClientError} can carry (extension OAuth codes pass through as strings). */
export type ClientErrorCode = OAuthErrorCode | LibraryErrorCode | (string & Record<never, never>);

/** Options shared by the error constructors. */
export interface ClientErrorOptions {
  /** HTTP status of the answer that caused the error, when there was one. */
  status?: number | undefined;
  /** Whether repeating the same request later may succeed (network errors, 5xx, 429). */
  retryable?: boolean | undefined;
  /** Seconds the server asked the client to wait (`Retry-After`), when it said. */
  retryAfter?: number | undefined;
  /** The underlying error, for logs; never shown to end users as is. */
  cause?: unknown;
}

/**
 * The base class of every error thrown by `@gatehouse/client`. Switch on `code`.
 *
 * @example
 * ```ts
 * try { await source.getToken(); }
 * catch (err) { if (err instanceof GatehouseClientError && err.code === 'invalid_client') rotateCredentials(); }
 * ```
 */
export class GatehouseClientError extends Error {
  /** The OAuth `error` code, or one of {@link LibraryErrorCode}. */
  readonly code: ClientErrorCode;
  /** HTTP status of the answer that caused the error, when there was one. */
  readonly status: number | undefined;
  /** Whether repeating the same request later may succeed. */
  readonly retryable: boolean;
  /** Seconds the server asked to wait before retrying (`Retry-After`), when it said. */
  readonly retryAfter: number | undefined;

  constructor(code: ClientErrorCode, message: string, options: ClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatehouseClientError';
    this.code = code;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfter = options.retryAfter;
  }
}

/**
 * The server said no: an OAuth error response (RFC 6749 §5.2 token errors, §4.1.2.1
 * authorization errors, RFC 8628 §3.5 device errors, 5xx `temporarily_unavailable`).
 * `code` is the server's `error`; `description` its `error_description` as sent. In `message`
 * both have their control characters escaped: an authorization response (or a misbehaving server)
 * could otherwise put terminal escape sequences on the user's screen.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export class OAuthResponseError extends GatehouseClientError {
  /** The server's `error_description`, when it sent one. */
  readonly description: string | undefined;

  constructor(code: string, description: string | undefined, options: ClientErrorOptions = {}) {
    const status = options.status === undefined ? '' : ` (HTTP ${options.status})`;
    const said = escapeControlChars(code) + status + (description ? `: ${escapeControlChars(description)}` : '');
    super(code, `the authorization server answered ${said}`, options);
    this.name = 'OAuthResponseError';
    this.description = description;
  }
}

/**
 * A stored CLI session is missing or can no longer be refreshed (its refresh token was refused
 * with `invalid_grant`, or there was none): the user must sign in again. `code` is
 * `login_required`.
 */
export class LoginRequiredError extends GatehouseClientError {
  constructor(message: string, options: ClientErrorOptions = {}) {
    super('login_required', message, options);
    this.name = 'LoginRequiredError';
  }
}
