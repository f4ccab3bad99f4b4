/**
 * Table shapes. Times are seconds since the epoch (bigint in PostgreSQL, parsed as numbers);
 * booleans are 0/1 integers so one implementation serves SQLite and PostgreSQL; lists are JSON text.
 */
export interface ClientTable {
  client_id: string;
  client_name: string | null;
  owner: string | null;
  grant_types: string;
  redirect_uris: string;
  scope: string;
  token_endpoint_auth_method: string;
  jwks: string | null;
  jwks_uri: string | null;
  contacts: string;
  access_token_ttl: number | null;
  disabled: number;
  dynamically_registered: number;
  registration_token_hash: string | null;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
  first_party: number;
  post_logout_redirect_uris: string;
  token_endpoint_auth_signing_alg: string | null;
  id_token_signed_response_alg: string | null;
  always_issue_refresh_token: number;
}

export interface ClientSecretTable {
  client_id: string;
  secret_hash: string;
  created_at: number;
  /** Null while current; set when a rotation gives the old secret an overlap window. */
  expires_at: number | null;
}

export interface ResourceTable {
  identifier: string;
  name: string;
  access_token_ttl: number | null;
  access_token_format: string;
  /** The client that represents this API (for introspection restrictions). */
  client_id: string | null;
  created_at: number;
}

export interface ResourceScopeTable {
  resource: string;
  name: string;
  description: string | null;
}

export interface SigningKeyTable {
  kid: string;
  purpose: string;
  alg: string;
  public_jwk: string;
  private_key: string;
  created_at: number;
  activates_at: number;
  retires_at: number | null;
  expires_at: number | null;
}

export interface InitialAccessTokenTable {
  token_hash: string;
  description: string | null;
  scope: string;
  created_at: number;
  expires_at: number;
  max_uses: number | null;
  uses: number;
}

export interface RevokedAccessTokenTable {
  jti: string;
  expires_at: number;
}

export interface UsedAssertionTable {
  id_hash: string;
  expires_at: number;
}

export interface OpaqueAccessTokenTable {
  token_hash: string;
  jti: string;
  client_id: string;
  subject: string;
  audience: string;
  scope: string;
  issued_at: number;
  expires_at: number;
  revoked: number;
  family_id: string | null;
}

export interface LockTable {
  name: string;
  holder: string | null;
  until: number;
}

export interface GenerationTable {
  name: string;
  value: number;
}

// ---- users and browser sessions (0003-users) ----
export interface UserTable {
  user_id: string;
  username: string;
  /** NFKC + lowercase of the username: what lookups and uniqueness use. */
  username_key: string;
  email: string | null;
  email_verified: number;
  name: string | null;
  /** argon2id PHC string; null when the user cannot sign in with a password. */
  password_hash: string | null;
  disabled: number;
  created_at: number;
  updated_at: number;
}

export interface BrowserSessionTable {
  /** SHA-256 (base64url) of the cookie value, which is never stored. */
  session_hash: string;
  /** Public session id: the OpenID Connect `sid` claim. */
  sid: string;
  user_id: string;
  auth_time: number;
  /** JSON list, e.g. ["pwd"]. */
  amr: string;
  acr: string | null;
  created_at: number;
  last_seen_at: number;
  /** Absolute end. */
  expires_at: number;
}

export interface LoginThrottleTable {
  /** SHA-256 (base64url) of "user:<username_key>" or "ip:<address>". */
  key_hash: string;
  failures: number;
  last_failure_at: number;
  /** 0 when not blocked. */
  blocked_until: number;
}
// ---- end users and browser sessions ----

// ---- delegated authorization (0004-authorization) ----
export interface InteractionTable {
  interaction_id: string;
  binding_hash: string;
  request: string;
  created_at: number;
  expires_at: number;
}

export interface GrantTable {
  grant_id: string;
  user_id: string;
  client_id: string;
  scope: string;
  resources: string;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
}

/** The columns codes and refresh tokens share: what the user delegated, and how they signed in. */
export interface DelegationColumns {
  client_id: string;
  user_id: string;
  grant_id: string;
  scope: string;
  resources: string;
  sid: string | null;
  auth_time: number;
  acr: string | null;
  amr: string;
}

export interface AuthorizationCodeTable extends DelegationColumns {
  code_hash: string;
  redirect_uri: string;
  redirect_uri_sent: number;
  code_challenge: string;
  nonce: string | null;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
  family_id: string | null;
  access_token_jti: string | null;
  access_token_expires_at: number | null;
}

export interface TokenFamilyTable {
  family_id: string;
  grant_id: string;
  client_id: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface RefreshTokenTable extends DelegationColumns {
  token_hash: string;
  family_id: string;
  created_at: number;
  expires_at: number;
  idle_expires_at: number;
  rotated_at: number | null;
  revoked: number;
}

export interface DeviceCodeTable {
  device_code_hash: string;
  /** HMAC of the user code's first half while the request is pending; null once decided. */
  selector_hash: string | null;
  /** HMAC of the whole user code while the request is pending (unique); null once decided. */
  user_code_hash: string | null;
  client_id: string;
  scope: string;
  resources: string;
  status: string;
  failed_attempts: number;
  poll_interval: number;
  last_polled_at: number | null;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  user_id: string | null;
  grant_id: string | null;
  sid: string | null;
  auth_time: number | null;
  acr: string | null;
  amr: string | null;
}

export interface RateLimitCounterTable {
  counter_key: string;
  hits: number;
  expires_at: number;
}

export interface Database {
  clients: ClientTable;
  client_secrets: ClientSecretTable;
  resources: ResourceTable;
  resource_scopes: ResourceScopeTable;
  signing_keys: SigningKeyTable;
  initial_access_tokens: InitialAccessTokenTable;
  revoked_access_tokens: RevokedAccessTokenTable;
  used_assertions: UsedAssertionTable;
  opaque_access_tokens: OpaqueAccessTokenTable;
  locks: LockTable;
  generations: GenerationTable;
  users: UserTable;
  browser_sessions: BrowserSessionTable;
  login_throttle: LoginThrottleTable;
  interactions: InteractionTable;
  grants: GrantTable;
  authorization_codes: AuthorizationCodeTable;
  token_families: TokenFamilyTable;
  refresh_tokens: RefreshTokenTable;
  device_codes: DeviceCodeTable;
  rate_limit_counters: RateLimitCounterTable;
}
