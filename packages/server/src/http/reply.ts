import type { FastifyReply } from 'fastify';
import type { OAuthError } from '../errors.js';

/**
 * RFC 6749 §5.1: "The authorization server MUST include the HTTP "Cache-Control" response header
 * field [RFC2616] with a value of "no-store" in any response containing tokens, credentials, or
 * other sensitive information, as well as the "Pragma" response header field with a value of
 * "no-cache"."
 */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

export function sendOAuthError(reply: FastifyReply, error: OAuthError): FastifyReply {
  noStore(reply).code(error.status);
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply.type('application/json').send(error.toJSON());
}
