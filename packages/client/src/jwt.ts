/**
 * Reading a JWT's claims without verifying it: for display only (`whoami`), never for a security
 * decision. ID tokens are validated by oauth4webapi when they arrive; access tokens are for the
 * API to verify, and may not be JWTs at all.
 */

/**
 * The claims of a compact JWS (`header.payload.signature`), or undefined when `token` is not a JWT
 * (an opaque token, an encrypted JWT). The signature is NOT checked.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-7.2
 */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
