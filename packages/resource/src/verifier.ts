import { createHash } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';
import { BearerError, bearerErrors, IssuerUnavailableError, type BearerErrors } from './errors.js';
import { fetchJson, IssuerConnection } from './issuer.js';
import { extractBearerToken, type TokenSource } from './request.js';
import { parseScopeClaim, unmetScope, type ScopeRequirement } from './scopes.js';

/**
 * Asymmetric JWS algorithms this library can accept (RFC 7518 §3, RFC 8037). `none` and the
 * HMAC algorithms are never accepted, whatever the configuration says.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'];

/**
 * Algorithms accepted when neither the options nor the issuer's metadata name any.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export const DEFAULT_ALGORITHMS: readonly string[] = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'];

/**
 * Default clock tolerance: 30 seconds either way for `exp`, `nbf` and `iat`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export const DEFAULT_CLOCK_TOLERANCE = 30;

/** Header parameters that would make a verifier fetch or trust a key named by the token. */
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

/**
 * Client credentials of the API itself, used for RFC 7662 introspection (client_secret_basic).
 *
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.1
 */
export interface IntrospectionOptions {
  clientId: string;
  clientSecret: string;
  /** Introspect JWTs too (to see revocations at once); default false: JWTs are verified locally. */
  always?: boolean;
  /** Longest time an introspection result is reused, in seconds (default 60; 0: never cached). Never beyond the token's `exp`. */
  cacheMaxAge?: number;
  /** Most results kept (default 10 000). */
  cacheSize?: number;
}

/**
 * Configuration of an {@link AccessTokenVerifier}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export interface VerifierOptions {
  /** Issuer identifier; metadata is discovered from it (RFC 8414) and its `issuer` must equal it exactly. */
  issuer: string;
  /** This API's resource identifier: the token's `aud` must contain it. */
  audience: string;
  /** Accepted JWS algorithms; asymmetric only. Default: the issuer's advertised ones, else {@link DEFAULT_ALGORITHMS}. */
  algorithms?: readonly string[];
  /** Seconds of clock skew tolerated on `exp`, `nbf` and `iat` (default 30). */
  clockTolerance?: number;
  /** Scopes every request needs (checked with the hierarchy rule); routes may add their own. */
  scopes?: ScopeRequirement;
  /** `realm` of the challenges (default: the audience). */
  realm?: string;
  /** RFC 9728 metadata URL, sent as `resource_metadata` in challenges. */
  resourceMetadata?: string;
  /** Enables opaque tokens: introspection with the API's own credentials. Without it, opaque tokens are invalid_token. */
  introspection?: IntrospectionOptions;
  /** Milliseconds to wait for the issuer (default 5000). */
  timeout?: number;
  /** JWKS reuse (default 600 s) and unknown-`kid` refetch cooldown (default 30 s), in seconds. */
  jwksCacheMaxAge?: number;
  jwksCooldown?: number;
  /** Current time in seconds since the epoch (tests). */
  now?: () => number;
}

/**
 * The verified claims of an access token, whichever way it was verified.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2
 */
export interface AccessTokenClaims {
  /** `jwt`: verified locally (RFC 9068); `opaque`: introspected (RFC 7662). */
  format: 'jwt' | 'opaque';
  iss: string;
  sub: string | undefined;
  /** The audiences, always as a list. */
  aud: string[];
  exp: number | undefined;
  iat: number | undefined;
  jti: string | undefined;
  client_id: string | undefined;
  /** The granted scopes. */
  scopes: string[];
  /** Every claim as received (JWT payload or introspection response). */
  claims: Readonly<Record<string, unknown>>;
}

/**
 * Verifies requests' access tokens for one API; holds the metadata, JWKS and introspection caches.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export interface AccessTokenVerifier {
  /**
   * Reads the bearer token of `source` and verifies it, then checks `scopes` (in addition to the
   * verifier's own). Resolves to the claims; rejects with a {@link BearerError} only.
   */
  verify(source: TokenSource, options?: { scopes?: ScopeRequirement }): Promise<AccessTokenClaims>;
  /** The error factory of this verifier's realm (for adapters and custom answers). */
  readonly errors: BearerErrors;
}

