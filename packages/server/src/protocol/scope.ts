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
