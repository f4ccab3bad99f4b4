/**
 * One error model for every protocol endpoint. Each error carries the RFC `error` code,
 * the HTTP status and a client-safe description; `cause` only ever reaches the logs.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  | 'invalid_token'
  | 'invalid_client_metadata'
  | 'invalid_redirect_uri'
  | 'access_denied'
  | 'authorization_pending'
  | 'slow_down'
  | 'expired_token'
  | 'unsupported_response_type'
  | 'server_error'
  | 'temporarily_unavailable';

export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description?: string;
}

export class OAuthError extends Error {
  readonly code: OAuthErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: OAuthErrorCode,
    status: number,
    description?: string,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(description ?? code, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.headers = options?.headers ?? {};
  }

  /** The JSON body sent to the client: the code and the safe description, nothing else. */
  toJSON(): OAuthErrorBody {
    return this.message === this.code ? { error: this.code } : { error: this.code, error_description: this.message };
  }
}

type Opts = { cause?: unknown; headers?: Record<string, string> };

export class InvalidRequestError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_request', 400, description, options);
  }
}

/**
 * RFC 6749 §5.2: "The authorization server MAY return an HTTP 401 (Unauthorized) status code to
 * indicate which HTTP authentication schemes are supported." RFC 9110 §15.5.2: a 401 "MUST send
 * a WWW-Authenticate header field containing at least one challenge": Basic, always.
 */
export class InvalidClientError extends OAuthError {
  constructor(description = 'client authentication failed', options?: Opts) {
    super('invalid_client', 401, description, {
      ...options,
      headers: { 'www-authenticate': 'Basic realm="gatehouse", charset="UTF-8"', ...options?.headers },
    });
  }
}

export class InvalidGrantError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_grant', 400, description, options);
  }
}

export class UnauthorizedClientError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('unauthorized_client', 400, description, options);
  }
}

export class UnsupportedGrantTypeError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('unsupported_grant_type', 400, description, options);
  }
}

export class InvalidScopeError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_scope', 400, description, options);
  }
}

/** RFC 8707 §2: the requested resource is invalid, unknown, malformed or not allowed. */
export class InvalidTargetError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_target', 400, description, options);
  }
}

export class UnsupportedTokenTypeError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('unsupported_token_type', 400, description, options);
  }
}

/** RFC 6750 §3.1 / RFC 7592 §2: a bearer token (e.g. a registration access token) is not valid. */
export class InvalidTokenError extends OAuthError {
  constructor(description = 'the access token is not valid', options?: Opts) {
    super('invalid_token', 401, description, {
      ...options,
      headers: { 'www-authenticate': 'Bearer error="invalid_token"', ...options?.headers },
    });
  }
}

export class InvalidClientMetadataError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_client_metadata', 400, description, options);
  }
}

export class InvalidRedirectUriError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('invalid_redirect_uri', 400, description, options);
  }
}

/** RFC 6749 §5.2 / RFC 8628 §3.5: the resource owner or the authorization server denied the request. */
export class AccessDeniedError extends OAuthError {
  constructor(description?: string, options?: Opts) {
    super('access_denied', 400, description, options);
  }
}

/**
 * RFC 8628 §3.5: "authorization_pending — The authorization request is still pending as the end
 * user hasn't yet completed the user-interaction steps"; "slow_down — A variant of
 * "authorization_pending", the authorization request is still pending and polling should
 * continue, but the interval MUST be increased by 5 seconds for this and all subsequent
 * requests"; "expired_token — The "device_code" has expired, and the device authorization
 * session has concluded."
 */
export class DevicePollError extends OAuthError {
  constructor(code: 'authorization_pending' | 'slow_down' | 'expired_token', description?: string) {
    super(code, 400, description);
  }
}

export class ServerError extends OAuthError {
  constructor(options?: Opts) {
    super('server_error', 500, undefined, options);
  }
}

/**
 * A rate limit was reached (RFC 6585 §4: "429 Too Many Requests [...] The response
 * representations SHOULD include details explaining the condition, and MAY include a Retry-After
 * header indicating how long to wait before making a new request."). OAuth defines no error code
 * for it; `temporarily_unavailable` ("unable to handle the request due to a temporary
 * overloading", RFC 6749 §4.1.2.1) is the one clients already treat as "try again later".
 */
export class TooManyRequestsError extends OAuthError {
  constructor(retryAfter: number) {
    super('temporarily_unavailable', 429, 'too many requests; try again later', { headers: { 'retry-after': String(retryAfter) } });
  }
}

/** Storage or another dependency is down: answer 503, never issue anything unrecorded. */
export class TemporarilyUnavailableError extends OAuthError {
  constructor(description = 'the service is temporarily unavailable', options?: Opts) {
    super('temporarily_unavailable', 503, description, { ...options, headers: { 'retry-after': '5', ...options?.headers } });
  }
}
