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
}
