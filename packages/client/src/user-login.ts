/**
 * What the two user logins (device grant, loopback authorization code) share: their options,
 * their result, and how a token response becomes that result.
 */
import * as oauth from 'oauth4webapi';
import { openBrowser } from './browser.js';
import type { ClientAuthOptions, TokenSet } from './client-auth.js';
import { toTokenSet } from './client-auth.js';
import type { ConnectionOptions } from './http.js';

/** Options common to {@link deviceLogin} and {@link loopbackLogin}. */
export interface UserLoginOptions extends ConnectionOptions, ClientAuthOptions {
  /** The client's `client_id` (usually a public client: no secret). */
  clientId: string;
  /** Scopes to request, e.g. `openid offline_access api:read` (`offline_access` for a refresh token on OpenID servers). */
  scope?: string | readonly string[] | undefined;
  /** RFC 8707 resource indicator(s): the API(s) the tokens are for. */
  resource?: string | readonly string[] | undefined;
  /**
   * Whether to open the user's browser: `true` (spawns the platform's opener), `false`, or a
   * function that opens the URL itself (tests drive a headless browser with it). If opening
   * fails, the URL is still shown through the prompt callback.
   */
  openBrowser?: boolean | ((url: string) => void | Promise<void>) | undefined;
  /** Extra authorization (or device authorization) request parameters, e.g. `prompt`, `login_hint`. */
  additionalParameters?: Record<string, string> | undefined;
  /** Cancels the login. */
  signal?: AbortSignal | undefined;
}

/** The outcome of a user login. */
export interface LoginResult {
  /** The tokens as the server sent them. */
  tokens: TokenSet;
  /** Seconds since the epoch when the access token expires (from `expires_in`), if the server said. */
  expiresAt: number | undefined;
  /** The ID token's claims, validated by oauth4webapi (issuer, audience, expiry, nonce), when there is one. */
  idTokenClaims: Record<string, unknown> | undefined;
  /** The issuer's metadata, as discovered. */
  metadata: oauth.AuthorizationServer;
}

/** Builds the {@link LoginResult} of a processed token response. */
export function loginResult(as: oauth.AuthorizationServer, response: oauth.TokenEndpointResponse, nowSeconds: number): LoginResult {
  const claims = oauth.getValidatedIdTokenClaims(response);
  return {
    tokens: toTokenSet(response),
    expiresAt: response.expires_in === undefined ? undefined : nowSeconds + response.expires_in,
    idTokenClaims: claims === undefined ? undefined : { ...claims },
    metadata: as,
  };
}

/**
 * Opens `url` as the options say; resolves to whether a browser was (probably) opened. Failures
 * to open are not errors: the user can still copy the URL.
 */
export async function maybeOpenBrowser(option: UserLoginOptions['openBrowser'], url: string): Promise<boolean> {
  if (option === undefined || option === false) return false;
  try {
    await (option === true ? openBrowser(url) : option(url));
    return true;
  } catch {
    return false;
  }
}

/** Writes a line to standard error (the default for prompts: standard output is for data). */
export function toStderr(line: string): void {
  process.stderr.write(`${line}\n`);
}
