import type { FastifyInstance, FastifyReply } from 'fastify';
import { SUPPORTED_AUTH_METHODS } from '../client-auth/authenticate-client.js';
import { CLIENT_ASSERTION_ALGS } from '../config/schema.js';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';

/**
 * RFC 8414 authorization server metadata: exactly what is implemented and enabled, never more.
 */
export function buildMetadata(ctx: ServerContext): Record<string, unknown> {
  const { config, urls } = ctx;
  const metadata: Record<string, unknown> = {
    issuer: config.issuer,
    token_endpoint: urls.token,
    jwks_uri: urls.jwks,
    // RFC 8414 §2: response_types_supported is REQUIRED; no authorization endpoint is enabled yet.
    response_types_supported: [],
    grant_types_supported: [...ctx.grants.keys()],
    token_endpoint_auth_methods_supported: [...SUPPORTED_AUTH_METHODS],
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    introspection_endpoint: urls.introspection,
    introspection_endpoint_auth_methods_supported: [...SUPPORTED_AUTH_METHODS],
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    revocation_endpoint: urls.revocation,
    revocation_endpoint_auth_methods_supported: [...SUPPORTED_AUTH_METHODS],
    revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
  };
  if (config.registration.enabled) metadata.registration_endpoint = urls.registration;
  return metadata;
}

export function registerDiscoveryEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  const body = JSON.stringify(buildMetadata(ctx));
  const send = async (_req: unknown, reply: FastifyReply) =>
    reply.header('cache-control', 'public, max-age=300').type('application/json').send(body);
  const base = ctx.paths.base;
  // RFC 8414 §3: the well-known suffix is inserted between the host and the issuer's path.
  const paths = new Set([`/.well-known/oauth-authorization-server${base}`, `${base}/.well-known/openid-configuration`]);
  for (const path of paths) {
    app.get(path, send);
    methodNotAllowed(app, path, ['GET', 'HEAD']);
  }
}
