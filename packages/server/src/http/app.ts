import { randomUUID } from 'node:crypto';
import { createServer, ServerResponse, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { InvalidRequestError, OAuthError, ServerError, TemporarilyUnavailableError } from '../errors.js';
import type { Logger } from '../logging.js';
import { Metrics, UNMATCHED_ROUTE } from '../metrics.js';
import { isStorageUnavailable } from '../storage/database.js';
import { sendOAuthError, sentOAuthError } from './reply.js';

export interface HttpOptions {
  logger: Logger;
  /** Every answered request is counted here, by route pattern (never the URL), method and status; a registry of its own when absent. */
  metrics?: Metrics;
  bodyLimit: number;
  requestTimeout: number;
  maxConnections: number;
  trustedProxies: string[];
  /** Browser pages: their errors are HTML pages, not JSON. */
  pageErrors?: PageErrors;
  /** Admission when a request arrives (rate limits): an error refuses it before its body is read. */
  admit?: (request: FastifyRequest) => OAuthError | undefined;
}

/** How the error handler answers on the routes of browser pages (sign-in, consent, device, account, logout). */
export interface PageErrors {
  /** Whether the route (its pattern) is a page's. */
  isPage(route: string): boolean;
  render(request: FastifyRequest, reply: FastifyReply, status: number, title: string, message: string): FastifyReply;
}

/** Fastify's own client errors, mapped to the RFC 6749 `invalid_request`. */
function mapFrameworkError(err: FastifyError): OAuthError | undefined {
  const status = err.statusCode ?? 0;
  if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new OAuthError('invalid_request', 413, 'the request body is too large');
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new InvalidRequestError('unsupported or malformed request body');
  }
  if (status >= 400 && status < 500) return new InvalidRequestError('malformed request');
  return undefined;
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (malformed HTTP, oversized
 * headers, a timed-out request), answered in the same JSON error model as every other error.
 */
function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, description] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request took too long']
        : [400, 'malformed HTTP request'];
  const body = JSON.stringify(new OAuthError('invalid_request', status, description).toJSON());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\npragma: no-cache\r\nx-request-id: ${randomUUID()}\r\n` +
        `x-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Header fields that may appear once only; Node would silently keep the first of several. */
const SINGLETON_HEADERS = new Set(['authorization', 'content-type']);

/**
 * RFC 9110 §5.3: "A sender MUST NOT generate multiple field lines with the same name in a
 * message [...] unless that field's definition allows multiple field line values to be
 * recombined as a comma-separated list". Two Authorization (or Content-Type) lines are refused
 * rather than guessed at: Node keeps the first, a proxy in front may have checked another.
 */
function repeatedSingletonHeader(raw: readonly string[]): InvalidRequestError | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]?.toLowerCase();
    if (name === undefined || !SINGLETON_HEADERS.has(name)) continue;
    if (seen.has(name)) return new InvalidRequestError(`the ${name} header must not be repeated`);
    seen.add(name);
  }
  return undefined;
}

/**
 * The HTTP shell shared by every endpoint: strict body parsing, one JSON error model, one log
 * line per request. Endpoints register their routes on the returned instance.
 */
