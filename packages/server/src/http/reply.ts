import type { FastifyReply } from 'fastify';
import type { OAuthError, OAuthErrorCode } from '../errors.js';

/** The error code each reply was answered with, for the request's metrics (see http/app.ts). */
const sentErrors = new WeakMap<FastifyReply, OAuthErrorCode>();

/** The RFC `error` code {@link sendOAuthError} answered this reply with, if it did. */
export function sentOAuthError(reply: FastifyReply): OAuthErrorCode | undefined {
  return sentErrors.get(reply);
}

/**
 * RFC 6749 §5.1: "The authorization server MUST include the HTTP "Cache-Control" response header
 * field [RFC2616] with a value of "no-store" in any response containing tokens, credentials, or
 * other sensitive information, as well as the "Pragma" response header field with a value of
 * "no-cache"."
 */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

/** Answers with the JSON error model (RFC 6749 §5.2): the one place OAuth errors are sent. */
export function sendOAuthError(reply: FastifyReply, error: OAuthError): FastifyReply {
  sentErrors.set(reply, error.code);
  noStore(reply).code(error.status);
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply.type('application/json').send(error.toJSON());
}
