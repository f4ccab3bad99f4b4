import type { FastifyInstance, FastifyRequest } from 'fastify';
import { clientInformation, createClient, metadataToClientInput } from '../admin/client-admin.js';
import type { ServerContext } from '../context.js';
import { InvalidClientMetadataError, InvalidRedirectUriError, InvalidRequestError, InvalidTokenError, OAuthError } from '../errors.js';
import { methodNotAllowed } from '../http/app.js';
import { noStore } from '../http/reply.js';
import type { Client } from '../model.js';
import { validateClientMetadata, type MetadataPolicy } from '../protocol/client-metadata.js';
import { InitialAccessTokenRejectedError } from '../storage/repositories/client-repository.js';
import { digestsEqual, randomToken, sha256 } from '../tokens/random.js';

const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** RFC 6750 §3: no credentials at all → 401 with a bare challenge, no error code. */
class MissingBearerError extends OAuthError {
  constructor(description: string) {
    super('invalid_token', 401, description, { headers: { 'www-authenticate': 'Bearer realm="gatehouse"' } });
  }
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  // RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the client was
  // unaware that authentication is necessary or attempted using an unsupported authentication
  // method), the resource server SHOULD NOT include an error code or other error information."
  if (!/^bearer(\s|$)/i.test(header)) throw new MissingBearerError('use the Bearer authentication scheme');
  const match = BEARER.exec(header);
  // RFC 6750 §3.1 invalid_request: "[...] or is otherwise malformed. The resource server SHOULD
  // respond with the HTTP 400 (Bad Request) status code."
  if (!match?.[1]) {
    throw new InvalidRequestError('malformed Authorization header', { headers: { 'www-authenticate': 'Bearer error="invalid_request"' } });
  }
  return match[1];
}

function jsonBody(request: FastifyRequest): unknown {
  const type = request.headers['content-type'] ?? '';
  // RFC 7591 §3.1: "the client sends an HTTP POST to the client registration endpoint with a
  // content type of "application/json"".
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new InvalidRequestError('the request body must be application/json');
  return request.body;
}

function metadataError(error: 'invalid_client_metadata' | 'invalid_redirect_uri', description: string): OAuthError {
  return error === 'invalid_redirect_uri' ? new InvalidRedirectUriError(description) : new InvalidClientMetadataError(description);
}

