/**
 * RFC 6750 §3 errors: the status, the `WWW-Authenticate` challenge and a JSON body, carried by
 * one typed error so every adapter answers the same way.
 */

/**
 * The error codes this library answers with. The first three are RFC 6750 §3.1's;
 * `temporarily_unavailable` (503) is used when the authorization server could not be reached.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable';

/**
 * What describes a challenge beyond its code.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export interface ChallengeParameters {
  /** `realm` of the challenge. */
  realm: string;
  /** RFC 9728 §5.1: URL of the protected-resource metadata, added as `resource_metadata`. */
  resourceMetadata?: string | undefined;
}

/** Characters allowed inside an RFC 6750 quoted auth-param (error_description, scope): no `"` or `\`. */
function quotable(value: string): string {
  return value.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
}

/**
 * A request that carries no acceptable access token (or lacks scope). `status`, `headers` and
 * `body` are what the adapters send; `code` is undefined when no token was sent at all
 * (RFC 6750 §3.1: "the resource server SHOULD NOT include an error code").
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export class BearerError extends Error {
  /** HTTP status: 400, 401, 403 or 503. */
  readonly status: 400 | 401 | 403 | 503;
  /** RFC 6750 error code, or undefined for "no token was sent". */
  readonly code: BearerErrorCode | undefined;
  /** Human-readable, safe to send: never contains token contents. */
  readonly description: string | undefined;
  /** For `insufficient_scope`: the scope the request needs. */
  readonly scope: string | undefined;
  /** Response headers: `WWW-Authenticate` (every status but 503), `Cache-Control`, `Retry-After` (503). */
  readonly headers: Record<string, string>;
  /** JSON response body: `{ error, error_description }` or `{}` when no token was sent. */
  readonly body: { error?: string; error_description?: string; scope?: string };

  constructor(
    status: 400 | 401 | 403 | 503,
    code: BearerErrorCode | undefined,
    description: string | undefined,
    challenge: ChallengeParameters,
    options: { scope?: string; cause?: unknown } = {},
  ) {
    super(description ?? 'Bearer token required', options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BearerError';
    this.status = status;
    this.code = code;
    this.description = description;
    this.scope = options.scope;
    const params = [`realm="${quotable(challenge.realm)}"`];
    if (code !== undefined && code !== 'temporarily_unavailable') params.push(`error="${code}"`);
    if (description !== undefined && code !== undefined && code !== 'temporarily_unavailable') params.push(`error_description="${quotable(description)}"`);
    if (options.scope !== undefined) params.push(`scope="${quotable(options.scope)}"`);
    if (challenge.resourceMetadata !== undefined) params.push(`resource_metadata="${quotable(challenge.resourceMetadata)}"`);
    this.headers = { 'cache-control': 'no-store', 'content-type': 'application/json' };
    if (status === 503) this.headers['retry-after'] = '5';
    else this.headers['www-authenticate'] = `Bearer ${params.join(', ')}`;
    this.body = {
      ...(code === undefined ? {} : { error: code }),
      ...(description === undefined || code === undefined ? {} : { error_description: description }),
      ...(options.scope === undefined ? {} : { scope: options.scope }),
    };
  }

  /**
   * This error as a fetch-API `Response`.
   *
   * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
   */
  toResponse(): Response {
    return new Response(JSON.stringify(this.body), { status: this.status, headers: this.headers });
  }
}

/**
 * Builds the errors of one verifier (one realm).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export interface BearerErrors {
  noToken(): BearerError;
  invalidRequest(description: string): BearerError;
  invalidToken(description: string, cause?: unknown): BearerError;
  insufficientScope(scope: string, description?: string): BearerError;
  unavailable(description: string, cause?: unknown): BearerError;
}

/**
 * The error factory for a realm (and optional RFC 9728 metadata URL).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function bearerErrors(challenge: ChallengeParameters): BearerErrors {
  return {
    noToken: () => new BearerError(401, undefined, undefined, challenge),
    invalidRequest: (d) => new BearerError(400, 'invalid_request', d, challenge),
    invalidToken: (d, cause) => new BearerError(401, 'invalid_token', d, challenge, { cause }),
    insufficientScope: (scope, d = 'The access token does not carry the required scope') =>
      new BearerError(403, 'insufficient_scope', d, challenge, { scope }),
    unavailable: (d, cause) => new BearerError(503, 'temporarily_unavailable', d, challenge, { cause }),
  };
}

/**
 * Thrown internally when the authorization server (metadata, JWKS, introspection) cannot be
 * used; the verifier turns it into a 503.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 */
export class IssuerUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IssuerUnavailableError';
  }
}
