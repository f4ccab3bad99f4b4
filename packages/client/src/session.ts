/**
 * Signed-in CLI sessions: log in once (device or loopback), keep the tokens in a private file,
 * hand out fresh access tokens (refreshing and saving the rotated refresh token first), and log
 * out (revoke at the server, delete the file).
 */
import * as oauth from 'oauth4webapi';
import { createAuthenticatedFetch, type AccessTokenProvider } from './authenticated-fetch.js';
import { clientAuthentication, resourceList, scopeParam, type ClientAuthOptions } from './client-auth.js';
import { deviceLogin, type DeviceLoginOptions } from './device-login.js';
import { GatehouseClientError, LoginRequiredError } from './errors.js';
import { IssuerConnection, neverSent, raceAbort, sleep, throwOnServerFailure, toClientError, type ConnectionOptions, type FetchLike } from './http.js';
import { decodeJwtClaims } from './jwt.js';
import { loopbackLogin, type LoopbackLoginOptions } from './loopback-login.js';
import { withRetry } from './retry.js';
import { SessionStore, type StoredSession } from './session-store.js';
import type { LoginResult } from './user-login.js';

/** How a user login is done: the device grant, a loopback redirect, or `auto` (device when the server offers it). */
export type LoginMethod = 'device' | 'loopback' | 'auto';

/** Options of {@link login}: those of both flows, plus where to store the session. */
export interface LoginOptions extends DeviceLoginOptions, LoopbackLoginOptions {
  /** `auto` (default): the device grant when the server advertises `device_authorization_endpoint`, else loopback. */
  method?: LoginMethod | undefined;
  /** The configuration directory (default: see {@link defaultConfigDir}). */
  configDir?: string | undefined;
  /** The session store (default: one on `configDir`); e.g. with other lock timings. */
  store?: SessionStore | undefined;
}

/** What {@link login} did. */
export interface LoginOutcome {
  /** The session as saved. */
  session: StoredSession;
  /** The file it was saved to (mode 0600). */
  file: string;
  /** The flow that was used. */
  method: 'device' | 'loopback';
  /**
   * When the login replaced a stored session of the same issuer and client: the revocation of its
   * tokens (refresh token first), as in {@link LogoutResult.revoked}. Empty when the server has no
   * revocation endpoint.
   */
  replaced?: { revoked: LogoutResult['revoked'] } | undefined;
}

/**
 * Revokes one token (RFC 7009) at the session's revocation endpoint; resolves to the error, if any.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7009#section-2.1
 */
async function revokeToken(
  connection: IssuerConnection,
  session: StoredSession,
  auth: ClientAuthOptions,
  token: string,
  hint: 'refresh_token' | 'access_token',
  signal: AbortSignal | undefined,
): Promise<GatehouseClientError | undefined> {
  const as = metadataOf(session);
  try {
    const response = await oauth.revocationRequest(as, { client_id: session.client_id }, clientAuthentication(as, auth), token, {
      ...connection.requestOptions(signal),
      additionalParameters: { token_type_hint: hint },
    });
    await throwOnServerFailure(response);
    await oauth.processRevocationResponse(response);
    return undefined;
  } catch (err) {
    return toClientError(err, `revocation of the ${hint.replace('_', ' ')}`);
  }
}

/** Revokes a session's refresh token, then its access token; empty when the server has no revocation endpoint. */
async function revokeSession(connection: IssuerConnection, session: StoredSession, auth: ClientAuthOptions, signal: AbortSignal | undefined): Promise<LogoutResult['revoked']> {
  const revoked: LogoutResult['revoked'] = [];
  if (session.revocation_endpoint === undefined) return revoked;
  // RFC 7009 §2.1: revoking the refresh token first also ends the access tokens of its grant on most servers.
  if (session.refresh_token !== undefined) revoked.push({ token_type_hint: 'refresh_token', error: await revokeToken(connection, session, auth, session.refresh_token, 'refresh_token', signal) });
  revoked.push({ token_type_hint: 'access_token', error: await revokeToken(connection, session, auth, session.access_token, 'access_token', signal) });
  return revoked;
}

/**
 * Runs `work` under the session lock. When only the wait for the lock runs out (another process
 * is slow to let go), runs it without the lock after `onNoLock`; an error of `work` itself, a
 * timeout included, is thrown as it is.
 */
