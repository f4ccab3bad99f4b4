import type { FastifyReply, FastifyRequest } from 'fastify';
import { authenticateClient } from '../client-auth/authenticate-client.js';
import type { ServerContext } from '../context.js';
import { InvalidRequestError } from '../errors.js';
import { readForm } from '../http/form-body.js';
import { noStore } from '../http/reply.js';
import type { Client } from '../model.js';

export interface TokenOperation {
  client: Client;
  token: string;
  now: number;
}

/**
 * The common start of introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1): a form
 * POST, an authenticated client, and the REQUIRED `token` parameter.
 */
export async function readTokenOperation(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  options: { allowPublic: boolean; bucket: 'introspection' | 'revocation' },
): Promise<TokenOperation> {
  noStore(reply);
  const params = readForm(request);
  const now = ctx.clock();
  const { client } = await authenticateClient({ authorization: request.headers.authorization, params }, ctx.clientAuth, now, options);
  ctx.rateLimits.requireClientBudget(options.bucket, client, now);
  const token = params.get('token');
  if (token === undefined) throw new InvalidRequestError('token is required');
  return { client, token, now };
}
