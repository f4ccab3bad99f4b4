/**
 * Framework adapters. None of them imports its framework: each is typed structurally, so the
 * library has no dependency on Fastify or Express.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BearerError } from './errors.js';
import type { NodeRequestLike } from './request.js';
import type { ScopeRequirement } from './scopes.js';
import type { AccessTokenClaims, AccessTokenVerifier } from './verifier.js';

/**
 * Per-route options of the adapters.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export interface RouteOptions {
  /** Scopes this route needs, in addition to the verifier's. */
  scopes?: ScopeRequirement;
}

function asBearerError(verifier: AccessTokenVerifier, error: unknown): BearerError {
  return error instanceof BearerError ? error : verifier.errors.invalidToken('The access token could not be verified', error);
}

// ---------------------------------------------------------------------------------------------
// node:http

/**
 * Verifies a node:http request. On success resolves to the claims; on failure writes the
 * RFC 6750 answer to `res` and resolves to undefined.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export async function authenticateNodeRequest(
  verifier: AccessTokenVerifier,
  req: IncomingMessage & { body?: unknown },
  res: ServerResponse,
  options: RouteOptions = {},
): Promise<AccessTokenClaims | undefined> {
  try {
    return await verifier.verify(req, options);
  } catch (error) {
    writeBearerError(res, asBearerError(verifier, error));
    return undefined;
  }
}

/**
 * Writes a {@link BearerError} to a node:http-style response.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function writeBearerError(res: ServerResponseLike, error: BearerError): void {
  if (res.headersSent) return;
  res.statusCode = error.status;
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.end(JSON.stringify(error.body));
}

// ---------------------------------------------------------------------------------------------
// Express-style middleware

/**
 * The part of a node:http / Express response the middleware uses.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export interface ServerResponseLike {
  statusCode: number;
  readonly headersSent: boolean;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

/**
 * An Express-style request after the middleware: `auth` holds the verified claims.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2
 */
export type AuthenticatedRequest<R extends NodeRequestLike = NodeRequestLike> = R & { auth: AccessTokenClaims };

/**
 * Express-style middleware `(req, res, next)`: sets `req.auth` to the verified claims and calls
 * `next()`, or answers the RFC 6750 error itself (`next` is then not called).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function bearerMiddleware(
  verifier: AccessTokenVerifier,
  options: RouteOptions = {},
): (req: NodeRequestLike & { auth?: AccessTokenClaims }, res: ServerResponseLike, next: (error?: unknown) => void) => void {
  return (req, res, next) => {
    verifier.verify(req, options).then(
      (claims) => {
        req.auth = claims;
        next();
      },
      (error: unknown) => writeBearerError(res, asBearerError(verifier, error)),
    );
  };
}

// ---------------------------------------------------------------------------------------------
// Fetch API

/**
 * Result of {@link authenticateFetchRequest}: the claims, or the `Response` to send.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export type FetchAuthentication = { ok: true; claims: AccessTokenClaims } | { ok: false; response: Response; error: BearerError };

/**
 * Verifies a fetch-API `Request` (Deno, Bun, workers, Hono, Next.js route handlers, …).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export async function authenticateFetchRequest(verifier: AccessTokenVerifier, request: Request, options: RouteOptions = {}): Promise<FetchAuthentication> {
  try {
    return { ok: true, claims: await verifier.verify(request, options) };
  } catch (caught) {
    const error = asBearerError(verifier, caught);
    return { ok: false, response: error.toResponse(), error };
  }
}

// ---------------------------------------------------------------------------------------------
// Fastify

/**
 * The part of a Fastify request the hook uses; `accessToken` is set on success.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2
 */
export interface FastifyRequestLike extends NodeRequestLike {
  accessToken?: AccessTokenClaims | null;
}

/**
 * The part of a Fastify reply the hook uses.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export interface FastifyReplyLike {
  code(status: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(payload: string): unknown;
}

/**
 * A Fastify `preHandler` hook for one route (`{ preHandler: fastifyPreHandler(verifier, { scopes }) }`):
 * sets `request.accessToken`, or replies with the RFC 6750 error.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function fastifyPreHandler(
  verifier: AccessTokenVerifier,
  options: RouteOptions = {},
): (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<void> {
  return async (request, reply) => {
    try {
      request.accessToken = await verifier.verify(request, options);
    } catch (caught) {
      const error = asBearerError(verifier, caught);
      let r = reply.code(error.status);
      for (const [name, value] of Object.entries(error.headers)) r = r.header(name, value);
      await r.send(JSON.stringify(error.body));
    }
  };
}

/**
 * The part of a Fastify instance the plugin uses.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export interface FastifyInstanceLike {
  decorateRequest(name: string, value: null): unknown;
  hasRequestDecorator(name: string): boolean;
  addHook(name: 'preHandler', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<void>): unknown;
}

/**
 * Options of {@link fastifyBearerAuth}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export interface FastifyBearerAuthOptions extends RouteOptions {
  verifier: AccessTokenVerifier;
}

/**
 * A Fastify plugin: decorates requests with `accessToken` and adds a `preHandler` hook that
 * requires a valid token on every route of the context it is registered in (it is not
 * encapsulated, like a `fastify-plugin` plugin: register it inside your own plugin to protect
 * only that plugin's routes). Augment `FastifyRequest` with `accessToken: AccessTokenClaims | null`
 * for typed access, or read it with {@link accessTokenOf}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export const fastifyBearerAuth = Object.assign(
  async function fastifyBearerAuth(instance: FastifyInstanceLike, options: FastifyBearerAuthOptions): Promise<void> {
    if (!instance.hasRequestDecorator('accessToken')) instance.decorateRequest('accessToken', null);
    instance.addHook('preHandler', fastifyPreHandler(options.verifier, options));
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@gatehouse/resource' },
);

/**
 * The verified claims a Fastify request carries (after the plugin or the pre-handler), or undefined.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2
 */
export function accessTokenOf(request: object): AccessTokenClaims | undefined {
  const value = (request as FastifyRequestLike).accessToken;
  return value === null ? undefined : value;
}
