/**
 * Native-app login (RFC 8252): the authorization code flow with PKCE (RFC 7636, S256) through a
 * loopback redirect. A one-shot HTTP listener on 127.0.0.1 with an ephemeral port receives the
 * authorization response (RFC 8252 §7.3); `state` and the RFC 9207 `iss` are checked before the
 * code is redeemed.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import { addScopeAndResource, clientAuthentication, scopeParam } from './client-auth.js';
import { GatehouseClientError, OAuthResponseError } from './errors.js';
import { clampDelay, IssuerConnection, MAX_TIMER_DELAY, throwOnServerFailure, toClientError } from './http.js';
import { loginResult, maybeOpenBrowser, toStderr, type LoginResult, type UserLoginOptions } from './user-login.js';

/** Options of {@link loopbackLogin}. */
export interface LoopbackLoginOptions extends UserLoginOptions {
  /**
   * Called with the authorization URL once the listener is up (after trying to open the
   * browser). Default: prints it on standard error so the user can open it by hand.
   */
  onAuthorizationUrl?: ((url: string, info: { browserOpened: boolean }) => void | Promise<void>) | undefined;
  /** Milliseconds to wait for the browser to come back (default 300 000: five minutes; at most 2³¹−1, about 24.8 days). */
  timeout?: number | undefined;
  /** Path of the redirect URI (default `/callback`; register `http://127.0.0.1/callback`). */
  redirectPath?: string | undefined;
  /** Port to listen on (default 0: an ephemeral port chosen by the system). */
  port?: number | undefined;
}

