import { InvalidGrantError, InvalidRequestError } from '../errors.js';
import { verifyCodeVerifier } from '../protocol/pkce.js';
import type { AuthorizationCodeRepository } from '../storage/repositories/authorization-code-repository.js';
import { sha256 } from '../tokens/random.js';
import { mintNewLineage, readResourceParam, revokeLineage, unlessGrantRevoked, type LineageDeps } from './delegated-tokens.js';
import type { GrantHandler, TokenResponse } from './grant-handler.js';

export interface AuthorizationCodeDeps extends LineageDeps {
  codes: AuthorizationCodeRepository;
}

/** RFC 6749 §4.1.3 access token request with an authorization code, PKCE-verified (RFC 7636 §4.5). */
export function createAuthorizationCodeGrant(deps: AuthorizationCodeDeps): GrantHandler {
  return {
    grantType: 'authorization_code',
    parameters: new Set(['code', 'redirect_uri', 'code_verifier', 'resource', 'client_id']),
    repeatable: new Set(['resource']),
    allowsPublicClients: true,
    async handle({ client, params, now }): Promise<TokenResponse> {
      const code = params.get('code');
      // RFC 6749 §4.1.3: "code REQUIRED. The authorization code received from the authorization server."
      if (code === undefined) throw new InvalidRequestError('code is required');
      const verifier = params.get('code_verifier');
      // RFC 7636 §4.5: "code_verifier REQUIRED. Code verifier".
      if (verifier === undefined) throw new InvalidRequestError('code_verifier is required');
      const resource = readResourceParam(params);
      const codeHash = sha256(code);
      const stored = await deps.codes.findAuthorizationCode(codeHash);
      // RFC 6749 §4.1.3: the server MUST "ensure that the authorization code was issued to the
      // authenticated confidential client, or if the client is public, ensure that the code was
      // issued to "client_id" in the request".
      if (stored === undefined || stored.clientId !== client.clientId) throw new InvalidGrantError('the authorization code is not valid');
      // RFC 6749 §4.1.3: "ensure that the "redirect_uri" parameter is present if the
      // "redirect_uri" parameter was included in the initial authorization request [...], and if
      // included ensure that their values are identical."
      const redirectUri = params.get('redirect_uri');
      if (redirectUri === undefined ? stored.redirectUriSent : redirectUri !== stored.redirectUri) {
        throw new InvalidGrantError('redirect_uri does not match the authorization request');
      }
      // RFC 7636 §4.6: "If the values are not equal, an error response indicating "invalid_grant"
      // as described in Section 4.1.2.1 of [RFC6749] MUST be returned." Nothing is revoked: this
      // request did not prove it is the rightful client.
      if (!verifyCodeVerifier(verifier, stored.codeChallenge)) throw new InvalidGrantError('code_verifier does not match the code challenge');
      if (stored.consumedAt !== null) {
        await revokeWhatTheCodeIssued(deps, codeHash, now);
        throw new InvalidGrantError('the authorization code was already used');
      }
      if (stored.expiresAt <= now) throw new InvalidGrantError('the authorization code has expired');
      if (!(await deps.isUserActive(stored.userId))) throw new InvalidGrantError('the user can no longer sign in');

      const { lineage, response } = await mintNewLineage(deps, { client, delegation: stored, resource, nonce: stored.nonce, now });
      const result = await unlessGrantRevoked(deps.codes.redeemAuthorizationCode(codeHash, now, lineage));
      if (result === 'already_used') {
        // Lost a race with another redemption of the same code, or it expired meanwhile.
        await revokeWhatTheCodeIssued(deps, codeHash, now);
        throw new InvalidGrantError('the authorization code was already used');
      }
      // The tokens minted above become valid only now that their family is recorded.
      deps.grantUsage.record(stored.grantId, now);
      return response;
    },
  };
}

/**
 * RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization server
 * MUST deny the request and SHOULD revoke (when possible) all tokens previously issued based on
 * that authorization code."
 */
async function revokeWhatTheCodeIssued(deps: AuthorizationCodeDeps, codeHash: string, now: number): Promise<void> {
  const code = await deps.codes.findAuthorizationCode(codeHash);
  if (code !== undefined) await revokeLineage(deps, code, now);
}
