import type { FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../errors.js';
import { parseForm, type FormParams } from '../protocol/form.js';

/** Parameters that may repeat on any endpoint that reads a form (RFC 8707 `resource`). */
const REPEATABLE = new Set(['resource']);

/**
 * The form parameters of a POST that must be `application/x-www-form-urlencoded` (RFC 6749 §3.2,
 * RFC 7662 §2.1, RFC 7009 §2.1). The content-type parser keeps the raw bytes; anything else
 * parsed the body into something else, which is refused here.
 */
export function readForm(request: FastifyRequest): FormParams {
  const body = request.body;
  const type = request.headers['content-type'] ?? '';
  if (!Buffer.isBuffer(body) || !/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    throw new InvalidRequestError('the request body must be application/x-www-form-urlencoded');
  }
  const parsed = parseForm(body, REPEATABLE);
  if (!parsed.ok) throw new InvalidRequestError(parsed.reason);
  return parsed.params;
}