/** Default wait for the browser, milliseconds. */
export const DEFAULT_LOOPBACK_TIMEOUT = 300_000;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The small page the browser shows at the end. */
function page(title: string, message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`;
}

function send(res: ServerResponse, status: number, title: string, message: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // The URL carries the code: nothing on the page may load, and nothing may see a Referer.
    'content-security-policy': "default-src 'none'",
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    connection: 'close',
  });
  res.end(page(title, message));
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A callback that passed the state check: its parameters, and how to answer the browser. */
interface Callback {
  params: URLSearchParams;
  respond(status: number, title: string, message: string): void;
}

/**
 * Starts the listener on 127.0.0.1; `onCallback` receives each GET on `path` that carries the
 * expected state, until `finish()` is called (later ones are told the sign-in is over).
 */
async function listen(port: number, path: string, expectedState: string, onCallback: (callback: Callback) => void): Promise<{ server: Server; port: number; finish(): void }> {
  let done = false;
  let actualPort = port;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // Only our own origin (no DNS-rebound host names), only GET on the redirect path.
    if (req.headers.host !== `127.0.0.1:${actualPort}`) return send(res, 400, 'Bad request', 'Unexpected host.');
    if (url.pathname !== path) return send(res, 404, 'Not found', 'Nothing here.');
    if (req.method !== 'GET') return send(res, 405, 'Method not allowed', 'Only GET is accepted.');
    if (done) return send(res, 400, 'Sign-in already completed', 'This sign-in has already finished; you can close this tab.');
    // A response that does not carry this login's state is not ours (a stale tab, a forged request): refuse it and keep waiting.
    const state = url.searchParams.get('state');
    if (state === null || url.searchParams.getAll('state').length !== 1 || !sameString(state, expectedState)) {
      return send(res, 400, 'Sign-in response not recognised', NOT_RECOGNISED);
    }
    onCallback({ params: url.searchParams, respond: (status, title, message) => send(res, status, title, message) });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  actualPort = (server.address() as AddressInfo).port;
  return {
    server,
    port: actualPort,
    finish: () => {
      done = true;
    },
  };
}

const NOT_RECOGNISED = 'This response does not belong to the sign-in in progress. Start the sign-in again from the application.';

/**
 * Signs a user in through the browser with the authorization code flow, PKCE S256 and a loopback
 * redirect: listens on `http://127.0.0.1:<ephemeral port>/callback` (register the client with
 * `http://127.0.0.1/callback`; RFC 8252 §7.3 servers accept any port), opens (or shows) the
 * authorization URL, waits for the redirect, checks `state` and `iss` (RFC 9207), redeems the code
 * and validates the ID token (with `nonce` when `openid` is requested).
 *
 * The authorization URL, `state` included, is visible to other local users while a browser
 * opener has it on its command line, so a callback is not trusted for carrying the right `state`
 * alone. Whatever a forger could send is answered 400 and the login keeps waiting for the real
 * browser: a foreign or missing `state`, a wrong or missing `iss`, no code, or a code the token
 * endpoint refuses (`invalid_grant`; PKCE makes a code obtained elsewhere useless here). An error
 * response (`access_denied`, …) with the right `state` and `iss` ends the login with that error:
 * it cannot be told from the user clicking Deny. The listener is closed when the login ends,
 * whatever the outcome.
 *
 * @example
 * ```ts
 * const { tokens, idTokenClaims } = await loopbackLogin({ issuer: 'https://id.example.com', clientId: 'my-app', scope: 'openid offline_access', openBrowser: true });
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3
 * @see https://www.rfc-editor.org/rfc/rfc7636
 * @see https://www.rfc-editor.org/rfc/rfc9207
 */
export async function loopbackLogin(options: LoopbackLoginOptions): Promise<LoginResult> {
  const connection = new IssuerConnection(options);
  const client: oauth.Client = { client_id: options.clientId };
  const signal = options.signal;
  const what = 'loopback login';
  const aborted = () => new GatehouseClientError('aborted', 'the login was aborted', { cause: signal?.reason });
  const timeout = options.timeout ?? DEFAULT_LOOPBACK_TIMEOUT;
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > MAX_TIMER_DELAY) {
    throw new GatehouseClientError('invalid_configuration', `the loopback timeout must be a positive number of milliseconds up to ${MAX_TIMER_DELAY}`);
  }
  if (signal?.aborted) throw aborted();
  let as: oauth.AuthorizationServer;
  try {
    as = await connection.metadata(signal);
  } catch (err) {
    throw await toClientError(err, what);
  }
  if (as.authorization_endpoint === undefined) {
    throw new GatehouseClientError('invalid_configuration', 'the authorization server does not advertise an authorization_endpoint');
  }
  const authorizationEndpoint = new URL(as.authorization_endpoint);
  if (authorizationEndpoint.protocol !== 'https:' && !(authorizationEndpoint.protocol === 'http:' && connection.issuer.protocol === 'http:')) {
    throw new GatehouseClientError('invalid_response', 'the authorization endpoint must use https');
  }

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const scope = scopeParam(options.scope);
  const nonce = scope?.split(' ').includes('openid') ? oauth.generateRandomNonce() : undefined;
  const path = options.redirectPath ?? '/callback';

  // The callbacks carrying this login's state, taken one at a time in arrival order; and why the
  // wait ended early (timeout, abort). Nothing here is a promise that could reject unobserved.
  const queue: Callback[] = [];
  let arrived: () => void = () => undefined;
  let stopped: GatehouseClientError | undefined;
  let halt!: () => void;
  const halted = new Promise<void>((resolve) => {
    halt = resolve;
  });
  const stop = (err: GatehouseClientError) => {
    stopped ??= err;
    halt();
  };
  /** `promise`, unless the login is stopped first (then its error). */
  const unlessStopped = async <T>(promise: Promise<T>): Promise<T> => {
    const outcome = await Promise.race([promise.then((value) => ({ value })), halted.then(() => undefined)]);
    if (stopped !== undefined) throw stopped;
    return (outcome as { value: T }).value;
  };
  const nextCallback = async (): Promise<Callback> => {
    for (;;) {
      if (stopped !== undefined) throw stopped;
      const callback = queue.shift();
      if (callback !== undefined) return callback;
      await Promise.race([new Promise<void>((resolve) => (arrived = resolve)), halted]);
    }
  };

  if (signal?.aborted) throw aborted();
  const listener = await listen(options.port ?? 0, path, state, (callback) => {
    queue.push(callback);
    arrived();
  });
  const redirectUri = `http://127.0.0.1:${listener.port}${path}`;
  const timer = setTimeout(() => stop(new GatehouseClientError('timeout', `no answer from the browser within ${Math.round(timeout / 1000)} s`)), clampDelay(timeout));
  const onAbort = () => stop(aborted());
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();

  try {
    const params = new URLSearchParams(options.additionalParameters);
    params.set('response_type', 'code');
    params.set('client_id', options.clientId);
    params.set('redirect_uri', redirectUri);
    params.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    params.set('code_challenge_method', 'S256');
    params.set('state', state);
    if (nonce !== undefined) params.set('nonce', nonce);
    params.delete('scope');
    params.delete('resource');
    addScopeAndResource(params, options);
    for (const [name, value] of params) authorizationEndpoint.searchParams.append(name, value);
    const url = authorizationEndpoint.href;

    // The opener and the prompt may take their time: the timeout and the signal still end the login meanwhile.
    const browserOpened = await unlessStopped(maybeOpenBrowser(options.openBrowser, url));
    const show = options.onAuthorizationUrl ?? ((u, info) => printAuthorizationUrl(u, info.browserOpened));
    await unlessStopped(Promise.resolve().then(() => show(url, { browserOpened })));

    for (;;) {
      const callback = await nextCallback();
      let validated: URLSearchParams;
      try {
        // RFC 9207 iss, state again, error responses (AuthorizationResponseError), no implicit tokens.
        validated = oauth.validateAuthResponse(as, client, callback.params, state);
      } catch (caught) {
        const err = await toClientError(caught, what);
        if (err instanceof OAuthResponseError) {
          // An error response that passed the state and iss checks: the user (or the server) said no.
          callback.respond(400, 'Sign-in failed', `The sign-in did not complete (${err.code}). Return to the application for details.`);
          throw err;
        }
        callback.respond(400, 'Sign-in response not recognised', NOT_RECOGNISED);
        continue;
      }
      if ((validated.get('code') ?? '') === '') {
        callback.respond(400, 'Sign-in response not recognised', NOT_RECOGNISED);
        continue;
      }
      try {
        const response = await oauth.authorizationCodeGrantRequest(as, client, clientAuthentication(as, options), validated, redirectUri, verifier, connection.requestOptions(signal));
        await throwOnServerFailure(response);
        const result = await oauth.processAuthorizationCodeResponse(as, client, response, nonce === undefined ? {} : { expectedNonce: nonce });
        callback.respond(200, 'Signed in', 'You are signed in. You can close this tab and return to the application.');
        return loginResult(as, result, Math.floor(Date.now() / 1000));
      } catch (caught) {
        const err = await toClientError(caught, what);
        if (err.code === 'invalid_grant') {
          // Not a code issued for this request (PKCE, redirect URI): a forged callback. The real one may still come.
          callback.respond(400, 'Sign-in response not recognised', NOT_RECOGNISED);
          continue;
        }
        const failure = err.code === 'invalid_response' ? new GatehouseClientError('invalid_callback', `${what}: the authorization response was refused (${err.message})`, { cause: err }) : err;
        callback.respond(400, 'Sign-in failed', `The sign-in did not complete (${failure.code}). Return to the application for details.`);
        throw failure;
      }
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    listener.finish();
    for (const waiting of queue.splice(0)) waiting.respond(400, 'Sign-in already completed', 'This sign-in has already finished; you can close this tab.');
    await closeServer(listener.server);
  }
}

/** Closes the listener: idle connections at once, a connection still busy after a second by force. */
function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), 1000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** The default `onAuthorizationUrl`: tells the user on standard error where to sign in. */
export function printAuthorizationUrl(url: string, browserOpened: boolean, write: (line: string) => void = toStderr): void {
  write(browserOpened ? 'Your browser has been opened to sign in. If it did not open, visit:' : 'To sign in, open this URL in your browser:');
  write(url);
  write('Waiting for the browser to come back…');
}
