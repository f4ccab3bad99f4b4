import type { JSONWebKeySet } from 'jose';

/** RFC 7591 §2 token_endpoint_auth_method values Gatehouse implements. */
export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** RFC 8628 §3.4: the grant_type of the device access token request. */
export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

/** Grant types this server implements today. */
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', DEVICE_CODE_GRANT_TYPE] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export type AccessTokenFormat = 'jwt' | 'opaque';

export interface Client {
  clientId: string;
  clientName: string | null;
  owner: string | null;
  grantTypes: string[];
  redirectUris: string[];
  /** OIDC RP-Initiated Logout: where the user may be sent after signing out (exact match). */
  postLogoutRedirectUris: string[];
  /** An application of the operator's own: users are not asked to consent. */
  firstParty: boolean;
  /** A refresh token with every code redemption, even without offline_access (administrators only). */
  alwaysIssueRefreshToken: boolean;
  /** OIDC: the ID token algorithm the client expects (one of the server's). */
  idTokenSignedResponseAlg: string | null;
  /** Scopes the client may be granted. */
  scope: string[];
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  /** The only algorithm accepted for this client's assertions (private_key_jwt); null: any asymmetric one. */
  tokenEndpointAuthSigningAlg: string | null;
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
  /** The token family of a delegated (user) token; null for client credentials. */
  familyId: string | null;
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

/** Response modes of the authorization endpoint (OAuth 2.0 Multiple Response Types, Form Post). */
export type ResponseMode = 'query' | 'form_post';

/** A validated authorization request, kept while the user signs in and consents. */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  /** Whether the request named redirect_uri (RFC 6749 §4.1.3: then the token request must too). */
  redirectUriSent: boolean;
  scope: string[];
  state: string | null;
  nonce: string | null;
  codeChallenge: string;
  responseMode: ResponseMode;
  resources: string[];
  prompt: string[];
  maxAge: number | null;
  loginHint: string | null;
  acrValues: string[];
  uiLocales: string | null;
}

/** Consent: what a user let a client do, durable until revoked. */
export interface Grant {
  grantId: string;
  userId: string;
  clientId: string;
  scope: string[];
  resources: string[];
  createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
}

/** What a user delegated to a client, and how they signed in: carried by codes and refresh tokens. */
export interface Delegation {
  clientId: string;
  userId: string;
  grantId: string;
  scope: string[];
  resources: string[];
  /** The browser session (OIDC `sid`). */
  sid: string | null;
  authTime: number;
  acr: string | null;
  amr: string[];
}

/** What an authorization code is bound to (RFC 6749 §4.1.2, OIDC Core §3.1.2.5). */
export interface AuthorizationCode extends Delegation {
  redirectUri: string;
  redirectUriSent: boolean;
  codeChallenge: string;
  nonce: string | null;
  createdAt: number;
  expiresAt: number;
  consumedAt: number | null;
  familyId: string | null;
  accessTokenJti: string | null;
  accessTokenExpiresAt: number | null;
}

export interface RefreshToken extends Delegation {
  familyId: string;
  createdAt: number;
  /** End of the whole lineage (absolute lifetime). */
  expiresAt: number;
  /** End if unused (idle lifetime). */
  idleExpiresAt: number;
  rotatedAt: number | null;
  revoked: boolean;
}

/** Where a device authorization request (RFC 8628) stands. */
export type DeviceAuthorizationStatus = 'pending' | 'approved' | 'denied' | 'locked' | 'consumed';

/** Who approved a device authorization, and how they signed in. */
export type DeviceApproval = Omit<Delegation, 'clientId' | 'scope' | 'resources'>;

/** A device authorization request (RFC 8628 §3.1), from the device's request to its redemption. */
export interface DeviceAuthorization {
  clientId: string;
  scope: string[];
  resources: string[];
  status: DeviceAuthorizationStatus;
  /** Wrong user codes typed against this request's selector. */
  failedAttempts: number;
  /** RFC 8628 §3.5: the polling interval, grown by every slow_down. */
  pollInterval: number;
  expiresAt: number;
  /** Set when the user approved. */
  approval: DeviceApproval | null;
}