interface CachedIntrospection {
  response: Record<string, unknown> | null;
  until: number;
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

function audiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function asymmetricOnly(algorithms: readonly string[]): string[] {
  return algorithms.filter((a) => ASYMMETRIC_ALGORITHMS.includes(a));
}

/** Errors from jose's key lookup that are about the token, not about the issuer. */
function isTokenKeyError(error: unknown): boolean {
  return (
    error instanceof joseErrors.JWKSNoMatchingKey ||
    error instanceof joseErrors.JWKSMultipleMatchingKeys ||
    error instanceof joseErrors.JOSENotSupported ||
    error instanceof joseErrors.JOSEAlgNotAllowed
  );
}

/**
 * Creates a verifier. Checks the options at once (a TypeError for a bad configuration); contacts
 * the issuer only when the first token arrives.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 */
export function createAccessTokenVerifier(options: VerifierOptions): AccessTokenVerifier {
  let issuerUrl: URL;
  try {
    issuerUrl = new URL(options.issuer);
  } catch {
    throw new TypeError('issuer must be an absolute URL');
  }
  if (issuerUrl.search !== '' || issuerUrl.hash !== '') throw new TypeError('issuer must have no query or fragment');
  if (typeof options.audience !== 'string' || options.audience === '') throw new TypeError('audience is required');
  const tolerance = options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE;
  if (!Number.isFinite(tolerance) || tolerance < 0) throw new TypeError('clockTolerance must be a non-negative number of seconds');
  if (options.algorithms !== undefined) {
    const rejected = options.algorithms.filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
    if (rejected.length > 0) throw new TypeError(`algorithms must be asymmetric JWS algorithms; refused: ${rejected.join(', ')}`);
    if (options.algorithms.length === 0) throw new TypeError('algorithms must not be empty');
  }
  const introspection = options.introspection;
  if (introspection !== undefined && (introspection.clientId === '' || introspection.clientSecret === '')) {
    throw new TypeError('introspection needs clientId and clientSecret');
  }
  const timeout = options.timeout ?? 5000;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const errors = bearerErrors({ realm: options.realm ?? options.audience, resourceMetadata: options.resourceMetadata });
  const connection = new IssuerConnection({
    issuer: options.issuer,
    timeoutMs: timeout,
    metadataMaxAgeMs: 3600_000,
    jwksCacheMaxAgeMs: (options.jwksCacheMaxAge ?? 600) * 1000,
    jwksCooldownMs: (options.jwksCooldown ?? 30) * 1000,
  });
  const cache = new Map<string, CachedIntrospection>();
  const cacheMaxAge = introspection?.cacheMaxAge ?? 60;
  const cacheSize = introspection?.cacheSize ?? 10_000;

  async function algorithms(): Promise<string[]> {
    if (options.algorithms !== undefined) return [...options.algorithms];
    const advertised = (await connection.metadata()).access_token_signing_alg_values_supported;
    const fromIssuer = Array.isArray(advertised) ? asymmetricOnly(advertised.filter((a): a is string => typeof a === 'string')) : [];
    return fromIssuer.length > 0 ? fromIssuer : [...DEFAULT_ALGORITHMS];
  }

  function checkHeader(header: ProtectedHeaderParameters, allowed: readonly string[]): void {
    for (const name of FORBIDDEN_HEADERS) {
      if (name in header) throw errors.invalidToken(`The access token carries a "${name}" header, which is not accepted`);
    }
    if ('crit' in header) throw errors.invalidToken('The access token carries critical header parameters this resource does not understand');
    if (typeof header.alg !== 'string' || !allowed.includes(header.alg)) throw errors.invalidToken('The access token is signed with an algorithm that is not accepted');
    // RFC 9068 §4: typ must be at+jwt (or application/at+jwt); ID tokens and other JWTs are refused.
    const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
    if (typ !== 'at+jwt' && typ !== 'application/at+jwt') throw errors.invalidToken('The token is not an access token (typ must be at+jwt)');
    if (header.kid !== undefined && typeof header.kid !== 'string') throw errors.invalidToken('The access token has a malformed kid');
  }

  async function verifyJwt(token: string): Promise<AccessTokenClaims> {
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (cause) {
      throw errors.invalidToken('The access token is malformed', cause);
    }
    const allowed = await algorithms();
    checkHeader(header, allowed);
    const getKey = await connection.keys();
    const resolve: JWTVerifyGetKey = async (protectedHeader, jws) => {
      try {
        return await getKey(protectedHeader, jws);
      } catch (error) {
        if (isTokenKeyError(error)) throw error;
        throw new IssuerUnavailableError('the authorization server JWKS could not be fetched', { cause: error });
      }
    };
    const current = now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, resolve, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: allowed,
        clockTolerance: tolerance,
        currentDate: new Date(current * 1000),
        typ: 'at+jwt',
        // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat and jti are REQUIRED.
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'jti', 'client_id'],
      }));
    } catch (error) {
      if (error instanceof IssuerUnavailableError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw errors.invalidToken('The access token expired', error);
      if (error instanceof joseErrors.JWTClaimValidationFailed) throw errors.invalidToken(`The access token's "${error.claim}" claim is invalid`, error);
      if (error instanceof joseErrors.JWKSNoMatchingKey) throw errors.invalidToken('The access token is signed with an unknown key', error);
      throw errors.invalidToken('The access token signature or format is invalid', error);
    }
    if (typeof payload.iat !== 'number' || payload.iat > current + tolerance) throw errors.invalidToken('The access token\'s "iat" claim is invalid');
    if (typeof payload.exp !== 'number') throw errors.invalidToken('The access token has no expiry');
    for (const claim of ['sub', 'jti', 'client_id'] as const) {
      if (typeof payload[claim] !== 'string' || payload[claim] === '') throw errors.invalidToken(`The access token's "${claim}" claim is invalid`);
    }
    return {
      format: 'jwt',
      iss: options.issuer,
      sub: optionalString(payload.sub),
      aud: audiences(payload.aud),
      exp: payload.exp,
      iat: payload.iat,
      jti: optionalString(payload.jti),
      client_id: optionalString(payload.client_id),
      scopes: parseScopeClaim(payload.scope),
      claims: payload,
    };
  }

  async function introspectionResponse(token: string, settings: IntrospectionOptions): Promise<Record<string, unknown> | null> {
    const key = sha256(token);
    const current = now();
    const cached = cache.get(key);
    if (cached !== undefined && cached.until > current) return cached.response;
    if (cached !== undefined) cache.delete(key);
    const endpoint = (await connection.metadata()).introspection_endpoint;
    if (typeof endpoint !== 'string') throw new IssuerUnavailableError('the authorization server metadata has no introspection_endpoint');
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch (cause) {
      throw new IssuerUnavailableError('the introspection_endpoint is not a URL', { cause });
    }
    const credentials = Buffer.from(`${formEncode(settings.clientId)}:${formEncode(settings.clientSecret)}`).toString('base64');
    const { status, json } = await fetchJson(
      url,
      {
        method: 'POST',
        headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      },
      timeout,
    );
    if (status === 401 || status === 403) throw new IssuerUnavailableError('the authorization server refused this resource\'s introspection credentials');
    if (status !== 200 || typeof json !== 'object' || json === null || Array.isArray(json)) throw new IssuerUnavailableError(`introspection answered ${status}`);
    const body = json as Record<string, unknown>;
    const response = body.active === true ? body : null;
    const exp = response === null ? undefined : optionalNumber(response.exp);
    const until = Math.min(current + cacheMaxAge, exp ?? Number.POSITIVE_INFINITY);
    if (cacheMaxAge > 0 && until > current) {
      if (cache.size >= cacheSize) {
        const oldest = cache.keys().next();
        if (oldest.done !== true) cache.delete(oldest.value);
      }
      cache.set(key, { response, until });
    }
    return response;
  }

  async function verifyByIntrospection(token: string): Promise<AccessTokenClaims> {
    if (introspection === undefined) throw errors.invalidToken('The access token is not a JWT and this resource does not introspect tokens');
    const response = await introspectionResponse(token, introspection);
    if (response === null) throw errors.invalidToken('The access token is not active');
    const current = now();
    const exp = optionalNumber(response.exp);
    if (exp !== undefined && exp <= current - tolerance) throw errors.invalidToken('The access token expired');
    const nbf = optionalNumber(response.nbf);
    if (nbf !== undefined && nbf > current + tolerance) throw errors.invalidToken('The access token is not yet valid');
    if (response.iss !== undefined && response.iss !== options.issuer) throw errors.invalidToken('The access token\'s "iss" claim is invalid');
    const aud = audiences(response.aud);
    if (!aud.includes(options.audience)) throw errors.invalidToken('The access token\'s "aud" claim is invalid');
    if (response.token_type !== undefined && typeof response.token_type === 'string' && response.token_type.toLowerCase() !== 'bearer') {
      throw errors.invalidToken('The access token is not a bearer token');
    }
    return {
      format: 'opaque',
      iss: options.issuer,
      sub: optionalString(response.sub),
      aud,
      exp,
      iat: optionalNumber(response.iat),
      jti: optionalString(response.jti),
      client_id: optionalString(response.client_id),
      scopes: parseScopeClaim(response.scope),
      claims: response,
    };
  }

  async function verify(source: TokenSource, verifyOptions: { scopes?: ScopeRequirement } = {}): Promise<AccessTokenClaims> {
    try {
      const token = await extractBearerToken(source, errors);
      const jwt = JWT_SHAPE.test(token) && introspection?.always !== true;
      const claims = jwt ? await verifyJwt(token) : await verifyByIntrospection(token);
      for (const requirement of [options.scopes, verifyOptions.scopes]) {
        const unmet = unmetScope(claims.scopes, requirement);
        if (unmet !== undefined) throw errors.insufficientScope(unmet);
      }
      return claims;
    } catch (error) {
      if (error instanceof BearerError) throw error;
      if (error instanceof IssuerUnavailableError) throw errors.unavailable(`The authorization server is unavailable: ${error.message}`, error);
      // Never a 500: whatever else went wrong, the token was not verified.
      throw errors.invalidToken('The access token could not be verified', error);
    }
  }

  return { verify, errors };
}

const verifiers = new WeakMap<VerifierOptions, AccessTokenVerifier>();

/**
 * Verifies the access token of a request (or of an `Authorization` header value). Pass an
 * {@link AccessTokenVerifier} to share caches, or options: a verifier is created once per options
 * object (keep the object; a new object per call means a new JWKS cache per call).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function verifyAccessToken(
  source: TokenSource,
  verifierOrOptions: AccessTokenVerifier | VerifierOptions,
  options: { scopes?: ScopeRequirement } = {},
): Promise<AccessTokenClaims> {
  let verifier: AccessTokenVerifier;
  if ('verify' in verifierOrOptions) verifier = verifierOrOptions;
  else {
    verifier = verifiers.get(verifierOrOptions) ?? createAccessTokenVerifier(verifierOrOptions);
    verifiers.set(verifierOrOptions, verifier);
  }
  return verifier.verify(source, options);
}
