import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { IssuerUnavailableError } from './errors.js';

/**
 * The subset of RFC 8414 authorization-server metadata this library reads.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-2
 */
export interface AuthorizationServerMetadata {
  issuer: string;
  jwks_uri?: string;
  introspection_endpoint?: string;
  /** Not registered by RFC 8414; read when an issuer advertises its access-token algorithms. */
  access_token_signing_alg_values_supported?: string[];
  [key: string]: unknown;
}

/**
 * The RFC 8414 §3.1 metadata URL of an issuer: the well-known segment goes between the host and
 * the issuer's path (for an issuer without a path: `${issuer}/.well-known/oauth-authorization-server`).
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3.1
 */
export function metadataUrl(issuer: string): URL {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return new URL(`${url.origin}/.well-known/oauth-authorization-server${path}`);
}

/**
 * Reads a JSON response from the issuer: no redirects, a timeout, a size bound.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3.2
 */
export async function fetchJson(url: URL, init: RequestInit, timeoutMs: number): Promise<{ status: number; json: unknown }> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new IssuerUnavailableError(`the authorization server could not be reached (${url.pathname})`, { cause });
  }
  const text = await response.text().catch((cause: unknown) => {
    throw new IssuerUnavailableError('the authorization server response could not be read', { cause });
  });
  if (text.length > 512 * 1024) throw new IssuerUnavailableError('the authorization server response is too large');
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch (cause) {
    throw new IssuerUnavailableError(`the authorization server answered ${response.status} without JSON (${url.pathname})`, { cause });
  }
  return { status: response.status, json };
}

/**
 * Options of {@link IssuerConnection}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 */
export interface IssuerConnectionOptions {
  issuer: string;
  timeoutMs: number;
  /** How long successfully fetched metadata is reused, in milliseconds. */
  metadataMaxAgeMs: number;
  /** JWKS cache age and unknown-`kid` refetch cooldown, in milliseconds (jose createRemoteJWKSet). */
  jwksCacheMaxAgeMs: number;
  jwksCooldownMs: number;
}

/**
 * Discovery and key retrieval for one configured issuer. The only URLs ever fetched are the
 * issuer's metadata URL and the `jwks_uri` / `introspection_endpoint` that metadata names;
 * nothing in a token chooses a URL.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8414#section-3
 */
export class IssuerConnection {
  readonly #options: IssuerConnectionOptions;
  #metadata: { value: AuthorizationServerMetadata; fetchedAt: number } | undefined;
  #pending: Promise<AuthorizationServerMetadata> | undefined;
  #lastFailure = 0;
  #jwks: { uri: string; getKey: JWTVerifyGetKey } | undefined;

  constructor(options: IssuerConnectionOptions) {
    this.#options = options;
  }

  /** The issuer's metadata, fetched on first use and re-fetched after `metadataMaxAgeMs`. */
  async metadata(): Promise<AuthorizationServerMetadata> {
    const cached = this.#metadata;
    if (cached !== undefined && Date.now() - cached.fetchedAt < this.#options.metadataMaxAgeMs) return cached.value;
    // After a failure, serve the previous metadata (if any) for a second before asking again.
    if (cached !== undefined && Date.now() - this.#lastFailure < 1000) return cached.value;
    this.#pending ??= this.#fetchMetadata().finally(() => {
      this.#pending = undefined;
    });
    try {
      return await this.#pending;
    } catch (error) {
      this.#lastFailure = Date.now();
      if (cached !== undefined) return cached.value;
      throw error;
    }
  }

  async #fetchMetadata(): Promise<AuthorizationServerMetadata> {
    const { status, json } = await fetchJson(metadataUrl(this.#options.issuer), { headers: { accept: 'application/json' } }, this.#options.timeoutMs);
    if (status !== 200 || typeof json !== 'object' || json === null) throw new IssuerUnavailableError(`the authorization server metadata answered ${status}`);
    const metadata = json as AuthorizationServerMetadata;
    // RFC 8414 §3.3: the issuer in the metadata MUST be identical to the issuer used to fetch it.
    if (metadata.issuer !== this.#options.issuer) throw new IssuerUnavailableError('the authorization server metadata names another issuer');
    this.#metadata = { value: metadata, fetchedAt: Date.now() };
    return metadata;
  }

  /** The key resolver for the issuer's `jwks_uri` (cached; an unknown `kid` refetches at most once per cooldown). */
  async keys(): Promise<JWTVerifyGetKey> {
    const metadata = await this.metadata();
    if (typeof metadata.jwks_uri !== 'string') throw new IssuerUnavailableError('the authorization server metadata has no jwks_uri');
    if (this.#jwks?.uri !== metadata.jwks_uri) {
      let url: URL;
      try {
        url = new URL(metadata.jwks_uri);
      } catch (cause) {
        throw new IssuerUnavailableError('the authorization server jwks_uri is not a URL', { cause });
      }
      this.#jwks = {
        uri: metadata.jwks_uri,
        getKey: createRemoteJWKSet(url, {
          timeoutDuration: this.#options.timeoutMs,
          cooldownDuration: this.#options.jwksCooldownMs,
          cacheMaxAge: this.#options.jwksCacheMaxAgeMs,
        }),
      };
    }
    return this.#jwks.getKey;
  }
}
