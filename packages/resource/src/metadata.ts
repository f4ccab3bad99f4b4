/**
 * Input of {@link protectedResourceMetadata}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-2
 */
export interface ProtectedResourceMetadataInput {
  /** The resource identifier (https URL, no fragment): the audience of its tokens. */
  resource: string;
  /** Issuer identifiers of the authorization servers that issue tokens for it. */
  authorizationServers: readonly string[];
  scopesSupported?: readonly string[];
  /** Only `header` is supported by this library. */
  bearerMethodsSupported?: readonly ['header'] | readonly [];
  resourceName?: string;
  resourceDocumentation?: string;
}

/**
 * RFC 9728 protected-resource metadata document, as served at
 * `/.well-known/oauth-protected-resource`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-2
 */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: string[];
  resource_name?: string;
  resource_documentation?: string;
}

/**
 * Builds the RFC 9728 metadata of an API (serve it as JSON at
 * `/.well-known/oauth-protected-resource`, and name its URL with `resourceMetadata` in the
 * verifier options so challenges carry `resource_metadata`).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-2
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-3
 */
export function protectedResourceMetadata(input: ProtectedResourceMetadataInput): ProtectedResourceMetadata {
  const url = new URL(input.resource);
  if (url.hash !== '' || input.resource.includes('#')) throw new TypeError('resource must not have a fragment');
  return {
    resource: input.resource,
    authorization_servers: [...input.authorizationServers],
    ...(input.scopesSupported === undefined ? {} : { scopes_supported: [...input.scopesSupported] }),
    bearer_methods_supported: [...(input.bearerMethodsSupported ?? ['header'])],
    ...(input.resourceName === undefined ? {} : { resource_name: input.resourceName }),
    ...(input.resourceDocumentation === undefined ? {} : { resource_documentation: input.resourceDocumentation }),
  };
}

/**
 * The RFC 9728 §3.1 metadata URL of a resource identifier.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9728#section-3.1
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}${url.search}`;
}
