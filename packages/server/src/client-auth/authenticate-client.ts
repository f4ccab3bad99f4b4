import { InvalidClientError, InvalidRequestError } from '../errors.js';
import { clientSecretBasic } from './client-secret-basic.js';
import { clientSecretPost } from './client-secret-post.js';
import { noClientAuthentication } from './none.js';
import { privateKeyJwt } from './private-key-jwt.js';
import type { AuthenticatedClient, ClientAuthDeps, ClientAuthMethod, ClientAuthRequest } from './types.js';

const CREDENTIAL_METHODS: readonly ClientAuthMethod[] = [clientSecretBasic, clientSecretPost, privateKeyJwt];

export const SUPPORTED_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;

/**
 * Authenticates the client of a token, introspection or revocation request.
 *
 * RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
 */
export async function authenticateClient(
  request: ClientAuthRequest,
  deps: ClientAuthDeps,
  now: number,
  options: { allowPublic: boolean },
): Promise<AuthenticatedClient> {
  const present = CREDENTIAL_METHODS.filter((m) => m.present(request));
  if (present.length > 1) throw new InvalidRequestError('use exactly one client authentication method');
  const method = present[0];
  if (method !== undefined) return method.authenticate(request, deps, now);
  if (options.allowPublic && noClientAuthentication.present(request)) return noClientAuthentication.authenticate(request, deps, now);
  throw new InvalidClientError('client authentication is required');
}
