import type { FastifyInstance, FastifyReply } from 'fastify';
import { SUPPORTED_AUTH_METHODS } from '../client-auth/authenticate-client.js';
import { CLIENT_ASSERTION_ALGS } from '../config/schema.js';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';
import { DEVICE_CODE_GRANT_TYPE } from '../model.js';

/**
 * RFC 8414 authorization server metadata: exactly what is implemented and enabled, never more.
 */
export function buildMetadata(ctx: ServerContext): Record<string, unknown> {
  const { config, urls } = ctx;
  const codeFlow = ctx.grants.has('authorization_code');
  const metadata: Record<string, unknown> = {
    issuer: config.issuer,
    ...(codeFlow ? { authorization_endpoint: urls.authorization } : {}),
    token_endpoint: urls.token,
    jwks_uri: urls.jwks,
    // RFC 8414 §2: response_types_supported is REQUIRED. OAuth 2.1: the code flow only.
    response_types_supported: codeFlow ? ['code'] : [],
    grant_types_supported: [...ctx.grants.keys()],
    // `none`: public clients of the code flow (PKCE makes them safe to redeem their codes).
    token_endpoint_auth_methods_supported: codeFlow ? [...SUPPORTED_AUTH_METHODS, 'none'] : [...SUPPORTED_AUTH_METHODS],
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    introspection_endpoint: urls.introspection,
    introspection_endpoint_auth_methods_supported: [...SUPPORTED_AUTH_METHODS],
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    revocation_endpoint: urls.revocation,
    revocation_endpoint_auth_methods_supported: [...SUPPORTED_AUTH_METHODS],
    revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
  };
  if (config.registration.enabled) metadata.registration_endpoint = urls.registration;
  // RFC 8628 §4: "device_authorization_endpoint OPTIONAL. URL of the authorization server's
  // device authorization endpoint".
  if (ctx.grants.has(DEVICE_CODE_GRANT_TYPE)) metadata.device_authorization_endpoint = urls.deviceAuthorization;
  if (codeFlow) {
    Object.assign(metadata, {
      response_modes_supported: ['query', 'form_post'],
      code_challenge_methods_supported: ['S256'],
      // RFC 9207 §3: "authorization_response_iss_parameter_supported".
      authorization_response_iss_parameter_supported: true,
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
      // OpenID Connect Discovery §3.
      userinfo_endpoint: urls.userinfo,
      end_session_endpoint: urls.endSession,
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [config.tokens.idTokenSigningAlg],
      // Only claims actually issued (no sign-in method sets an acr yet).
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'sid', 'amr', 'at_hash', 'name', 'preferred_username', 'email', 'email_verified'],
      claims_parameter_supported: false,
      request_parameter_supported: false,
      request_uri_parameter_supported: false,
    });
  }
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