async function underLockOrNot<T>(
  store: SessionStore,
  issuer: string,
  clientId: string,
  work: () => Promise<T>,
  options: { signal?: AbortSignal | undefined; onNoLock?: () => void } = {},
): Promise<T> {
  let ran = false;
  try {
    return await store.withLock(
      issuer,
      clientId,
      () => {
        ran = true;
        return work();
      },
      { signal: options.signal },
    );
  } catch (err) {
    if (ran || !(err instanceof GatehouseClientError && err.code === 'timeout')) throw err;
    options.onNoLock?.();
    return work();
  }
}

/**
 * Signs the user in (device grant or loopback redirect, see {@link deviceLogin} and
 * {@link loopbackLogin}) and stores the session in the configuration directory, replacing any
 * earlier session for the same issuer and client. The file is written under the session lock (so
 * no refresh of the old session overwrites it); the replaced session's tokens are then revoked,
 * best effort (see {@link LoginOutcome.replaced}). A session directory other users can write to
 * is refused before the login starts (`insecure_permissions`).
 *
 * @example
 * ```ts
 * const { file } = await login({ issuer: 'https://id.example.com', clientId: 'my-cli', scope: 'openid offline_access', openBrowser: true });
 * ```
 */
export async function login(options: LoginOptions): Promise<LoginOutcome> {
  const connection = new IssuerConnection(options);
  const store = options.store ?? new SessionStore(options.configDir);
  // Before the user signs in: tokens that could not be stored safely would be lost.
  await store.checkDirectory();
  let metadata: oauth.AuthorizationServer;
  try {
    metadata = await connection.metadata(options.signal);
  } catch (err) {
    throw await toClientError(err, 'login');
  }
  const requested = options.method ?? 'auto';
  const method = requested === 'auto' ? (metadata.device_authorization_endpoint === undefined ? 'loopback' : 'device') : requested;
  const flowOptions = { ...options, metadata, fetch: connection.fetch };
  const result = method === 'device' ? await deviceLogin(flowOptions) : await loopbackLogin(flowOptions);
  const session = sessionFromLogin(result, options.clientId, resourceList(options.resource));

  let replaced: StoredSession | undefined;
  const save = async () => {
    // A damaged or unsafe file is simply replaced: its content is not trusted enough to revoke.
    replaced = await store.read(session.issuer, session.client_id).catch(() => undefined);
    return store.write(session);
  };
  // The new tokens must not be lost because another process is slow to release the lock: the
  // write is atomic anyway.
  const file = await underLockOrNot(store, session.issuer, session.client_id, save);
  const old = replaced;
  if (old === undefined || old.refresh_token === session.refresh_token) return { session, file, method };
  return { session, file, method, replaced: { revoked: await revokeSession(connection, old, options, options.signal) } };
}

function sessionFromLogin(result: LoginResult, clientId: string, resource: string[]): StoredSession {
  const as = result.metadata;
  if (as.token_endpoint === undefined) throw new GatehouseClientError('invalid_response', 'the authorization server has no token_endpoint');
  const now = Math.floor(Date.now() / 1000);
  return {
    version: 1,
    issuer: as.issuer,
    client_id: clientId,
    token_endpoint: as.token_endpoint,
    revocation_endpoint: as.revocation_endpoint,
    userinfo_endpoint: as.userinfo_endpoint,
    id_token_signing_alg_values_supported: as.id_token_signing_alg_values_supported,
    access_token: result.tokens.access_token,
    token_type: result.tokens.token_type,
    expires_at: result.expiresAt,
    refresh_token: result.tokens.refresh_token,
    scope: result.tokens.scope,
    resource: resource.length > 0 ? resource : undefined,
    id_token_claims: result.idTokenClaims,
    created_at: now,
    updated_at: now,
  };
}

/** The metadata a stored session carries: enough to refresh, revoke and call userinfo without discovery. */
function metadataOf(session: StoredSession): oauth.AuthorizationServer {
  return {
    issuer: session.issuer,
    token_endpoint: session.token_endpoint,
    revocation_endpoint: session.revocation_endpoint,
    userinfo_endpoint: session.userinfo_endpoint,
    id_token_signing_alg_values_supported: session.id_token_signing_alg_values_supported,
  };
}

/** Options of {@link openSession}. */
export interface SessionOptions extends Omit<ConnectionOptions, 'issuer' | 'metadata'>, ClientAuthOptions {
  /** The issuer; with `clientId` absent too, the only stored session is used. */
  issuer?: string | undefined;
  /** The client; when absent, the only stored session (of `issuer`, when given) is used. */
  clientId?: string | undefined;
  /** The configuration directory (default: see {@link defaultConfigDir}). */
  configDir?: string | undefined;
  /** The session store (default: one on `configDir`); e.g. with other lock timings. */
  store?: SessionStore | undefined;
  /** Seconds of validity an access token must have left to be handed out (default 60). */
  minValidity?: number | undefined;
  /** The clock, milliseconds since the epoch (default `Date.now`); for tests. */
  now?: (() => number) | undefined;
}

