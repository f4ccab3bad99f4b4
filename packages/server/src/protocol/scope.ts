/**
 * Scope rules. Pure functions, no I/O.
 *
 * RFC 6749 §3.3: "The value of the scope parameter is expressed as a list of space-delimited,
 * case-sensitive strings." scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
 *
 * Hierarchy (Gatehouse rule): names may be hierarchical with `:`. A granted scope satisfies a
 * required scope when they are equal or when the granted one is an ancestor of the required one:
 * `orders` satisfies `orders:items` and `orders:items:read`, never the reverse, and `orders`
 * does not satisfy `ordersX` (the match is on whole `:` segments).
 */

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export const MAX_SCOPE_TOKENS = 100;

/** Parses a scope parameter into distinct tokens, in request order; `null` when malformed. */
export function parseScope(value: string): string[] | null {
  // RFC 6749 §3.3: space-delimited; a leading, trailing or doubled space makes an empty token.
  const parts = value.split(' ');
  if (parts.length > MAX_SCOPE_TOKENS) return null;
  const seen = new Set<string>();
  for (const part of parts) {
    if (!SCOPE_TOKEN.test(part)) return null;
    seen.add(part);
  }
  return [...seen];
}

export function isValidScopeToken(value: string): boolean {
  return SCOPE_TOKEN.test(value) && value.length <= 200;
}

export function formatScope(scopes: readonly string[]): string {
  return scopes.join(' ');
}

/** True when `granted` equals `required` or is an ancestor of it on whole `:` segments. */
export function scopeSatisfies(granted: string, required: string): boolean {
  return granted === required || (required.length > granted.length && required.startsWith(granted) && required[granted.length] === ':');
}

/** True when some granted scope satisfies `required`. */
export function isScopeGranted(granted: readonly string[], required: string): boolean {
  for (const g of granted) if (scopeSatisfies(g, required)) return true;
  return false;
}

/** The requested scopes that none of the granted scopes satisfies (empty when all are granted). */
export function missingScopes(granted: readonly string[], requested: readonly string[]): string[] {
  return requested.filter((r) => !isScopeGranted(granted, r));
}

/** True when two scope names overlap under the hierarchy rule (one satisfies the other). */
export function scopesOverlap(a: string, b: string): boolean {
  return scopeSatisfies(a, b) || scopeSatisfies(b, a);
}

/** The scope a user is asked to delegate, checked against what the client is registered for. */
export type RequestedScopeCheck = { ok: true; scope: string[] } | { ok: false; error: 'invalid_scope'; description: string };

/**
 * The `scope` of a request a user will approve (authorization or device authorization). RFC 6749
 * §3.3: "If the client omits the scope parameter when requesting authorization, the authorization
 * server MUST either process the request using a pre-defined default value or fail the request" —
 * the default is the client's registered scope. Every scope must be registered for the client,
 * except `openid` itself (OIDC Core §3.1.2.1: "OpenID Connect requests MUST contain the openid
 * scope value"); `offline_access` needs the refresh_token grant.
 */
export function checkRequestedScope(scopeParam: string | undefined, client: { scope: readonly string[]; grantTypes: readonly string[] }): RequestedScopeCheck {
  let scope: string[];
  if (scopeParam === undefined) {
    scope = [...client.scope];
  } else {
    const parsed = parseScope(scopeParam);
    if (parsed === null) return { ok: false, error: 'invalid_scope', description: 'scope is malformed' };
    scope = parsed;
  }
  const denied = scope.filter((s) => s !== 'openid' && !isScopeGranted(client.scope, s));
  if (denied.length > 0) return { ok: false, error: 'invalid_scope', description: 'a requested scope is not allowed for this client' };
  if (scope.includes('offline_access') && !client.grantTypes.includes('refresh_token')) {
    return { ok: false, error: 'invalid_scope', description: 'offline_access requires the refresh_token grant' };
  }
  return { ok: true, scope };
}
