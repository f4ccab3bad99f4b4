import { InvalidGrantError, InvalidRequestError } from '../errors.js';
import type { RefreshToken } from '../model.js';
import type { RefreshTokenRepository } from '../storage/repositories/refresh-token-repository.js';
import { randomToken, sha256 } from '../tokens/random.js';
import { mintDelegatedTokens, readDelegatedParams, type DelegatedTokenDeps } from './delegated-tokens.js';
import type { GrantHandler, TokenResponse } from './grant-handler.js';

export interface RefreshTokenDeps extends DelegatedTokenDeps {
  refreshTokens: RefreshTokenRepository;
  refreshTokenIdleTtl: number;
  /** Reuse of a rotated token inside this many seconds succeeds without revocation (0: never). */
  gracePeriod: number;
}

/**
 * RFC 6749 §6 refreshing an access token, with rotation on every use (OAuth 2.1 §4.3.1, RFC 9700
 * §4.14.2): presenting a token that was already rotated revokes its whole family.
 */
export function createRefreshTokenGrant(deps: RefreshTokenDeps): GrantHandler {
  return {
    grantType: 'refresh_token',
    parameters: new Set(['refresh_token', 'scope', 'resource', 'client_id']),
    repeatable: new Set(['resource']),
    allowsPublicClients: true,
    async handle({ client, params, now }): Promise<TokenResponse> {
      const presented = params.get('refresh_token');
      // RFC 6749 §6: "refresh_token REQUIRED. The refresh token issued to the client."
      if (presented === undefined) throw new InvalidRequestError('refresh_token is required');
      const { requestedScope, resource } = readDelegatedParams(params);
      const tokenHash = sha256(presented);
      const state = await deps.refreshTokens.findRefreshToken(tokenHash);
      // RFC 6749 §6: the server MUST "validate the refresh token" and that it "was issued to the
      // authenticated client". A token of another client is unknown to this one.
      if (state === undefined || state.token.clientId !== client.clientId) throw new InvalidGrantError('the refresh token is not valid');
      const { token } = state;
      if (state.familyRevoked || !state.grantActive) throw new InvalidGrantError('the refresh token was revoked');
      if (token.expiresAt <= now || token.idleExpiresAt <= now) throw new InvalidGrantError('the refresh token has expired');
      if (!state.userActive) throw new InvalidGrantError('the user can no longer sign in');

      const reuse = token.rotatedAt !== null || token.revoked;
      const withinGrace = token.rotatedAt !== null && !token.revoked && deps.gracePeriod > 0 && now - token.rotatedAt <= deps.gracePeriod;
      if (reuse && !withinGrace) {
        // RFC 9700 §4.14.2: "If a refresh token is compromised and subsequently used by both the
        // attacker and the legitimate client, one of them will present an invalidated refresh
        // token, which will inform the authorization server of the breach. The authorization
        // server cannot determine which party submitted the invalid refresh token, but it will
        // revoke the active refresh token."
        await deps.refreshTokens.revokeFamily(token.familyId, now);
        throw new InvalidGrantError('the refresh token was already used');
      }

      const minted = await mintDelegatedTokens(deps, {
        client,
        userId: token.userId,
        grantedScope: token.scope,
        grantedResources: token.resources,
        requestedScope,
        resource,
        familyId: token.familyId,
        authentication: { authTime: token.authTime, acr: token.acr, amr: token.amr, sid: token.sid },
        nonce: null,
        now,
      });
      const value = randomToken();
      // The successor keeps the grant's full scope; a narrower request narrows the access token only.
      const next: RefreshToken = {
        ...token,
        createdAt: now,
        idleExpiresAt: Math.min(token.expiresAt, now + deps.refreshTokenIdleTtl),
        rotatedAt: null,
        revoked: false,
      };
      const successor = { tokenHash: sha256(value), token: next };
      const stored = withinGrace
        ? await deps.refreshTokens.replaceLiveRefreshToken(token.familyId, successor, now)
        : await deps.refreshTokens.rotateRefreshToken(tokenHash, successor, now);
      if (!stored) {
        // Another request rotated this token first: with one token, never two live lineages.
        await deps.refreshTokens.revokeFamily(token.familyId, now);
        throw new InvalidGrantError('the refresh token was already used');
      }
      deps.grantUsage.record(token.grantId, now);
      return { ...minted.response, refresh_token: value };
    },
  };
}
