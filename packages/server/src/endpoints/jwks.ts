import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';

/** The public signing keys (RFC 7517 JWK Set): pending, current and retired-but-unexpired keys. */
export function registerJwksEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  // Clients may cache the set for less than the pre-publication period, so a new key is always
  // known before it signs.
  const maxAge = Math.min(300, Math.floor(ctx.config.keys.prePublication / 2));
  app.get(ctx.paths.jwks, async (_request, reply) => {
    reply.header('cache-control', maxAge > 0 ? `public, max-age=${maxAge}` : 'no-cache');
    return reply.type('application/jwk-set+json').send(ctx.keys.jwks());
  });
  methodNotAllowed(app, ctx.paths.jwks, ['GET', 'HEAD']);
}