/**
 * The outcome of {@link Session.logout}: which tokens the server was asked to revoke (refresh
 * token first) and with what result, and whether the file was deleted (it always is, revocation
 * or not — even when the lock could not be had or the file was damaged: see `warnings`).
 */
export interface LogoutResult {
  issuer: string;
  client_id: string;
  /** The session file that was deleted. */
  file: string;
  deleted: boolean;
  /** Whether the server has a revocation endpoint; without one nothing was revoked. */
  revocationSupported: boolean;
  /** One entry per token sent for revocation (RFC 7009), with the error when it failed. */
  revoked: Array<{ token_type_hint: 'refresh_token' | 'access_token'; error?: GatehouseClientError | undefined }>;
  /** What did not go as it should but did not stop the logout (the lock wait ran out, the file was damaged). */
  warnings: string[];
}

/** What `whoami` shows: claims from the tokens (not verified: for display) and the userinfo answer. */
export interface SessionDescription {
  issuer: string;
  client_id: string;
  scope: string | undefined;
  /** Seconds since the epoch when the current access token expires. */
  expires_at: number | undefined;
  /** The access token's claims when it is a JWT (decoded, not verified). */
  access_token_claims: Record<string, unknown> | undefined;
  /** The ID token's claims, validated when it was received. */
  id_token_claims: Record<string, unknown> | undefined;
  /** The OpenID Connect userinfo answer, when the server has the endpoint and the session has `openid`. */
  userinfo: Record<string, unknown> | undefined;
  /** Why userinfo could not be read, when it was tried and failed. */
  userinfo_error: string | undefined;
}

/** A stored session opened for use. */
export interface Session extends AccessTokenProvider {
  readonly issuer: string;
  readonly clientId: string;
  /** The session file. */
  readonly file: string;
  /** The session as last read or saved (holds tokens: never log it). */
  readonly data: StoredSession;
  /**
   * A valid access token: the stored one when it has more than `minValidity` seconds left,
   * otherwise a refreshed one. The refresh happens under a file lock (one process at a time), and
   * the new tokens — the rotated refresh token above all — are saved before this resolves. A
   * refused refresh token (`invalid_grant`) is a {@link LoginRequiredError}.
   *
   * Concurrent callers share one refresh. `signal` ends this caller's wait only (an `aborted`
   * error): the refresh goes on and its result is saved, because once the request is sent the
   * server may have rotated the refresh token. The refresh has its own time limit (see
   * {@link SessionStoreOptions.maxLockHold}).
   */
  getToken(options?: { signal?: AbortSignal | undefined; minValidity?: number | undefined }): Promise<string>;
  /** Refreshes now, whatever the expiry; resolves to the saved session. */
  refresh(): Promise<StoredSession>;
  /** Marks `token` (default: the current access token) as rejected: the next `getToken()` refreshes. */
  invalidate(token?: string): void;
  /** `fetch` with the session's access token; see {@link createAuthenticatedFetch}. */
  fetch: FetchLike;
  /** Claims and userinfo, for `whoami`. */
  describe(options?: { signal?: AbortSignal | undefined }): Promise<SessionDescription>;
  /**
   * Revokes the refresh token, then the access token (RFC 7009), and deletes the file even if
   * revocation fails, the session lock cannot be had in time, or the file has become damaged
   * (the tokens last read are revoked then); those cases are reported in `warnings`.
   */
  logout(options?: { signal?: AbortSignal | undefined }): Promise<LogoutResult>;
}

/** Lists the stored sessions of a configuration directory, for choosing one. */
export async function listSessions(configDir?: string): Promise<Array<Pick<StoredSession, 'issuer' | 'client_id' | 'scope' | 'expires_at'>>> {
  const sessions = await new SessionStore(configDir).list();
  return sessions.map(({ issuer, client_id, scope, expires_at }) => ({ issuer, client_id, scope, expires_at }));
}

