import { randomBytes } from 'node:crypto';
import type { Client, ClientInput, TokenEndpointAuthMethod } from '../model.js';
import type { ClientMetadata } from '../protocol/client-metadata.js';
import type { ClientRepository } from '../storage/repositories/client-repository.js';
import { randomToken, sha256 } from '../tokens/random.js';

/** Methods that authenticate with a server-generated shared secret. */
export function usesSecret(method: TokenEndpointAuthMethod): boolean {
  return method === 'client_secret_basic' || method === 'client_secret_post';
}

/** A server-assigned client_id: 128 random bits, hex (never starts with '-', safe on a command line). */
export function newClientId(): string {
  return randomBytes(16).toString('hex');
}

export function metadataToClientInput(clientId: string, metadata: ClientMetadata, dynamicallyRegistered: boolean): ClientInput {
  return {
    clientId,
    clientName: metadata.client_name,
    owner: metadata.owner,
    grantTypes: metadata.grant_types,
    redirectUris: metadata.redirect_uris,
    postLogoutRedirectUris: metadata.post_logout_redirect_uris,
    firstParty: metadata.first_party,
    alwaysIssueRefreshToken: metadata.always_issue_refresh_token,
    idTokenSignedResponseAlg: metadata.id_token_signed_response_alg,
    scope: metadata.scope,
    tokenEndpointAuthMethod: metadata.token_endpoint_auth_method,
    tokenEndpointAuthSigningAlg: metadata.token_endpoint_auth_signing_alg,
    jwks: metadata.jwks,
    jwksUri: metadata.jwks_uri,
    contacts: metadata.contacts,
    accessTokenTtl: metadata.access_token_ttl,
    dynamicallyRegistered,
  };
}

/** RFC 7591 §3.2.1 client information: the registered metadata, as the wire spells it. */
export function clientInformation(client: Client): Record<string, unknown> {
  const info: Record<string, unknown> = {
    client_id: client.clientId,
    client_id_issued_at: client.createdAt,
    grant_types: client.grantTypes,
    response_types: client.grantTypes.includes('authorization_code') ? ['code'] : [],
    redirect_uris: client.redirectUris,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    contacts: client.contacts,
  };
  if (client.postLogoutRedirectUris.length > 0) info.post_logout_redirect_uris = client.postLogoutRedirectUris;
  if (client.clientName !== null) info.client_name = client.clientName;
  if (client.scope.length > 0) info.scope = client.scope.join(' ');
  if (client.tokenEndpointAuthSigningAlg !== null) info.token_endpoint_auth_signing_alg = client.tokenEndpointAuthSigningAlg;
  if (client.idTokenSignedResponseAlg !== null) info.id_token_signed_response_alg = client.idTokenSignedResponseAlg;
  if (client.jwks !== null) info.jwks = client.jwks;
  if (client.jwksUri !== null) info.jwks_uri = client.jwksUri;
  // RFC 7591 §3.2.1: client_secret_expires_at is "REQUIRED if "client_secret" is issued";
  // 0 means it does not expire.
  if (usesSecret(client.tokenEndpointAuthMethod)) info.client_secret_expires_at = 0;
  return info;
}

export interface CreatedClient {
  client: Client;
  /** Shown once; only its SHA-256 digest is stored. */
  clientSecret?: string;
  /** RFC 7592 registration access token; shown once, stored as a digest. */
  registrationAccessToken?: string;
}

export async function createClient(
  clients: ClientRepository,
  metadata: ClientMetadata,
  now: number,
  options: { dynamicallyRegistered: boolean; registrationToken: boolean; initialAccessTokenHash?: string },
): Promise<CreatedClient> {
  const clientId = newClientId();
  const clientSecret = usesSecret(metadata.token_endpoint_auth_method) ? randomToken() : undefined;
  const registrationAccessToken = options.registrationToken ? randomToken() : undefined;
  const client = await clients.createClient(metadataToClientInput(clientId, metadata, options.dynamicallyRegistered), now, {
    secretHash: clientSecret === undefined ? null : sha256(clientSecret),
    registrationTokenHash: registrationAccessToken === undefined ? null : sha256(registrationAccessToken),
    ...(options.initialAccessTokenHash === undefined ? {} : { initialAccessTokenHash: options.initialAccessTokenHash }),
  });
  return {
    client,
    ...(clientSecret === undefined ? {} : { clientSecret }),
    ...(registrationAccessToken === undefined ? {} : { registrationAccessToken }),
  };
}

/** Issues a new secret; the old ones stay valid for `overlapSeconds`. Returns the new secret once. */
export async function rotateClientSecret(clients: ClientRepository, clientId: string, now: number, overlapSeconds: number): Promise<string | undefined> {
  const secret = randomToken();
  const rotated = await clients.rotateClientSecret(clientId, sha256(secret), now, overlapSeconds);
  return rotated ? secret : undefined;
}