export function createHttpApp(options: HttpOptions): FastifyInstance {
  const metrics = options.metrics ?? new Metrics();
  /** Counts an answered request and writes its log line. */
  const answered = (request: FastifyRequest, reply: FastifyReply): void => {
    // The route pattern (`/interaction/:id`), never the URL: no code, token or id in a label.
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const status = reply.statusCode;
    const ms = reply.elapsedTime;
    metrics.observeRequest(route, request.method, status, ms / 1000);
    if (status >= 400) {
      const error = sentOAuthError(reply);
      if (error !== undefined) metrics.oauthError(route, error);
    }
    request.log.info({ method: request.method, route, status, ms: Math.round(ms * 100) / 100 }, 'request');
  };

  // Graceful shutdown: once close() starts, requests still arriving on open connections are
  // refused with 503 temporarily_unavailable (nothing is executed), and every answer, in-flight
  // ones included, closes its connection (`Connection: close`, set by the response class below)
  // so clients reconnect to another instance.
  let closing = false;
  /** Answers that close their connection once the server is closing. */
  class ShellResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
    override writeHead(...args: [statusCode: number, ...rest: unknown[]]): this {
      if (closing) this.shouldKeepAlive = false;
      // Passed on as received, in either of writeHead's two forms.
      return super.writeHead(...(args as Parameters<ServerResponse['writeHead']>));
    }
  }
  /** The headers of every answer: its request id and no MIME sniffing. */
  const shellHeaders = (request: FastifyRequest, reply: FastifyReply): void => {
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
  };

  const app = Fastify({
    // Timeouts enforced within a second (Node checks every 30 s by default), connections capped:
    // a client dripping headers or a body cannot hold a connection past requestTimeout.
    serverFactory: (handler) => {
      const server = createServer(
        { connectionsCheckingInterval: 1000, headersTimeout: options.requestTimeout, requestTimeout: options.requestTimeout, ServerResponse: ShellResponse },
        handler,
      );
      server.maxConnections = options.maxConnections;
      return server;
    },
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per request, written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    bodyLimit: options.bodyLimit,
    requestTimeout: options.requestTimeout,
    connectionTimeout: options.requestTimeout,
    trustProxy: options.trustedProxies.length > 0 ? options.trustedProxies : false,
    // Requests arriving while the server closes get the OAuth 503 below, not Fastify's own body.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // Malformed percent-encoding in the path, over-long path parameters: invalid_request too.
    frameworkErrors: (err, request, reply) => {
      // Refused before any hook runs: the headers the onRequest hook gives every other answer.
      shellHeaders(request, reply);
      sendOAuthError(reply, mapFrameworkError(err) ?? new InvalidRequestError('malformed request'));
      // Refused by the router, before any hook (so no onResponse): counted here, as unmatched.
      answered(request, reply);
    },
    clientErrorHandler: onClientError,
  });

  // Keep form bodies raw: protocol endpoints parse them strictly (duplicates, UTF-8, empties).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('preClose', async () => {
    closing = true;
  });
  // One synchronous hook for every request's shell checks (each hook costs a turn of Fastify's
  // hook runner on the hot path).
  app.addHook('onRequest', (request, reply, done) => {
    // Set first, so that every answer carries them, refusals and errors included.
    shellHeaders(request, reply);
    if (closing) return done(new TemporarilyUnavailableError('the server is shutting down; try again'));
    done(repeatedSingletonHeader(request.raw.rawHeaders) ?? options.admit?.(request));
  });

  app.addHook('onResponse', (request, reply, done) => {
    answered(request, reply);
    done();
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    let error: OAuthError;
    if (err instanceof OAuthError) {
      if (err.status >= 500) request.log.warn({ err: err.cause ?? err, error: err.code }, 'request failed');
      error = err;
    } else if (isStorageUnavailable(err)) {
      request.log.warn({ err }, 'storage unavailable');
      error = new TemporarilyUnavailableError();
    } else {
      const mapped = mapFrameworkError(err);
      if (mapped === undefined) request.log.error({ err }, 'unexpected error');
      error = mapped ?? new ServerError();
    }
    const pages = options.pageErrors;
    if (pages === undefined || !pages.isPage(request.routeOptions.url ?? '')) return sendOAuthError(reply, error);
    // A person is looking at this one: the same status and headers, as a page.
    for (const [name, value] of Object.entries(error.headers)) if (name !== 'www-authenticate') reply.header(name, value);
    if (error.status === 429) return pages.render(request, reply, 429, 'Too many requests', `Too many requests from your network. Wait ${error.headers['retry-after'] ?? 'a few'} seconds and try again.`);
    if (error.status === 503) return pages.render(request, reply, 503, 'Temporarily unavailable', 'The service cannot answer right now. Try again in a moment.');
    if (error.status >= 500) return pages.render(request, reply, error.status, 'Something went wrong', 'The request could not be completed. Try again later.');
    return pages.render(request, reply, error.status, 'Invalid request', 'The request could not be understood. Go back and try again.');
  });

  app.setNotFoundHandler((_request, reply) => sendOAuthError(reply, new OAuthError('invalid_request', 404, 'not found')));

  return app;
}

/** Registers 405 answers for the methods an endpoint does not accept. */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: readonly string[]): void {
  const others = (['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const).filter((m) => !allowed.includes(m));
  app.route({
    method: [...others],
    url,
    handler: async (_request, reply) => {
      reply.header('allow', allowed.join(', '));
      return sendOAuthError(reply, new OAuthError('invalid_request', 405, 'method not allowed'));
    },
  });
}
