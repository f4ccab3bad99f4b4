import { randomBytes } from 'node:crypto';
import type { ResourceCatalog } from '../cache/resource-catalog.js';
import { InvalidGrantError, InvalidScopeError, InvalidTargetError } from '../errors.js';
import type { Client, Delegation } from '../model.js';
import { IDENTITY_SCOPES } from '../protocol/authorization-request.js';
import type { FormParams } from '../protocol/form.js';
import { isValidResourceIndicator } from '../protocol/resource-indicator.js';
import { isScopeGranted, parseScope } from '../protocol/scope.js';
import { decideTokenTarget } from '../protocol/token-target.js';
import type { AccessTokenService } from '../tokens/access-token.js';
import type { IdTokenService } from '../tokens/id-token.js';
import { randomToken, sha256 } from '../tokens/random.js';
import type { AccessTokenRepository } from '../storage/repositories/access-token-repository.js';
import { GrantRevokedError, type NewLineage } from '../storage/repositories/lineage.js';
import type { RefreshTokenRepository } from '../storage/repositories/refresh-token-repository.js';
import type { TokenResponse } from './grant-handler.js';
import { accessTokenLifetime } from './token-target.js';

/** What minting tokens for a user (code and refresh grants) needs. */
export interface DelegatedTokenDeps {
  issuer: string;
  catalog: ResourceCatalog;
  accessTokens: AccessTokenService;
  idTokens: IdTokenService;
  accessTokenTtl: number;
  maxAccessTokenTtl: number;
  /** Notes a grant's use (a redemption, a refresh): written behind, outside the grant's transaction. */
  grantUsage: { record(grantId: string, now: number): void };
}

export interface Authentication {
  authTime: number;
  acr: string | null;
  amr: string[];
  sid: string | null;
}

export interface DelegatedTokenRequest {
  client: Client;
  userId: string;
  /** Everything the user granted for this lineage. */
  grantedScope: readonly string[];
  grantedResources: readonly string[];
  /** A narrower scope asked for at the token endpoint (refresh), or null. */
  requestedScope: readonly string[] | null;
  /** The `resource` parameter of the token request, or null. */
  resource: string | null;
  familyId: string;
  authentication: Authentication;
  /** The ID token's nonce (code flow only). */
  nonce: string | null;
  now: number;
}

/** Reads the `resource` parameter of a token request (RFC 8707 §2.2): at most one, absolute, no fragment. */
export function readResourceParam(params: FormParams): string | null {
  const resources = params.getAll('resource');
  if (resources.length > 1) throw new InvalidTargetError('one resource per token request');
  const resource = resources[0] ?? null;
  if (resource !== null && !isValidResourceIndicator(resource)) throw new InvalidTargetError('resource must be an absolute URI without a fragment');
  return resource;
}

/** Reads the `scope` (narrowing) and `resource` parameters of a refresh request. */
export function readDelegatedParams(params: FormParams): { requestedScope: string[] | null; resource: string | null } {
  const scopeParam = params.get('scope');
  const requestedScope = scopeParam === undefined ? null : parseScope(scopeParam);
  if (scopeParam !== undefined && requestedScope === null) throw new InvalidScopeError('scope is malformed');
  return { requestedScope, resource: readResourceParam(params) };
}

/**
 * Mints the access token (and ID token when `openid` was granted) for a user's grant. The
 * audience follows the same rules as client credentials over the granted API scopes; identity
 * scopes ride along, and a token that carries `openid` for an API is also for the issuer
 * (userinfo).
 */
export async function mintDelegatedTokens(
  deps: DelegatedTokenDeps,
  req: DelegatedTokenRequest,
): Promise<{ response: TokenResponse; accessTokenJti: string; accessTokenExpiresAt: number }> {
  if (req.requestedScope !== null) {
    // RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted by the
    // resource owner, and if omitted is treated as equal to the scope originally granted".
    const wider = req.requestedScope.filter((s) => !isScopeGranted(req.grantedScope, s));
    if (wider.length > 0) throw new InvalidScopeError('the requested scope exceeds the granted scope');
  }
  const scope = req.requestedScope ?? req.grantedScope;
  const apiGranted = req.grantedScope.filter((s) => !IDENTITY_SCOPES.has(s));
  const apiRequested = scope.filter((s) => !IDENTITY_SCOPES.has(s));
  const identity = scope.filter((s) => IDENTITY_SCOPES.has(s) && s !== 'offline_access');

  // RFC 8707 §2.2: the resource of a token request must be one the grant covers.
  let resourceParam = req.resource;
  if (resourceParam !== null && req.grantedResources.length > 0 && !req.grantedResources.includes(resourceParam)) {
    throw new InvalidTargetError('the resource was not part of the authorization');
  }
  // A grant for one resource targets it by default, but only a token that carries API scopes:
  // RFC 6749 §6 "The requested scope MUST NOT include any scope not originally granted by the
  // resource owner" — narrowing is allowed, so a refresh narrowed to identity scopes (`openid`)
  // gets a token for userinfo alone instead of invalid_target for a resource it has no scope of.
  if (resourceParam === null && req.grantedResources.length === 1 && apiRequested.length > 0) resourceParam = req.grantedResources[0] ?? null;

  const { resources, owners } = await deps.catalog.snapshot();
  const resource = resourceParam === null ? undefined : resources.get(resourceParam);
  const decision = decideTokenTarget({
    clientScopes: apiGranted,
    requested: req.requestedScope === null && resourceParam === null ? null : apiRequested,
    resourceParam,
    resource: resource && { identifier: resource.identifier, scopes: resource.scopes.map((s) => s.name) },
    owners,
    defaultAudience: deps.issuer,
  });
  if (!decision.ok) {
    throw decision.error === 'invalid_scope' ? new InvalidScopeError(decision.description) : new InvalidTargetError(decision.description);
  }
  const target = decision.resource === null ? undefined : resources.get(decision.resource);
  const audience = target !== undefined && identity.includes('openid') ? [target.identifier, deps.issuer] : decision.audience;
  const tokenScope = [...identity, ...decision.scope];
  const ttl = accessTokenLifetime(req.client, target, { ttl: deps.accessTokenTtl, max: deps.maxAccessTokenTtl });
  const { authentication } = req;
  const issued = await deps.accessTokens.issue({
    client: req.client,
    subject: req.userId,
    audience,
    scope: tokenScope,
    format: target?.accessTokenFormat ?? 'jwt',
    ttl,
    now: req.now,
    familyId: req.familyId,
    authentication: { authTime: authentication.authTime, acr: authentication.acr, amr: authentication.amr },
  });
  const response: TokenResponse = { access_token: issued.token, token_type: 'Bearer', expires_in: ttl };
  if (tokenScope.length > 0) response.scope = tokenScope.join(' ');
  // OIDC Core §3.1.3.3: an ID token when the grant carries `openid`.
  if (scope.includes('openid')) {
    response.id_token = deps.idTokens.issue({
      clientId: req.client.clientId,
      subject: req.userId,
      nonce: req.nonce,
      authTime: authentication.authTime,
      sid: authentication.sid,
      acr: authentication.acr,
      amr: authentication.amr,
      accessToken: issued.token,
      now: req.now,
    });
  }
  return { response, accessTokenJti: issued.jti, accessTokenExpiresAt: issued.expiresAt };
}

