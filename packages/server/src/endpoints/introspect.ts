import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';
import { readTokenOperation } from './token-operation.js';
import type { AccessTokenInfo } from '../tokens/access-token.js';
import type { Client } from '../model.js';

async function mayIntrospect(ctx: ServerContext, caller: Client, info: AccessTokenInfo): Promise<boolean> {
  if (!ctx.config.introspection.restrictToOwnResources || info.clientId === caller.clientId) return true;
  const represented = await ctx.storage.resources.listResourcesRepresentedBy(caller.clientId);
  return info.audience.some((a) => represented.includes(a));
}

/** RFC 7662 token introspection. */
export function registerIntrospectionEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  app.post(ctx.paths.introspection, async (request, reply) => {
    // RFC 7662 §2.1: "the endpoint MUST also require some form of authorization to access this
    // endpoint" — callers authenticate as confidential clients; "token REQUIRED".
    const { client, token, now } = await readTokenOperation(ctx, request, reply, { allowPublic: false, bucket: 'introspection' });
    reply.type('application/json');
    const info = await ctx.accessTokens.inspect(token, now);
    // RFC 7662 §2.2: "If the introspection call is properly authorized but the token is not
    // active, does not exist on this server, or the protected resource is not allowed to
    // introspect this particular token, then the authorization server MUST return an
    // introspection response with the "active" field set to "false"."
    if (info === undefined || !(await mayIntrospect(ctx, client, info))) return { active: false };
    // A disabled or deleted client's tokens are no longer honoured.
    const owner = info.clientId === client.clientId ? client : await ctx.clientCache.findClient(info.clientId);
    if (owner === undefined || owner.disabled) return { active: false };
    // A user's token lives only as long as its family: reuse detection, grant revocation and
    // logout-driven revocation all end it here.
    if (info.familyId !== null && !(await ctx.storage.refreshTokens.isFamilyActive(info.familyId, now))) return { active: false };
    return {
      active: true,
      ...(info.scope.length > 0 ? { scope: info.scope.join(' ') } : {}),
      client_id: info.clientId,
      token_type: 'Bearer',
      exp: info.expiresAt,
      iat: info.issuedAt,
      sub: info.subject,
      aud: info.audience.length === 1 ? info.audience[0] : info.audience,
      iss: ctx.config.issuer,
      jti: info.jti,
    };
  });
  methodNotAllowed(app, ctx.paths.introspection, ['POST']);
}
