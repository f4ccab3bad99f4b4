import { IDENTITY_SCOPES } from './authorization-request.js';
import { isScopeGranted } from './scope.js';

/**
 * Which audience a token is for and which scopes it carries (RFC 8707 with RFC 6749 §3.3).
 * Pure: the caller fetches the requested resource and the owners of the candidate scope names.
 *
 * Gatehouse rules:
 * - a scope belongs to at most one resource (its owner), directly or through an ancestor name;
 * - with `resource`, every scope must be granted to the client and owned by that resource, and
 *   without `scope` the token carries the client's scopes owned by it; a token for a resource
 *   carries at least one of its scopes;
 * - without `resource`, the audience is the one resource owning the scopes, or the configured
 *   default audience when none owns them; scopes owned by several resources need `resource`.
 */

export interface TargetResource {
  identifier: string;
  scopes: readonly string[];
}

export interface TargetInput {
  clientScopes: readonly string[];
  /** Parsed `scope` parameter; null when absent. */
  requested: readonly string[] | null;
  /** The `resource` parameter; null when absent. */
  resourceParam: string | null;
  /** The resource named by `resourceParam`, when it exists. */
  resource: TargetResource | undefined;
  /** Owner resource of scope names (looked up for every scope and its ancestors). */
  owners: ReadonlyMap<string, string>;
  defaultAudience: string;
}

export type TargetDecision =
  | { ok: true; audience: string; resource: string | null; scope: string[] }
  | { ok: false; error: 'invalid_scope' | 'invalid_target'; description: string };

/** A scope name and each of its ancestors, most specific first: `a:b:c`, `a:b`, `a`. */
export function scopeLineage(scope: string): string[] {
  const out = [scope];
  for (let i = scope.lastIndexOf(':'); i > 0; i = scope.lastIndexOf(':', i - 1)) out.push(scope.slice(0, i));
  return out;
}

export function ownerOf(scope: string, owners: ReadonlyMap<string, string>): string | undefined {
  for (const name of scopeLineage(scope)) {
    const owner = owners.get(name);
    if (owner !== undefined) return owner;
  }
  return undefined;
}

/** Scope names quoted back in an error description: a few, each bounded, never the whole input. */
export function quoteScopes(scopes: readonly string[]): string {
  const shown = scopes.slice(0, 5).map((s) => (s.length > 64 ? `${s.slice(0, 64)}…` : s));
  return scopes.length > 5 ? `${shown.join(' ')} (and ${scopes.length - 5} more)` : shown.join(' ');
}

export function decideTokenTarget(input: TargetInput): TargetDecision {
  const { clientScopes, requested, owners } = input;
  if (requested !== null) {
    // RFC 6749 §5.2 invalid_scope: "The requested scope is invalid, unknown, malformed, or
    // exceeds the scope granted by the resource owner."
    const denied = requested.filter((s) => !isScopeGranted(clientScopes, s));
    if (denied.length > 0) return { ok: false, error: 'invalid_scope', description: `scope not allowed for this client: ${quoteScopes(denied)}` };
  }

  if (input.resourceParam !== null) {
    const resource = input.resource;
    // RFC 8707 §2: invalid_target "The requested resource is invalid, missing, unknown, or malformed."
    if (resource === undefined) return { ok: false, error: 'invalid_target', description: 'unknown resource' };
    const id = resource.identifier;
    let scope: string[];
    if (requested !== null) {
      const foreign = requested.filter((s) => ownerOf(s, owners) !== id);
      if (foreign.length > 0) return { ok: false, error: 'invalid_scope', description: `scope not defined by this resource: ${quoteScopes(foreign)}` };
      scope = [...requested];
    } else {
      const own = clientScopes.filter((s) => ownerOf(s, owners) === id);
      const granted = resource.scopes.filter((s) => isScopeGranted(clientScopes, s));
      scope = [...new Set([...own, ...granted])];
    }
    if (scope.length === 0) return { ok: false, error: 'invalid_target', description: 'the client holds no scope of this resource' };
    return { ok: true, audience: id, resource: id, scope };
  }

  const scope = requested !== null ? [...requested] : [...clientScopes];
  const audiences = new Set<string>();
  for (const s of scope) {
    const owner = ownerOf(s, owners);
    if (owner !== undefined) audiences.add(owner);
  }
  if (audiences.size > 1) {
    return { ok: false, error: 'invalid_target', description: 'the scopes belong to several resources; name one with the resource parameter' };
  }
  const [only] = audiences;
  return only === undefined
    ? { ok: true, audience: input.defaultAudience, resource: null, scope }
    : { ok: true, audience: only, resource: only, scope };
}

/**
 * What a user is asked to approve (authorization and device authorization requests), against
 * the resource catalog: RFC 8707 §2 every requested resource must exist; Gatehouse rule: every
 * API scope must belong to a requested resource (or, without `resource`, to at most one).
 */
export function checkDelegationTarget(
  scope: readonly string[],
  requestedResources: readonly string[],
  catalog: { resources: ReadonlyMap<string, unknown>; owners: ReadonlyMap<string, string> },
): { error: 'invalid_scope' | 'invalid_target'; description: string } | undefined {
  const { resources, owners } = catalog;
  for (const r of requestedResources) if (!resources.has(r)) return { error: 'invalid_target', description: 'unknown resource' };
  const apiScopes = scope.filter((s) => !IDENTITY_SCOPES.has(s));
  if (requestedResources.length > 0) {
    for (const s of apiScopes) {
      const owner = ownerOf(s, owners);
      if (owner === undefined || !requestedResources.includes(owner)) return { error: 'invalid_scope', description: 'a scope does not belong to a requested resource' };
    }
    return undefined;
  }
  const scopeOwners = new Set(apiScopes.map((s) => ownerOf(s, owners)).filter((o): o is string => o !== undefined));
  if (scopeOwners.size > 1) return { error: 'invalid_target', description: 'the scopes belong to several resources; name them with the resource parameter' };
  return undefined;
}