/** What a first redemption (code or device code) needs beyond minting. */
export interface LineageDeps extends DelegatedTokenDeps {
  /** Whether the user may still act (exists, not disabled). */
  isUserActive(userId: string): Promise<boolean>;
  refreshTokens: RefreshTokenRepository;
  revokedAccessTokens: AccessTokenRepository;
  refreshTokenTtl: number;
  refreshTokenIdleTtl: number;
}

/**
 * The tokens of a first redemption: a new family, its access token (and ID token), and a refresh
 * token when the client may refresh and the user granted offline access (or the client is
 * configured to always receive one). Nothing is valid until the caller records `lineage` in the
 * transaction that consumes the code.
 */
export async function mintNewLineage(
  deps: LineageDeps,
  req: { client: Client; delegation: Delegation; resource: string | null; nonce: string | null; now: number },
): Promise<{ lineage: NewLineage; response: TokenResponse }> {
  const { client, delegation, now } = req;
  const familyId = randomBytes(16).toString('hex');
  const familyExpiresAt = now + deps.refreshTokenTtl;
  const authentication = { authTime: delegation.authTime, acr: delegation.acr, amr: delegation.amr, sid: delegation.sid };
  const minted = await mintDelegatedTokens(deps, {
    client,
    userId: delegation.userId,
    grantedScope: delegation.scope,
    grantedResources: delegation.resources,
    requestedScope: null,
    resource: req.resource,
    familyId,
    authentication,
    nonce: req.nonce,
    now,
  });
  const lineage: NewLineage = { familyId, familyExpiresAt, accessTokenJti: minted.accessTokenJti, accessTokenExpiresAt: minted.accessTokenExpiresAt };
  if (!client.grantTypes.includes('refresh_token') || !(delegation.scope.includes('offline_access') || client.alwaysIssueRefreshToken)) {
    return { lineage, response: minted.response };
  }
  const value = randomToken();
  lineage.refreshToken = {
    tokenHash: sha256(value),
    token: {
      clientId: delegation.clientId,
      userId: delegation.userId,
      grantId: delegation.grantId,
      scope: delegation.scope,
      resources: delegation.resources,
      ...authentication,
      familyId,
      createdAt: now,
      expiresAt: familyExpiresAt,
      idleExpiresAt: Math.min(familyExpiresAt, now + deps.refreshTokenIdleTtl),
      rotatedAt: null,
      revoked: false,
    },
  };
  return { lineage, response: { ...minted.response, refresh_token: value } };
}

/** Revokes what a code or device code issued: its token family and its first access token. */
export async function revokeLineage(
  deps: Pick<LineageDeps, 'refreshTokens' | 'revokedAccessTokens'>,
  issued: { familyId: string | null; accessTokenJti: string | null; accessTokenExpiresAt: number | null },
  now: number,
): Promise<void> {
  if (issued.familyId !== null) await deps.refreshTokens.revokeFamily(issued.familyId, now);
  if (issued.accessTokenJti !== null && issued.accessTokenExpiresAt !== null) {
    await deps.revokedAccessTokens.revokeAccessTokenId(issued.accessTokenJti, issued.accessTokenExpiresAt);
  }
}

/** A redemption's storage step, with a grant revoked meanwhile answered as invalid_grant. */
export async function unlessGrantRevoked<T>(redemption: Promise<T>): Promise<T> {
  try {
    return await redemption;
  } catch (err) {
    if (err instanceof GrantRevokedError) throw new InvalidGrantError('the authorization was revoked');
    throw err;
  }
}
