import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { noStore } from '../http/reply.js';

/** RFC 6750 §3: the challenge, with an error code only when a token was presented. */
function bearerError(reply: FastifyReply, status: number, error?: 'invalid_token' | 'insufficient_scope' | 'invalid_request', description?: string) {
  const params = ['realm="gatehouse"'];
  if (error !== undefined) params.push(`error="${error}"`);
  if (description !== undefined) params.push(`error_description="${description}"`);
  noStore(reply).code(status).header('www-authenticate', `Bearer ${params.join(', ')}`);
  return reply.type('application/json').send(error === undefined ? { error: 'invalid_token', error_description: 'an access token is required' } : { error, ...(description ? { error_description: description } : {}) });
}

/**
 * OIDC Core §5.3 UserInfo: claims about the signed-in user, by scope (§5.4): `profile` → name,
 * preferred_username; `email` → email, email_verified. Bearer tokens in the Authorization header.
 */
export function registerUserinfoEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const now = ctx.clock();
    const header = request.headers.authorization;
    // RFC 6750 §3.1: "If the request lacks any authentication information [...], the resource
    // server SHOULD NOT include an error code or other error information."
    if (header === undefined) return bearerError(reply, 401);
    const match = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    if (!match?.[1]) return bearerError(reply, 400, 'invalid_request', 'malformed Authorization header');
    const info = await ctx.accessTokens.inspect(match[1], now);
    // The token must be for this server (RFC 9068 §4: the resource checks `aud`) and from an
    // OpenID Connect authentication: OIDC Core §5.3 "obtained through an OpenID Connect
    // Authentication Request".
    if (info === undefined || !info.audience.includes(ctx.config.issuer) || info.familyId === null) {
      return bearerError(reply, 401, 'invalid_token', 'the access token is not valid here');
    }
    if (!(await ctx.storage.refreshTokens.isFamilyActive(info.familyId, now))) return bearerError(reply, 401, 'invalid_token', 'the access token was revoked');
    // As at introspection: a disabled (or deleted) client's tokens are no longer honoured.
    const client = await ctx.clientCache.findClient(info.clientId);
    if (client === undefined || client.disabled) return bearerError(reply, 401, 'invalid_token', 'the access token is not valid here');
    if (!info.scope.includes('openid')) return bearerError(reply, 403, 'insufficient_scope', 'the openid scope is required');
    const user = await ctx.storage.users.findUserById(info.subject);
    if (user === undefined || user.disabled) return bearerError(reply, 401, 'invalid_token', 'the user is no longer active');
    const claims: Record<string, unknown> = { sub: user.userId };
    if (info.scope.includes('profile')) {
      claims.preferred_username = user.username;
      if (user.name !== null) claims.name = user.name;
    }
    if (info.scope.includes('email') && user.email !== null) {
      claims.email = user.email;
      claims.email_verified = user.emailVerified;
    }
    return noStore(reply).type('application/json').send(claims);
  };
  // OIDC Core §5.3.1: "The Client sends the UserInfo Request using either HTTP GET or HTTP POST."
  app.get(ctx.paths.userinfo, handler);
  app.post(ctx.paths.userinfo, handler);
  app.route({
    method: ['PUT', 'DELETE', 'PATCH'],
    url: ctx.paths.userinfo,
    handler: async (_request, reply) => {
      reply.header('allow', 'GET, HEAD, POST');
      throw new OAuthError('invalid_request', 405, 'method not allowed');
    },
  });
}
