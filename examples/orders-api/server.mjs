// Orders API: a small Fastify API protected by Gatehouse access tokens.
//
//   GET  /orders                               needs scope orders:read
//   POST /orders                               needs scope orders:write
//   GET  /.well-known/oauth-protected-resource  RFC 9728 metadata (public)
//
// Settings come from the environment when run directly (`node examples/orders-api/server.mjs`):
//   GATEHOUSE_ISSUER  the Gatehouse issuer, e.g. http://127.0.0.1:4000 (required)
//   API_AUDIENCE      this API's resource identifier, e.g. https://orders.example.com (required)
//   PORT              where to listen on 127.0.0.1 (default 3000)
//
// Tests import createOrdersApi() and listen on a port of their choosing.
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { accessTokenOf, createAccessTokenVerifier, fastifyPreHandler, protectedResourceMetadata, protectedResourceMetadataUrl } from '@gatehouse/resource';

const READ = 'orders:read';
const WRITE = 'orders:write';

/**
 * Builds the API (not yet listening).
 *
 * @param {object} options
 * @param {string} options.issuer    Gatehouse issuer identifier (its metadata is discovered from it)
 * @param {string} options.audience  this API's resource identifier: tokens must carry it in `aud`
 * @param {string} [options.resourceMetadataUrl]  where clients find the RFC 9728 document
 *   (default: the RFC 9728 §3.1 URL derived from the audience, i.e. the API's public address)
 * @param {boolean | object} [options.logger]  Fastify logger option (default false)
 */
export function createOrdersApi({ issuer, audience, resourceMetadataUrl = protectedResourceMetadataUrl(audience), logger = false }) {
  // One verifier per API: it caches the issuer's metadata and signing keys. Every token must be
  // a JWT access token (typ at+jwt) from `issuer`, signed with a key from its JWKS, for `audience`.
  const verifier = createAccessTokenVerifier({ issuer, audience, resourceMetadata: resourceMetadataUrl });

  const app = Fastify({ logger });

  // An in-memory store is enough for an example.
  const orders = [];

  // RFC 9728: tells clients which authorization server issues tokens for this API and which
  // scopes it understands. Public, like the 401 challenges that point to it.
  const metadata = protectedResourceMetadata({
    resource: audience,
    authorizationServers: [issuer],
    scopesSupported: [READ, WRITE],
    bearerMethodsSupported: ['header'],
    resourceName: 'Orders API',
  });
  app.get('/.well-known/oauth-protected-resource', async () => metadata);

  // The adapter's hook verifies the bearer token and the route's scopes, sets request.accessToken,
  // or answers the RFC 6750 error itself: 401 (no or bad token), 403 insufficient_scope,
  // 400 invalid_request, 503 when Gatehouse cannot be reached. It runs as `onRequest` so that a
  // request without a valid token is refused before its body is even parsed.
  app.get('/orders', { onRequest: fastifyPreHandler(verifier, { scopes: [READ] }) }, async () => ({ orders }));

  app.post(
    '/orders',
    {
      onRequest: fastifyPreHandler(verifier, { scopes: [WRITE] }),
      schema: {
        body: {
          type: 'object',
          required: ['item', 'quantity'],
          additionalProperties: false,
          properties: { item: { type: 'string', minLength: 1, maxLength: 200 }, quantity: { type: 'integer', minimum: 1, maximum: 1000 } },
        },
      },
    },
    async (request, reply) => {
      const token = accessTokenOf(request); // the verified claims: client_id, sub, scopes, …
      const order = {
        id: orders.length + 1,
        item: request.body.item,
        quantity: request.body.quantity,
        // For client_credentials tokens sub is the client; for user tokens, the user.
        placedBy: token?.sub ?? token?.client_id ?? null,
      };
      orders.push(order);
      return reply.code(201).header('location', `/orders/${order.id}`).send(order);
    },
  );

  return app;
}

/** Reads the settings from the environment and listens on 127.0.0.1. */
export async function main(env = process.env) {
  const issuer = env.GATEHOUSE_ISSUER;
  const audience = env.API_AUDIENCE;
  if (!issuer || !audience) {
    console.error('Set GATEHOUSE_ISSUER (e.g. http://127.0.0.1:4000) and API_AUDIENCE (e.g. https://orders.example.com).');
    process.exitCode = 1;
    return undefined;
  }
  const port = Number(env.PORT ?? 3000);
  const app = createOrdersApi({ issuer, audience, logger: true });
  await app.listen({ port, host: '127.0.0.1' });
  return app;
}

// Run main() only when this file is executed, not when it is imported.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
