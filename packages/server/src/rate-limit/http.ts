import type { FastifyRequest } from 'fastify';
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
 * Per-address limits, checked by the HTTP shell when a request arrives (before its body is
 * read): a refused request costs a map lookup. Protocol endpoints answer 429 JSON
 * (`temporarily_unavailable`, Retry-After); the forms a 429 page (the shell's error handler
 * decides which).
 */
export function addressRateLimits(ctx: ServerContext): (request: FastifyRequest) => TooManyRequestsError | undefined {
  const buckets = routeBuckets(ctx);
  return (request) => {
    const bucket = buckets.get(`${request.method} ${request.routeOptions.url ?? ''}`);
    if (bucket === undefined) return undefined;
    const verdict = ctx.rateLimits.byAddress(bucket, request.ip, ctx.clock());
    return verdict.allowed ? undefined : new TooManyRequestsError(verdict.retryAfter);
  };
}