/** RFC 7591 dynamic client registration with RFC 7592 read, update and delete. */
export function registerRegistrationEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  const { registration } = ctx.config;
  const path = ctx.paths.registration;
  const policy = (allowedScopes: readonly string[]): MetadataPolicy => ({
    allowedGrantTypes: registration.allowedGrantTypes.filter((g) => ctx.grants.has(g)),
    allowedAuthMethods: registration.allowedAuthMethods,
    allowedScopes,
    administrative: false,
    idTokenSigningAlgs: [ctx.config.tokens.idTokenSigningAlg],
    maxAccessTokenTtl: ctx.config.tokens.maxAccessTokenTtl,
  });
  const clientUri = (clientId: string) => `${ctx.urls.registration}/${encodeURIComponent(clientId)}`;

  app.post(path, async (request, reply) => {
    noStore(reply);
    const now = ctx.clock();
    const token = bearerToken(request);
    let allowedScopes: readonly string[] = registration.openRegistrationScopes;
    let initialAccessTokenHash: string | undefined;
    if (token !== undefined) {
      initialAccessTokenHash = sha256(token);
      const iat = await ctx.storage.initialAccessTokens.findValidInitialAccessToken(initialAccessTokenHash, now);
      if (iat === undefined) throw new InvalidTokenError('the initial access token is not valid');
      allowedScopes = iat.scope;
    } else if (!registration.dangerouslyAllowOpenRegistration) {
      // RFC 7591 §3: the endpoint "MAY be an OAuth 2.0 protected resource and accept an initial access token".
      throw new MissingBearerError('an initial access token is required');
    }
    const verdict = validateClientMetadata(jsonBody(request), policy(allowedScopes));
    if (!verdict.ok) throw metadataError(verdict.error, verdict.description);
    let created;
    try {
      created = await createClient(ctx.storage.clients, verdict.metadata, now, {
        dynamicallyRegistered: true,
        registrationToken: true,
        ...(initialAccessTokenHash === undefined ? {} : { initialAccessTokenHash }),
      });
    } catch (err) {
      if (err instanceof InitialAccessTokenRejectedError) throw new InvalidTokenError('the initial access token is not valid');
      throw err;
    }
    request.log.info({ client_id: created.client.clientId }, 'client registered');
    // RFC 7591 §3.2.1: "the authorization server returns an HTTP 201 Created status code".
    return reply.code(201).send({
      ...clientInformation(created.client),
      ...(created.clientSecret === undefined ? {} : { client_secret: created.clientSecret }),
      registration_access_token: created.registrationAccessToken,
      registration_client_uri: clientUri(created.client.clientId),
    });
  });
  methodNotAllowed(app, path, ['POST']);

  /** RFC 7592 §2: the registration access token must belong to the client named in the URL. */
  async function authorizedClient(request: FastifyRequest<{ Params: { clientId: string } }>): Promise<{ client: Client; tokenHash: string }> {
    const token = bearerToken(request);
    if (token === undefined) throw new MissingBearerError('a registration access token is required');
    const tokenHash = sha256(token);
    const client = await ctx.storage.clients.findClientByRegistrationToken(tokenHash);
    // RFC 7592 §2.1: "If the client does not exist on this server, the server MUST respond with
    // HTTP 401 Unauthorized and the registration access token used to make this request SHOULD
    // be immediately revoked." A token for another client gets the same answer.
    // A disabled client cannot manage its registration either (an administrator decided).
    if (client === undefined || client.disabled || !digestsEqual(client.clientId, request.params.clientId)) throw new InvalidTokenError();
    return { client, tokenHash };
  }

  /**
   * RFC 7592 §3: the client information response carries "registration_access_token REQUIRED".
   * Only its digest is stored, so each read or update issues the next token (§3: "the
   * authorization server MAY issue a new registration access token"), replacing the one used.
   */
  async function nextRegistrationToken(client: Client, tokenHash: string): Promise<string> {
    const next = randomToken();
    if (!(await ctx.storage.clients.rotateRegistrationToken(client.clientId, tokenHash, sha256(next)))) throw new InvalidTokenError();
    return next;
  }

  const clientPath = `${path}/:clientId`;
  app.get<{ Params: { clientId: string } }>(clientPath, async (request, reply) => {
    noStore(reply);
    const { client, tokenHash } = await authorizedClient(request);
    const registrationAccessToken = await nextRegistrationToken(client, tokenHash);
    return reply.send({ ...clientInformation(client), registration_access_token: registrationAccessToken, registration_client_uri: clientUri(client.clientId) });
  });

  app.put<{ Params: { clientId: string } }>(clientPath, async (request, reply) => {
    noStore(reply);
    const now = ctx.clock();
    const { client, tokenHash } = await authorizedClient(request);
    const body = jsonBody(request);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidClientMetadataError('client metadata must be a JSON object');
    const fields = body as Record<string, unknown>;
    // RFC 7592 §2.2: "The client MUST include its client_id field in the request, and it MUST
    // be the same as its currently issued client identifier."
    if (fields.client_id !== client.clientId) throw new InvalidRequestError('client_id must be the registered client identifier');
    // RFC 7592 §2.2: the request "MUST NOT include the "registration_access_token",
    // "registration_client_uri", "client_secret_expires_at", or "client_id_issued_at" fields".
    for (const name of ['registration_access_token', 'registration_client_uri', 'client_secret_expires_at', 'client_id_issued_at']) {
      if (name in fields) throw new InvalidRequestError(`${name} must not be sent in an update`);
    }
    // RFC 7592 §2.2: "If the client includes the "client_secret" field in the request, the
    // value of this field MUST match the currently issued client secret for that client."
    if (fields.client_secret !== undefined) {
      const found = await ctx.storage.clients.findClientForAuthentication(client.clientId, now);
      const presented = typeof fields.client_secret === 'string' ? sha256(fields.client_secret) : '';
      if (!found?.secretHashes.some((h) => digestsEqual(h, presented))) throw new InvalidRequestError('client_secret does not match');
    }
    // An update may keep or narrow the client's scope, never widen it beyond what it could register.
    const verdict = validateClientMetadata(fields, policy([...client.scope, ...registration.openRegistrationScopes]));
    if (!verdict.ok) throw metadataError(verdict.error, verdict.description);
    if (verdict.metadata.token_endpoint_auth_method !== client.tokenEndpointAuthMethod) {
      throw new InvalidClientMetadataError('token_endpoint_auth_method cannot change; register a new client');
    }
    await ctx.storage.clients.updateClient(metadataToClientInput(client.clientId, verdict.metadata, true), now);
    const updated = await ctx.storage.clients.findClient(client.clientId);
    if (updated === undefined) throw new InvalidTokenError();
    const registrationAccessToken = await nextRegistrationToken(updated, tokenHash);
    return reply.send({ ...clientInformation(updated), registration_access_token: registrationAccessToken, registration_client_uri: clientUri(client.clientId) });
  });

  app.delete<{ Params: { clientId: string } }>(clientPath, async (request, reply) => {
    noStore(reply);
    const { client } = await authorizedClient(request);
    await ctx.storage.clients.deleteClient(client.clientId);
    request.log.info({ client_id: client.clientId }, 'client deleted through registration');
    // RFC 7592 §2.3: "the authorization server responds with an HTTP 204 No Content message".
    return reply.code(204).send();
  });
  methodNotAllowed(app, clientPath, ['GET', 'HEAD', 'PUT', 'DELETE']);
}
