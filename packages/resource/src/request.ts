import type { BearerErrors } from './errors.js';

/**
 * A Node.js-style request (node:http `IncomingMessage`, Express, Fastify): headers, the request
 * target and, when a framework parsed it, the body.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2
 */
export interface NodeRequestLike {
  headers: Record<string, string | string[] | undefined>;
  url?: string | undefined;
  method?: string | undefined;
  body?: unknown;
}

/**
 * What a token can be read from: an `Authorization` header value, a fetch-API `Request`, or a
 * Node.js-style request.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export type TokenSource = string | Request | NodeRequestLike;

/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

function hasAccessTokenParameter(target: string | undefined): boolean {
  if (target === undefined) return false;
  const q = target.indexOf('?');
  if (q === -1) return false;
  return new URLSearchParams(target.slice(q + 1)).has('access_token');
}

function bodyHasAccessToken(body: unknown): boolean {
  if (body === null || body === undefined) return false;
  if (typeof body === 'string') return new URLSearchParams(body).has('access_token');
  if (body instanceof URLSearchParams) return body.has('access_token');
  if (typeof body === 'object') return Object.prototype.hasOwnProperty.call(body, 'access_token');
  return false;
}

async function webRequestBodyHasAccessToken(request: Request): Promise<boolean> {
  const type = request.headers.get('content-type') ?? '';
  if (request.method === 'GET' || request.method === 'HEAD' || !/^application\/x-www-form-urlencoded\b/i.test(type)) return false;
  try {
    return new URLSearchParams(await request.clone().text()).has('access_token');
  } catch {
    return false;
  }
}

/**
 * Reads the bearer token from the `Authorization` header only (RFC 6750 §2.1; the scheme is
 * case-insensitive). A token in the query string or body alone is ignored (the request counts as
 * carrying no token); a header together with an `access_token` parameter is two methods,
 * `invalid_request` (RFC 6750 §2: "MUST NOT use more than one method").
 *
 * @returns the token, or throws a {@link BearerError} built by `errors`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2
 */
export async function extractBearerToken(source: TokenSource, errors: BearerErrors): Promise<string> {
  let header: string | string[] | undefined;
  let otherMethod = false;
  if (typeof source === 'string') {
    header = source;
  } else if (typeof Request !== 'undefined' && source instanceof Request) {
    header = source.headers.get('authorization') ?? undefined;
    if (header !== undefined) otherMethod = hasAccessTokenParameter(source.url) || (await webRequestBodyHasAccessToken(source));
  } else {
    const node = source as NodeRequestLike;
    header = node.headers.authorization;
    if (header !== undefined) otherMethod = hasAccessTokenParameter(node.url) || bodyHasAccessToken(node.body);
  }
  if (Array.isArray(header)) {
    if (header.length > 1) throw errors.invalidRequest('More than one Authorization header');
    header = header[0];
  }
  if (header === undefined || header.trim() === '') throw errors.noToken();
  const match = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?: +(.*))?$/.exec(header.trim());
  if (match === null) throw errors.invalidRequest('Malformed Authorization header');
  // Another scheme (Basic, DPoP, …) is no bearer token at all: a plain challenge.
  if (match[1]!.toLowerCase() !== 'bearer') throw errors.noToken();
  const token = match[2]?.trim() ?? '';
  if (token === '' || !B64TOKEN.test(token)) throw errors.invalidRequest('Malformed Bearer token');
  if (otherMethod) throw errors.invalidRequest('The access token was sent by more than one method');
  return token;
}
