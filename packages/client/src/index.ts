/**
 * @gatehouse/client: OAuth 2.1 / OpenID Connect clients on oauth4webapi, for any
 * standards-compliant authorization server (everything is discovery-driven):
 * service tokens with the client credentials grant ({@link createTokenSource}), a `fetch` that
 * attaches them ({@link createAuthenticatedFetch}), device login for CLIs ({@link deviceLogin}),
 * loopback PKCE login for native apps ({@link loopbackLogin}), and stored CLI sessions
 * ({@link login}, {@link openSession}).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749
 * @see https://www.rfc-editor.org/rfc/rfc8628
 * @see https://www.rfc-editor.org/rfc/rfc8252
 */
export {
  GatehouseClientError,
  OAuthResponseError,
  LoginRequiredError,
  type ClientErrorCode,
  type ClientErrorOptions,
  type LibraryErrorCode,
  type OAuthErrorCode,
} from './errors.js';
export { discover, isLoopbackUrl, DEFAULT_REQUEST_TIMEOUT, MAX_TIMER_DELAY, type ConnectionOptions, type FetchLike } from './http.js';
export { DEFAULT_RETRY, type RetryOptions } from './retry.js';
export { type ClientAuthOptions, type TokenSet } from './client-auth.js';
export { createTokenSource, renewalTime, type CachedAccessToken, type TokenSource, type TokenSourceOptions } from './token-source.js';
export { createAuthenticatedFetch, isInvalidTokenChallenge, isReplayable, type AccessTokenProvider, type AuthenticatedFetchOptions } from './authenticated-fetch.js';
export { type LoginResult, type UserLoginOptions } from './user-login.js';
export { deviceLogin, printDevicePrompt, type DeviceLoginOptions, type DevicePrompt } from './device-login.js';
export { loopbackLogin, printAuthorizationUrl, DEFAULT_LOOPBACK_TIMEOUT, type LoopbackLoginOptions } from './loopback-login.js';
export { SessionStore, defaultConfigDir, sessionFileName, CONFIG_DIR_ENV, type HeldLock, type LockOptions, type SessionStoreOptions, type StoredSession } from './session-store.js';
export { escapeControlChars, hasControlChars } from './terminal.js';
export {
  login,
  openSession,
  listSessions,
  type LoginMethod,
  type LoginOptions,
  type LoginOutcome,
  type LogoutResult,
  type Session,
  type SessionDescription,
  type SessionOptions,
} from './session.js';
export { decodeJwtClaims } from './jwt.js';
export { openBrowser, browserCommand } from './browser.js';
