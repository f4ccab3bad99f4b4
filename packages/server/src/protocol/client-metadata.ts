import type { JSONWebKeySet } from 'jose';
import { CLIENT_ASSERTION_ALGS } from '../config/schema.js';
import { DEVICE_CODE_GRANT_TYPE, type TokenEndpointAuthMethod } from '../model.js';
import { checkRedirectUri } from './redirect-uri.js';
import { isScopeGranted, parseScope } from './scope.js';
import { quoteScopes } from './token-target.js';

/**
 * RFC 7591 §2 client metadata validation. Pure: the policy says what this caller (an
 * administrator, or a dynamic registration) may ask for.
 */

export interface MetadataPolicy {
  allowedGrantTypes: readonly string[];
  allowedAuthMethods: readonly TokenEndpointAuthMethod[];
  /** Scopes the client may be given; null means any well-formed scope (administrators). */
  allowedScopes: readonly string[] | null;
  /** Whether Gatehouse's administrative members (`owner`, `access_token_ttl`, `first_party`, `always_issue_refresh_token`) are honoured. */
  administrative: boolean;
  /** Algorithms the server signs ID tokens with. */
  idTokenSigningAlgs: readonly string[];
  maxAccessTokenTtl: number;
}

export interface ClientMetadata {
  client_name: string | null;
  grant_types: string[];
  response_types: string[];
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  scope: string[];
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  token_endpoint_auth_signing_alg: string | null;
  jwks: JSONWebKeySet | null;
  jwks_uri: string | null;
  contacts: string[];
  owner: string | null;
  access_token_ttl: number | null;
  /** Administrative: users of a first-party client are not asked to consent. */
  first_party: boolean;
  /** Administrative: a refresh token even without offline_access. */
  always_issue_refresh_token: boolean;
  id_token_signed_response_alg: string | null;
}

export type MetadataVerdict =
  | { ok: true; metadata: ClientMetadata }
  | { ok: false; error: 'invalid_client_metadata' | 'invalid_redirect_uri'; description: string };

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];
const PUBLIC_KEY_TYPES = new Set(['EC', 'RSA', 'OKP']);

class MetadataProblem extends Error {
  constructor(readonly error: 'invalid_client_metadata' | 'invalid_redirect_uri', description: string) {
    super(description);
  }
}

const fail = (description: string): never => {
  throw new MetadataProblem('invalid_client_metadata', description);
};

function optionalString(value: unknown, name: string, max = 200): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) return fail(`${name} must be a string of 1 to ${max} characters`);
  return value;
}

function stringList(value: unknown, name: string, maxItems: number, maxLength = 2000): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length > maxItems || !value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= maxLength)) {
    return fail(`${name} must be an array of at most ${maxItems} non-empty strings`);
  }
  return [...new Set(value as string[])];
}

function checkJwks(value: unknown): JSONWebKeySet | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) return fail('jwks must be a JWK Set object');
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 10) return fail('jwks must hold 1 to 10 keys');
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return fail('jwks keys must be objects');
    const jwk = key as Record<string, unknown>;
    if (typeof jwk.kty !== 'string' || !PUBLIC_KEY_TYPES.has(jwk.kty)) return fail('jwks keys must be EC, RSA or OKP public keys');
    if (PRIVATE_JWK_MEMBERS.some((m) => m in jwk)) return fail('jwks must contain public keys only');
  }
  if (JSON.stringify(value).length > 20_000) return fail('jwks is too large');
  return { keys: keys as JSONWebKeySet['keys'] };
}

function checkJwksUri(value: unknown): string | null {
  const uri = optionalString(value, 'jwks_uri', 2000);
  if (uri === null) return null;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return fail('jwks_uri must be an absolute https URL');
  }
  if (url.protocol !== 'https:' || url.hash || url.username || url.password) return fail('jwks_uri must be an absolute https URL');
  return uri;
}

export function validateClientMetadata(input: unknown, policy: MetadataPolicy): MetadataVerdict {
  try {
    return { ok: true, metadata: validate(input, policy) };
  } catch (err) {
    if (err instanceof MetadataProblem) return { ok: false, error: err.error, description: err.message };
    throw err;
  }
}

