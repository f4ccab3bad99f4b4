/**
 * Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2) and the shapes
 * every grant shares: the scope and resource parameters, the token set.
 */
import * as oauth from 'oauth4webapi';
import { GatehouseClientError } from './errors.js';

/**
 * How the client authenticates. Give a `clientSecret` (HTTP Basic by default, or
 * `client_secret_post`), or a `privateKey` for `private_key_jwt` (RFC 7523), or neither for a
 * public client (`none`: native apps and CLIs using PKCE or the device grant).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2
 */
export interface ClientAuthOptions {
  /** The client secret of a confidential client. Never logged, never in an error message. */
  clientSecret?: string | undefined;
  /**
   * The private key for `private_key_jwt` (a WebCrypto `CryptoKey`, e.g. from jose's
   * `importPKCS8` or `crypto.subtle.importKey`); its algorithm picks the JWS `alg`.
   */
  privateKey?: oauth.CryptoKey | undefined;
  /** The `kid` of `privateKey` as registered in the client's JWKS (sent in the assertion header). */
  privateKeyId?: string | undefined;
  /**
   * How a `clientSecret` is sent: `client_secret_basic` (default, unless the server's metadata
   * lists only `client_secret_post`) or `client_secret_post`.
   */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post' | undefined;
}

/** The oauth4webapi client authentication for these options, given the server's metadata. */
export function clientAuthentication(as: oauth.AuthorizationServer, options: ClientAuthOptions): oauth.ClientAuth {
  if (options.privateKey !== undefined && options.clientSecret !== undefined) {
    throw new GatehouseClientError('invalid_configuration', 'give either a client secret or a private key, not both');
  }
  if (options.privateKey !== undefined) {
    return oauth.PrivateKeyJwt(options.privateKeyId === undefined ? options.privateKey : { key: options.privateKey, kid: options.privateKeyId });
  }
  if (options.clientSecret !== undefined) {
    const supported = as.token_endpoint_auth_methods_supported;
    const method =
      options.tokenEndpointAuthMethod ??
      (supported !== undefined && !supported.includes('client_secret_basic') && supported.includes('client_secret_post') ? 'client_secret_post' : 'client_secret_basic');
    return method === 'client_secret_post' ? oauth.ClientSecretPost(options.clientSecret) : oauth.ClientSecretBasic(options.clientSecret);
  }
  return oauth.None();
}

/** Space-separated scope (RFC 6749 §3.3) from a string or a list; undefined when empty. */
export function scopeParam(scope: string | readonly string[] | undefined): string | undefined {
  if (scope === undefined) return undefined;
  const joined = (typeof scope === 'string' ? scope.split(/\s+/) : scope).filter((s) => s !== '').join(' ');
  return joined === '' ? undefined : joined;
}

/** RFC 8707 resource indicators as a list (one `resource` parameter each). */
export function resourceList(resource: string | readonly string[] | undefined): string[] {
  if (resource === undefined) return [];
  return typeof resource === 'string' ? [resource] : [...resource];
}

/** Adds `scope` and every `resource` to request parameters. */
export function addScopeAndResource(params: URLSearchParams, options: { scope?: string | readonly string[] | undefined; resource?: string | readonly string[] | undefined }): URLSearchParams {
  const scope = scopeParam(options.scope);
  if (scope !== undefined) params.set('scope', scope);
  for (const r of resourceList(options.resource)) params.append('resource', r);
  return params;
}

/**
 * A successful token response (RFC 6749 §5.1), as the server sent it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.1
 */
export interface TokenSet {
  access_token: string;
  /** Lowercased (`bearer`). */
  token_type: string;
  expires_in?: number | undefined;
  refresh_token?: string | undefined;
  scope?: string | undefined;
  id_token?: string | undefined;
}

/** Copies the standard members of an oauth4webapi token response. */
export function toTokenSet(response: oauth.TokenEndpointResponse): TokenSet {
  return {
    access_token: response.access_token,
    token_type: response.token_type,
    ...(response.expires_in === undefined ? {} : { expires_in: response.expires_in }),
    ...(response.refresh_token === undefined ? {} : { refresh_token: response.refresh_token }),
    ...(response.scope === undefined ? {} : { scope: response.scope }),
    ...(response.id_token === undefined ? {} : { id_token: response.id_token }),
  };
}