async function findSession(store: SessionStore, issuer: string | undefined, clientId: string | undefined): Promise<StoredSession> {
  if (issuer !== undefined && clientId !== undefined) {
    const session = await store.read(issuer, clientId);
    if (session === undefined) throw new LoginRequiredError(`no stored session for client ${clientId} at ${issuer}; run login first`);
    return session;
  }
  const sameIssuer = (a: string, b: string) => a === b || a.replace(/\/$/, '') === b.replace(/\/$/, '');
  const matching = (await store.list()).filter((s) => (issuer === undefined || sameIssuer(s.issuer, issuer)) && (clientId === undefined || s.client_id === clientId));
  const [only] = matching;
  if (only !== undefined && matching.length === 1) return only;
  if (matching.length === 0) throw new LoginRequiredError('no stored session; run login first');
  const names = matching.map((s) => `  ${s.issuer} (client ${s.client_id})`).join('\n');
  throw new GatehouseClientError('ambiguous_session', `several stored sessions match; choose one with the issuer and client id:\n${names}`);
}

/**
 * Opens a stored session: the one for `issuer` and `clientId`, or the only one stored (of
 * `issuer`, if given). No stored session is a {@link LoginRequiredError}; several candidates are
 * an `ambiguous_session` error listing them.
 *
 * @example
 * ```ts
 * const session = await openSession();                 // the only stored session
 * const response = await session.fetch('https://orders.example.com/orders');
 * ```
 */
