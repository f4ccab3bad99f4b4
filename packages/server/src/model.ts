import type { JSONWebKeySet } from 'jose';

/** RFC 7591 §2 token_endpoint_auth_method values Gatehouse implements. */
export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** Grant types this server implements today. */
export const GRANT_TYPES = ['client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export type AccessTokenFormat = 'jwt' | 'opaque';

export interface Client {
  clientId: string;
  clientName: string | null;
  owner: string | null;
  grantTypes: string[];
  redirectUris: string[];
  /** Scopes the client may be granted. */
  scope: string[];
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  jwks: JSONWebKeySet | null;
  jwksUri: string | null;
  contacts: string[];
  /** Per-client access-token lifetime in seconds; null means the default. */
  accessTokenTtl: number | null;
  disabled: boolean;
  dynamicallyRegistered: boolean;
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
}

/** What an administrator or a registration request sets; the rest is derived. */
export type ClientInput = Omit<Client, 'createdAt' | 'updatedAt' | 'lastUsedAt' | 'disabled'> & { disabled?: boolean };

export interface ClientSummary extends Client {
  /** Creation time of the newest secret; null for clients without secrets. */
  secretCreatedAt: number | null;
  activeSecrets: number;
}

export interface ResourceScope {
  name: string;
  description: string | null;
}

export interface Resource {
  /** Absolute URI used as the `aud` of tokens for this API (RFC 8707). */
  identifier: string;
  name: string;
  scopes: ResourceScope[];
  accessTokenTtl: number | null;
  accessTokenFormat: AccessTokenFormat;
  /** The client that represents this API, e.g. for introspection. */
  clientId: string | null;
  createdAt: number;
}

export type KeyPurpose = 'access_token' | 'id_token';

export interface StoredSigningKey {
  kid: string;
  purpose: KeyPurpose;
  alg: string;
  publicJwk: Record<string, unknown>;
  /** AES-256-GCM ciphertext of the PKCS#8 private key, see keys/key-encryption.ts. */
  encryptedPrivateKey: string;
  createdAt: number;
  /** The key signs from this time on (after its pre-publication period). */
  activatesAt: number;
  /** The key stops signing at this time; null while current. */
  retiresAt: number | null;
  /** The key leaves the JWKS at this time; null while current. */
  expiresAt: number | null;
}

export interface OpaqueAccessToken {
  jti: string;
  clientId: string;
  subject: string;
  audience: string[];
  scope: string[];
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

export interface InitialAccessToken {
  description: string | null;
  scope: string[];
  createdAt: number;
  expiresAt: number;
  maxUses: number | null;
}
