/**
 * Gatehouse's scope hierarchy: a granted scope satisfies a required one when they are equal or
 * the granted one is an ancestor on whole `:` segments (`orders` satisfies `orders:items`, never
 * the reverse; `orders` does not satisfy `ordersX`).
 */

/**
 * True when `granted` equals `required` or is its ancestor on whole `:` segments.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.3
 */
export function scopeSatisfies(granted: string, required: string): boolean {
  return granted === required || (required.length > granted.length && required.startsWith(granted) && required[granted.length] === ':');
}

/**
 * True when some granted scope satisfies `required`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.3
 */
export function isScopeGranted(granted: readonly string[], required: string): boolean {
  return granted.some((g) => scopeSatisfies(g, required));
}

/**
 * What a request needs: every scope of `allOf` and at least one of `anyOf` (when non-empty).
 * A plain array means all-of.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export type ScopeRequirement = readonly string[] | { allOf?: readonly string[]; anyOf?: readonly string[] };

/**
 * Checks a requirement; returns undefined when satisfied, else the scope string to put in the
 * `insufficient_scope` challenge (the missing all-of scopes, or the any-of alternatives).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function unmetScope(granted: readonly string[], requirement: ScopeRequirement | undefined): string | undefined {
  if (requirement === undefined) return undefined;
  const allOf = isScopeList(requirement) ? requirement : (requirement.allOf ?? []);
  const anyOf = isScopeList(requirement) ? [] : (requirement.anyOf ?? []);
  const missing = allOf.filter((s) => !isScopeGranted(granted, s));
  if (missing.length > 0) return allOf.join(' ');
  if (anyOf.length > 0 && !anyOf.some((s) => isScopeGranted(granted, s))) return anyOf.join(' ');
  return undefined;
}

function isScopeList(requirement: ScopeRequirement): requirement is readonly string[] {
  return Array.isArray(requirement);
}

/**
 * Splits an RFC 6749 `scope` value into its tokens.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-3.3
 */
export function parseScopeClaim(value: unknown): string[] {
  if (typeof value !== 'string') return [];
  return value.split(' ').filter((s) => s !== '');
}