function validate(input: unknown, policy: MetadataPolicy): ClientMetadata {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('client metadata must be a JSON object');
  const m = input as Record<string, unknown>;

  // RFC 7591 §2: grant_types "If omitted, the default behavior is that the client will use only
  // the "authorization_code" Grant Type."
  const grantTypes = stringList(m.grant_types, 'grant_types', 10) ?? ['authorization_code'];
  if (grantTypes.length === 0) fail('grant_types must not be empty');
  for (const g of grantTypes) if (!policy.allowedGrantTypes.includes(g)) fail(`grant type ${g} is not allowed`);

  // RFC 7591 §2.1: response_types and grant_types must be consistent; "code" goes with
  // authorization_code, and no other grant uses the authorization endpoint.
  const usesCode = grantTypes.includes('authorization_code');
  const responseTypes = stringList(m.response_types, 'response_types', 5) ?? (usesCode ? ['code'] : []);
  for (const r of responseTypes) {
    if (r !== 'code') fail(`response type ${r} is not supported`);
    if (!usesCode) fail('response type code requires the authorization_code grant type');
  }

  // RFC 7591 §2: token_endpoint_auth_method "If unspecified or omitted, the default is
  // "client_secret_basic"".
  const method = (m.token_endpoint_auth_method ?? 'client_secret_basic') as TokenEndpointAuthMethod;
  if (typeof method !== 'string' || !policy.allowedAuthMethods.includes(method)) fail(`token_endpoint_auth_method ${String(method)} is not allowed`);
  // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
  if (method === 'none' && grantTypes.includes('client_credentials')) fail('public clients cannot use the client_credentials grant');

  const signingAlg = optionalString(m.token_endpoint_auth_signing_alg, 'token_endpoint_auth_signing_alg', 16);
  if (signingAlg !== null && !(CLIENT_ASSERTION_ALGS as readonly string[]).includes(signingAlg)) {
    fail('token_endpoint_auth_signing_alg must be an asymmetric algorithm');
  }

  const redirectUris = stringList(m.redirect_uris, 'redirect_uris', 20) ?? [];
  for (const uri of redirectUris) {
    const verdict = checkRedirectUri(uri);
    if (!verdict.ok) throw new MetadataProblem('invalid_redirect_uri', verdict.reason);
  }
  if (usesCode && redirectUris.length === 0) throw new MetadataProblem('invalid_redirect_uri', 'redirect_uris is required for the authorization_code grant');
  // OIDC RP-Initiated Logout §3.1: post_logout_redirect_uris, held to the same rules.
  const postLogoutRedirectUris = stringList(m.post_logout_redirect_uris, 'post_logout_redirect_uris', 20) ?? [];
  for (const uri of postLogoutRedirectUris) {
    const verdict = checkRedirectUri(uri);
    if (!verdict.ok) fail(`post_logout_redirect_uris: ${verdict.reason}`);
  }
  // A refresh token is issued with a user's grant: from the code or the device flow.
  if (grantTypes.includes('refresh_token') && !usesCode && !grantTypes.includes(DEVICE_CODE_GRANT_TYPE)) {
    fail('the refresh_token grant requires the authorization_code or device_code grant');
  }

  let scope: string[] = [];
  if (m.scope !== undefined && m.scope !== null) {
    if (typeof m.scope !== 'string') fail('scope must be a space-separated string');
    const parsed = (m.scope as string) === '' ? [] : parseScope(m.scope as string);
    if (parsed === null) return fail('scope is malformed');
    scope = parsed;
  }
  if (policy.allowedScopes !== null) {
    const allowed = policy.allowedScopes;
    const denied = scope.filter((s) => !isScopeGranted(allowed, s));
    if (denied.length > 0) fail(`scope not allowed: ${quoteScopes(denied)}`);
  }

  // RFC 7591 §2: "The "jwks_uri" and "jwks" parameters MUST NOT both be present in the same request or response."
  const jwks = checkJwks(m.jwks);
  const jwksUri = checkJwksUri(m.jwks_uri);
  if (jwks !== null && jwksUri !== null) fail('jwks and jwks_uri must not both be present');
  if (method === 'private_key_jwt' && jwks === null && jwksUri === null) fail('private_key_jwt requires jwks or jwks_uri');

  // OIDC Dynamic Registration §2: id_token_signed_response_alg; this server signs with its own set.
  const idTokenAlg = optionalString(m.id_token_signed_response_alg, 'id_token_signed_response_alg', 16);
  if (idTokenAlg !== null && !policy.idTokenSigningAlgs.includes(idTokenAlg)) {
    fail(`id_token_signed_response_alg must be one of: ${policy.idTokenSigningAlgs.join(', ')}`);
  }
  const contacts = stringList(m.contacts, 'contacts', 10, 320) ?? [];
  const clientName = optionalString(m.client_name, 'client_name');

  let owner: string | null = null;
  let ttl: number | null = null;
  let firstParty = false;
  let alwaysRefresh = false;
  if (policy.administrative) {
    owner = optionalString(m.owner, 'owner');
    for (const flag of ['first_party', 'always_issue_refresh_token'] as const) {
      if (m[flag] !== undefined && m[flag] !== null && typeof m[flag] !== 'boolean') fail(`${flag} must be true or false`);
    }
    firstParty = m.first_party === true;
    alwaysRefresh = m.always_issue_refresh_token === true;
    if (m.access_token_ttl !== undefined && m.access_token_ttl !== null) {
      const v = m.access_token_ttl;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > policy.maxAccessTokenTtl) {
        fail(`access_token_ttl must be a whole number of seconds from 1 to ${policy.maxAccessTokenTtl}`);
      }
      ttl = v as number;
    }
  }

  return {
    client_name: clientName,
    grant_types: grantTypes,
    response_types: responseTypes,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    scope,
    token_endpoint_auth_method: method,
    token_endpoint_auth_signing_alg: signingAlg,
    jwks,
    jwks_uri: jwksUri,
    contacts,
    owner,
    access_token_ttl: ttl,
    first_party: firstParty,
    always_issue_refresh_token: alwaysRefresh,
    id_token_signed_response_alg: idTokenAlg,
  };
}
