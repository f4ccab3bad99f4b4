import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';
import { readTokenOperation } from './token-operation.js';
import { sha256 } from '../tokens/random.js';

/** RFC 7009 token revocation. */
export function registerRevocationEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  app.post(ctx.paths.revocation, async (request, reply) => {
    // RFC 7009 §2.1: "token REQUIRED. The token that the client wants to get revoked."
    const { client, token, now } = await readTokenOperation(ctx, request, reply, { allowPublic: true, bucket: 'revocation' });
    // RFC 7009 §2.1: token_type_hint is a hint; "the authorization server [...] MAY ignore it".
    // RFC 7009 §2.1: "If the token passed to the request is a refresh token and the
    // authorization server supports the revocation of access tokens, then the authorization
    // server SHOULD also invalidate all access tokens based on the same authorization grant":
    // the whole family goes.
    const refresh = await ctx.storage.refreshTokens.findRefreshToken(sha256(token));
    if (refresh !== undefined) {
      if (refresh.token.clientId === client.clientId) {
        await ctx.storage.refreshTokens.revokeFamily(refresh.token.familyId, now);
        request.log.info({ client_id: client.clientId, family: refresh.token.familyId }, 'refresh token family revoked');
      }
      return reply.code(200).send();
    }
    const info = await ctx.accessTokens.inspect(token, now);
    // RFC 7009 §2.1: "The authorization server first validates the client credentials [...] and
    // then verifies whether the token was issued to the client making the revocation request.
    // If this validation fails, the request is refused" — refused silently: §2.2 "The
    // authorization server responds with HTTP status code 200 if the token has been revoked
    // successfully or if the client submitted an invalid token."
    if (info !== undefined && info.clientId === client.clientId) {
      await ctx.accessTokens.revoke(info);
      request.log.info({ client_id: client.clientId, jti: info.jti }, 'access token revoked');
    }
    return reply.code(200).send();
  });
  methodNotAllowed(app, ctx.paths.revocation, ['POST']);
}
