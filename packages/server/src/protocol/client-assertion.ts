/**
 * Claim checks for `private_key_jwt` client assertions (RFC 7523 §3, OIDC Core §9). Pure: the
 * signature is verified elsewhere; `now` is passed in (seconds since the epoch).
 */

export interface AssertionClaims {
  iss?: unknown;
  sub?: unknown;
  aud?: unknown;
  exp?: unknown;
  nbf?: unknown;
  iat?: unknown;
  jti?: unknown;
}

export interface AssertionPolicy {
  clientId: string;
  /** The issuer identifier: the only accepted audience. */
  issuer: string;
  now: number;
  /** Longest accepted remaining lifetime, seconds. */
  maxLifetime: number;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, seconds. */
  clockTolerance: number;
}

export type AssertionVerdict = { ok: true; jti: string; exp: number } | { ok: false; reason: string };

const isNumericDate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function checkAssertionClaims(claims: AssertionClaims, policy: AssertionPolicy): AssertionVerdict {
  const { clientId, now, clockTolerance } = policy;
  // RFC 7523 §3 (1): "The JWT MUST contain an "iss" (issuer) claim" — for client
  // authentication, OIDC Core §9: "iss REQUIRED. Issuer. This MUST contain the client_id".
  if (claims.iss !== clientId) return { ok: false, reason: 'iss must be the client_id' };
  // OIDC Core §9: "sub REQUIRED. Subject. This MUST contain the client_id of the OAuth Client."
  if (claims.sub !== clientId) return { ok: false, reason: 'sub must be the client_id' };
  // RFC 7523 §3 (3): "The JWT MUST contain an "aud" (audience) claim containing a value that
  // identifies the authorization server as an intended audience." Only the issuer identifier is
  // accepted (draft-ietf-oauth-rfc7523bis, after the 2025 audience-injection findings): an
  // assertion made for an endpoint URL that another server advertised cannot be replayed here.
  // A one-element array holding the issuer says the same thing and is accepted too.
  const aud = claims.aud;
  const audOk = aud === policy.issuer || (Array.isArray(aud) && aud.length === 1 && aud[0] === policy.issuer);
  if (!audOk) return { ok: false, reason: 'aud must be the issuer identifier' };
  // RFC 7523 §3 (4): "The JWT MUST contain an "exp" (expiration time) claim that limits the
  // time window during which the JWT can be used."
  if (!isNumericDate(claims.exp)) return { ok: false, reason: 'exp is required' };
  if (claims.exp <= now - clockTolerance) return { ok: false, reason: 'the assertion has expired' };
  if (claims.exp - now > policy.maxLifetime + clockTolerance) return { ok: false, reason: 'the assertion lives too long' };
  // RFC 7523 §3 (5): "The JWT MAY contain an "nbf" (not before) claim [...] The authorization
  // server MUST reject any JWT that is not yet valid".
  if (claims.nbf !== undefined && (!isNumericDate(claims.nbf) || claims.nbf > now + clockTolerance)) {
    return { ok: false, reason: 'the assertion is not yet valid' };
  }
  if (claims.iat !== undefined && (!isNumericDate(claims.iat) || claims.iat > now + clockTolerance)) {
    return { ok: false, reason: 'iat is in the future' };
  }
  // RFC 7523 §3 (7): "The authorization server MAY ensure that JWTs are not replayed by
  // maintaining the set of used "jti" values". Gatehouse requires jti and enforces single use.
  if (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > 256) {
    return { ok: false, reason: 'jti is required' };
  }
  return { ok: true, jti: claims.jti, exp: claims.exp };
}
