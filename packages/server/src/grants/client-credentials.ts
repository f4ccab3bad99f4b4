import type { AccessTokenService } from '../tokens/access-token.js';
import type { ResourceCatalog } from '../cache/resource-catalog.js';
import type { GrantHandler, TokenResponse } from './grant-handler.js';
import { accessTokenLifetime, resolveTokenTarget } from './token-target.js';

export interface ClientCredentialsDeps {
  catalog: ResourceCatalog;
  accessTokens: AccessTokenService;
  defaultAudience: string;
  accessTokenTtl: number;
  maxAccessTokenTtl: number;
}

/**
 * RFC 6749 §4.4 client credentials: the client acts on its own behalf, so `sub` is its client_id.
 * No refresh token: §4.4.3 "A refresh token SHOULD NOT be included."
 */
export function createClientCredentialsGrant(deps: ClientCredentialsDeps): GrantHandler {
  return {
    grantType: 'client_credentials',
    parameters: new Set(['scope', 'resource']),
    repeatable: new Set(['resource']),
    // §4.4: "The client credentials grant type MUST only be used by confidential clients."
    allowsPublicClients: false,
    async handle({ client, params, now }): Promise<TokenResponse> {
      const target = await resolveTokenTarget(params, client, deps.catalog, deps.defaultAudience);
      const ttl = accessTokenLifetime(client, target.resource, { ttl: deps.accessTokenTtl, max: deps.maxAccessTokenTtl });
      const issued = await deps.accessTokens.issue({
        client,
        subject: client.clientId,
        audience: target.audience,
        scope: target.scope,
        format: target.resource?.accessTokenFormat ?? 'jwt',
        ttl,
        now,
      });
      const response: TokenResponse = { access_token: issued.token, token_type: 'Bearer', expires_in: ttl };
      // RFC 6749 §5.1: scope is "OPTIONAL, if identical to the scope requested by the client;
      // otherwise, REQUIRED." Gatehouse always returns it when there is one.
      if (target.scope.length > 0) response.scope = target.scope.join(' ');
      return response;
    },
  };
}
