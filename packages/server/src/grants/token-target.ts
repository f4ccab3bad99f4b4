import { InvalidScopeError, InvalidTargetError } from '../errors.js';
import type { FormParams } from '../protocol/form.js';
import { isValidResourceIndicator } from '../protocol/resource-indicator.js';
import { parseScope } from '../protocol/scope.js';
import { decideTokenTarget } from '../protocol/token-target.js';
import type { Client, Resource } from '../model.js';
import type { ResourceCatalog } from '../cache/resource-catalog.js';

export interface ResolvedTarget {
  audience: string;
  resource: Resource | undefined;
  scope: string[];
}

/**
 * Reads `scope` and `resource`, looks up what the pure decision needs in the resource catalog,
 * and applies it. Shared by every grant that mints an access token.
 */
export async function resolveTokenTarget(
  params: FormParams,
  client: Client,
  catalog: ResourceCatalog,
  defaultAudience: string,
): Promise<ResolvedTarget> {
  const scopeParam = params.get('scope');
  const requested = scopeParam === undefined ? null : parseScope(scopeParam);
  if (requested === null && scopeParam !== undefined) throw new InvalidScopeError('scope is malformed');
  const resourceParams = params.getAll('resource');
  // RFC 8707 §2: the server may refuse a combination it does not support. Gatehouse issues
  // audience-restricted tokens: one resource, one audience.
  if (resourceParams.length > 1) throw new InvalidTargetError('one resource per token request');
  const resourceParam = resourceParams[0] ?? null;
  if (resourceParam !== null && !isValidResourceIndicator(resourceParam)) {
    throw new InvalidTargetError('resource must be an absolute URI without a fragment');
  }
  const { resources, owners } = await catalog.snapshot();
  const resource = resourceParam === null ? undefined : resources.get(resourceParam);
  const decision = decideTokenTarget({
    clientScopes: client.scope,
    requested,
    resourceParam,
    resource: resource && { identifier: resource.identifier, scopes: resource.scopes.map((s) => s.name) },
    owners,
    defaultAudience,
  });
  if (!decision.ok) {
    throw decision.error === 'invalid_scope' ? new InvalidScopeError(decision.description) : new InvalidTargetError(decision.description);
  }
  const target = decision.resource === null ? undefined : resources.get(decision.resource);
  return { audience: decision.audience, resource: target, scope: decision.scope };
}

/** Lifetime: the shorter of the client's and the resource's, else the default; never above the cap. */
export function accessTokenLifetime(client: Client, resource: Resource | undefined, defaults: { ttl: number; max: number }): number {
  const candidates = [client.accessTokenTtl, resource?.accessTokenTtl].filter((v): v is number => typeof v === 'number' && v > 0);
  const ttl = candidates.length > 0 ? Math.min(...candidates) : defaults.ttl;
  return Math.min(ttl, defaults.max);
}