export async function openSession(options: SessionOptions = {}): Promise<Session> {
  const store = options.store ?? new SessionStore(options.configDir);
  let current = await findSession(store, options.issuer, options.clientId);
  const issuer = current.issuer;
  const clientId = current.client_id;
  const connection = new IssuerConnection({ ...options, issuer });
  const client: oauth.Client = { client_id: clientId };
  const now = options.now ?? Date.now;
  let rejected: string | undefined;
  let inflight: Promise<StoredSession> | undefined;

  const usable = (s: StoredSession, minValidity: number) =>
    s.access_token !== rejected && (s.expires_at === undefined || s.expires_at - now() / 1000 > minValidity);

  /**
   * One refresh request. `onRotated` receives the new refresh token of a successful (200) answer
   * that then fails a check (an ID token that does not validate, an unsupported token type): the
   * server has rotated the token by then, so the old one is dead and the new one must be kept.
   */
  async function refreshRequest(session: StoredSession, refreshToken: string, signal: AbortSignal, onRotated: (token: string) => void): Promise<StoredSession> {
    const as = metadataOf(session);
    let answer: Response | undefined;
    try {
      const response = await oauth.refreshTokenGrantRequest(as, client, clientAuthentication(as, options), refreshToken, connection.requestOptions(signal));
      await throwOnServerFailure(response);
      if (response.status === 200) answer = response.clone();
      const result = await oauth.processRefreshTokenResponse(as, client, response);
      await answer?.body?.cancel().catch(() => undefined);
      const claims = oauth.getValidatedIdTokenClaims(result);
      const at = Math.floor(now() / 1000);
      return {
        ...session,
        access_token: result.access_token,
        token_type: result.token_type,
        expires_at: result.expires_in === undefined ? undefined : at + result.expires_in,
        // RFC 6749 §6: without a new refresh token, the old one stays valid.
        refresh_token: result.refresh_token ?? refreshToken,
        scope: result.scope ?? session.scope,
        id_token_claims: claims === undefined ? session.id_token_claims : { ...claims },
        updated_at: at,
      };
    } catch (err) {
      if (answer !== undefined) {
        const body: unknown = await answer.json().catch(() => undefined);
        const rotated = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).refresh_token : undefined;
        if (typeof rotated === 'string' && rotated !== '' && rotated !== refreshToken) onRotated(rotated);
      }
      const failure = await toClientError(err, 'token refresh');
      if (failure.code === 'invalid_grant') {
        throw new LoginRequiredError('the session has ended (the refresh token was refused); run login again', { status: failure.status, cause: failure });
      }
      throw failure;
    }
  }

  /**
   * Refreshes under the file lock, re-reading first: another process may have refreshed already.
   * The refresh runs on the lock's signal (its time limit, or the lock lost), never on a caller's:
   * a caller giving up must not cancel a request the server may already have acted on, and so
   * lose the rotated refresh token for everyone.
   */
  function refreshShared(force: boolean, minValidity: number): Promise<StoredSession> {
    if (inflight !== undefined) return inflight;
    const flight = store
      .withLock(issuer, clientId, async (lock) => {
        const latest = await store.read(issuer, clientId);
        if (latest === undefined) throw new LoginRequiredError('the stored session is gone (logged out?); run login again');
        current = latest;
        if (!force && usable(latest, minValidity)) return latest;
        const refreshToken = latest.refresh_token;
        if (refreshToken === undefined) throw new LoginRequiredError('the access token has expired and the session has no refresh token; run login again');
        let rotated: string | undefined;
        try {
          // Repeat a refresh only when the server surely did not rotate the token (it was never
          // reached, or said 503/429): presenting a rotated refresh token again ends the session.
          const next = await withRetry(
            () =>
              refreshRequest(latest, refreshToken, lock.signal, (token) => {
                rotated = token;
              }),
            { attempts: 3, baseDelay: 250, maxDelay: 5_000 },
            {
              sleep,
              random: Math.random,
              signal: lock.signal,
              retryIf: (err) => err.status === 503 || err.status === 429 || (err.code === 'network_error' && neverSent(err.cause)),
            },
          );
          await store.write(next);
          current = next;
          rejected = undefined;
          return next;
        } catch (err) {
          if (rotated !== undefined) {
            // The answer failed a check after the server rotated the refresh token: keep the new
            // one (the access token stays the old one), so the session survives the failure.
            const kept: StoredSession = { ...latest, refresh_token: rotated, updated_at: Math.floor(now() / 1000) };
            await store.write(kept);
            current = kept;
          }
          throw err;
        }
      })
      .finally(() => {
        if (inflight === flight) inflight = undefined;
      });
    // Every caller may have given up (their signals fired) before it ends: not an unhandled rejection.
    flight.catch(() => undefined);
    inflight = flight;
    return flight;
  }

  async function userinfo(signal: AbortSignal | undefined): Promise<Pick<SessionDescription, 'userinfo' | 'userinfo_error'>> {
    const scopes = scopeParam(current.scope)?.split(' ') ?? [];
    if (current.userinfo_endpoint === undefined || !scopes.includes('openid')) return { userinfo: undefined, userinfo_error: undefined };
    try {
      const token = await session.getToken({ signal });
      const as = metadataOf(current);
      const response = await oauth.userInfoRequest(as, client, token, connection.requestOptions(signal));
      await throwOnServerFailure(response);
      const sub = current.id_token_claims?.sub;
      const info = await oauth.processUserInfoResponse(as, client, typeof sub === 'string' ? sub : oauth.skipSubjectCheck, response);
      return { userinfo: { ...info }, userinfo_error: undefined };
    } catch (err) {
      const failure = await toClientError(err, 'userinfo');
      if (failure instanceof LoginRequiredError) throw failure;
      return { userinfo: undefined, userinfo_error: failure.code };
    }
  }

  const session: Session = {
    issuer,
    clientId,
    file: store.pathFor(issuer, clientId),
    get data() {
      return current;
    },
    async getToken(callOptions = {}) {
      const minValidity = callOptions.minValidity ?? options.minValidity ?? 60;
      if (usable(current, minValidity)) return current.access_token;
      return (await raceAbort(refreshShared(false, minValidity), callOptions.signal)).access_token;
    },
    refresh: () => refreshShared(true, 0),
    invalidate(token) {
      if (token === undefined || token === current.access_token) rejected = current.access_token;
    },
    fetch: (input, init) => authenticated(input, init),
    async describe(callOptions = {}) {
      const info = await userinfo(callOptions.signal);
      return {
        issuer,
        client_id: clientId,
        scope: current.scope,
        expires_at: current.expires_at,
        access_token_claims: decodeJwtClaims(current.access_token),
        id_token_claims: current.id_token_claims,
        ...info,
      };
    },
    async logout(callOptions = {}) {
      const warnings: string[] = [];
      const work = async (): Promise<LogoutResult> => {
        try {
          current = (await store.read(issuer, clientId)) ?? current;
        } catch (err) {
          // Damaged (or made unsafe) since it was opened: revoke what was read then, delete it anyway.
          warnings.push(`${err instanceof Error ? err.message : String(err)}; revoking the tokens read when the session was opened`);
        }
        const revoked = await revokeSession(connection, current, options, callOptions.signal);
        const deleted = await store.delete(issuer, clientId);
        return { issuer, client_id: clientId, file: store.pathFor(issuer, clientId), deleted, revocationSupported: current.revocation_endpoint !== undefined, revoked, warnings };
      };
      // Logging out must not depend on another process letting go of the lock.
      return underLockOrNot(store, issuer, clientId, work, {
        signal: callOptions.signal,
        onNoLock: () => warnings.push('another process held the session lock; logged out without it'),
      });
    },
  };
  const authenticated = createAuthenticatedFetch(session, { fetch: connection.fetch });
  return session;
}
