import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { TooManyRequestsError } from '../errors.js';
import type { RateBucket } from './rate-limits.js';

/** The routes each per-address limit covers (method and route pattern). */
function routeBuckets(ctx: ServerContext): Map<string, RateBucket> {
  const p = ctx.paths;
  const routes: Array<[string, string, RateBucket]> = [
    ['POST', p.token, 'token'],
    ['POST', p.introspection, 'introspection'],
    ['POST', p.revocation, 'revocation'],
    ['POST', p.deviceAuthorization, 'deviceAuthorization'],
    ['POST', p.registration, 'registration'],
    ...(['GET', 'PUT', 'DELETE'] as const).map((m): [string, string, RateBucket] => [m, `${p.registration}/:clientId`, 'registration']),
    ['POST', `${p.interaction}/:id/login`, 'pages'],
    ['POST', `${p.interaction}/:id/consent`, 'pages'],
    ['POST', p.device, 'pages'],
    ['POST', `${p.device}/login`, 'pages'],
    ['POST', `${p.device}/confirm`, 'pages'],
    ['POST', p.endSession, 'pages'],
    ['POST', `${p.endSession}/confirm`, 'pages'],
    ['POST', `${p.account}/login`, 'pages'],
    ['POST', `${p.account}/grants/:grantId/revoke`, 'pages'],
    ['POST', `${p.account}/logout`, 'pages'],
  ];
  return new Map(routes.map(([method, url, bucket]) => [`${method} ${url}`, bucket]));
}

/**
 * Per-address limits, checked when a request arrives (before its body is read): a refused
 * request costs a digest and a map lookup. Protocol endpoints answer 429 JSON
 * (`temporarily_unavailable`, Retry-After); the forms answer a 429 page.
 */
export function registerRateLimits(app: FastifyInstance, ctx: ServerContext): void {
  const buckets = routeBuckets(ctx);
  app.addHook('onRequest', async (request, reply) => {
    const bucket = buckets.get(`${request.method} ${request.routeOptions.url ?? ''}`);
    if (bucket === undefined) return;
    const verdict = ctx.rateLimits.byAddress(bucket, request.ip, ctx.clock());
    if (verdict.allowed) return;
    if (bucket !== 'pages') throw new TooManyRequestsError(verdict.retryAfter);
    reply.header('retry-after', String(verdict.retryAfter));
    return ctx.web.pages.render(
      reply,
      'error',
      { title: 'Too many requests', message: `Too many requests from your network. Wait ${verdict.retryAfter} seconds and try again.`, requestId: request.id },
      { status: 429 },
    );
  });
}
