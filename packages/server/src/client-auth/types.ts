import type { Client, TokenEndpointAuthMethod } from '../model.js';
import type { FormParams } from '../protocol/form.js';
import type { AssertionRepository } from '../storage/repositories/assertion-repository.js';
import type { ClientLookup } from '../cache/client-cache.js';
import type { ClientKeyResolver } from './client-keys.js';

export interface ClientAuthRequest {
  authorization: string | undefined;
  params: FormParams;
}

/** Only what client authentication reads. */
export interface ClientAuthDeps {
  /** Clients and their secret digests (the in-memory cache in the server). */
  clients: ClientLookup;
  assertions: AssertionRepository;
  clientKeys: ClientKeyResolver;
  /** The issuer identifier: the only accepted `aud` of client assertions. */
  issuer: string;
  assertionMaxLifetime: number;
  clockTolerance: number;
}

export interface AuthenticatedClient {
  client: Client;
  method: TokenEndpointAuthMethod;
}

/** One token_endpoint_auth_method. */
export interface ClientAuthMethod {
  readonly name: TokenEndpointAuthMethod;
  /** Whether the request carries this method's credentials. */
  present(request: ClientAuthRequest): boolean;
  authenticate(request: ClientAuthRequest, deps: ClientAuthDeps, now: number): Promise<AuthenticatedClient>;
}
