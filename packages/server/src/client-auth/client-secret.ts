import type { InvalidClientError } from '../errors.js';
import { digestsEqual, sha256 } from '../tokens/random.js';
import { validSecretHashes } from '../storage/repositories/client-repository.js';
import type { AuthenticatedClient, ClientAuthDeps } from './types.js';
import type { TokenEndpointAuthMethod } from '../model.js';

// A digest compared against when the client is unknown, so both failures cost the same.
const DUMMY_DIGEST = sha256('gatehouse: no such client');

/**
 * Shared by client_secret_basic and client_secret_post: looks the client up and compares the
 * presented secret's SHA-256 digest with every valid digest in constant time. An unknown client,
 * a disabled client, another registered method and a wrong secret all give the same error.
 */
export async function verifyClientSecret(
  clientId: string,
  secret: string,
  method: TokenEndpointAuthMethod,
  deps: ClientAuthDeps,
  now: number,
  failure: () => InvalidClientError,
): Promise<AuthenticatedClient> {
  const found = await deps.clients.loadClientCredentials(clientId);
  const presented = sha256(secret);
  let match = false;
  for (const digest of found === undefined ? [DUMMY_DIGEST] : validSecretHashes(found, now)) {
    if (digestsEqual(presented, digest)) match = true;
  }
  if (!found || !match || found.client.disabled || found.client.tokenEndpointAuthMethod !== method) throw failure();
  return { client: found.client, method };
}
