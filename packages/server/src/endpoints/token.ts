import type { FastifyInstance } from 'fastify';
import { authenticateClient } from '../client-auth/authenticate-client.js';
import type { ServerContext } from '../context.js';
import { InvalidRequestError, UnauthorizedClientError, UnsupportedGrantTypeError } from '../errors.js';
import { readForm } from '../http/form-body.js';
import { methodNotAllowed } from '../http/app.js';
import { noStore } from '../http/reply.js';

/** Grants OAuth 2.1 removed; named in the error so a client developer sees why at once. */
const REMOVED_GRANTS = new Set(['password', 'implicit']);

/** RFC 6749 §3.2 token endpoint: parse → authenticate → grant handler → respond. */
export function registerTokenEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  app.post(ctx.paths.token, async (request, reply) => {
    noStore(reply);
    const params = readForm(request);
    const grantType = params.get('grant_type');
    if (grantType === undefined) throw new InvalidRequestError('grant_type is required');
    const handler = ctx.grants.get(grantType);
    if (handler === undefined) {
      throw new UnsupportedGrantTypeError(
        REMOVED_GRANTS.has(grantType) ? `the ${grantType} grant is not supported (removed in OAuth 2.1)` : 'unsupported grant_type',
      );
    }
    const now = ctx.clock();
    const { client } = await authenticateClient(
      { authorization: request.headers.authorization, params },
      ctx.clientAuth,
      now,
      { allowPublic: handler.allowsPublicClients },
    );
    ctx.rateLimits.requireClientBudget('token', client, now);
    // RFC 6749 §5.2 unauthorized_client: "The authenticated client is not authorized to use
    // this authorization grant type."
    if (!client.grantTypes.includes(grantType)) throw new UnauthorizedClientError('the client is not registered for this grant type');
    const response = await handler.handle({ client, params, now });
    ctx.usage.record(client.clientId, now);
    // grant_type is a key of the registry here, so the label stays bounded.
    ctx.metrics.tokenIssued(grantType);
    return reply.type('application/json').send(response);
  });
  methodNotAllowed(app, ctx.paths.token, ['POST']);
}
