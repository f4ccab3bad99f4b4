/**
 * Device login for CLIs and input-constrained devices: the OAuth 2.0 Device Authorization Grant
 * (RFC 8628). The user approves on any browser; this side shows where to go and which code to
 * enter, then polls the token endpoint at the pace the server sets.
 */
import * as oauth from 'oauth4webapi';
import { addScopeAndResource, clientAuthentication } from './client-auth.js';
import { GatehouseClientError, OAuthResponseError } from './errors.js';
import { IssuerConnection, sleep as realSleep, throwOnServerFailure, toClientError, usesHttps } from './http.js';
import { withRetry, type RetryOptions } from './retry.js';
import { escapeControlChars, hasControlChars } from './terminal.js';
import { loginResult, maybeOpenBrowser, toStderr, type LoginResult, type UserLoginOptions } from './user-login.js';

/**
 * What the user must be told (RFC 8628 §3.2, §3.3): where to go and the code to enter.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3
 */
export interface DevicePrompt {
  /** The verification URI the user visits (https, or http on loopback; normalised as by `new URL()`). */
  verification_uri: string;
  /** The code the user enters there (show it even when the complete URI is used: RFC 8628 §5.4). Never holds a control character. */
  user_code: string;
  /** The verification URI with the code in it, when the server sent one (for a link or a QR code); checked like `verification_uri`. */
  verification_uri_complete: string | undefined;
  /** Seconds the code stays valid. */
  expires_in: number;
  /** Whether a browser was opened on the verification URI. */
  browserOpened: boolean;
}

/** Options of {@link deviceLogin}. */
export interface DeviceLoginOptions extends UserLoginOptions {
  /**
   * Shows the prompt to the user. Default: lines on standard error with the verification URI,
   * the user code and the complete URI.
   */
  onPrompt?: ((prompt: DevicePrompt) => void | Promise<void>) | undefined;
  /** Retries of the device authorization request itself (network errors, 5xx). */
  retry?: RetryOptions | undefined;
  /** The clock, milliseconds since the epoch (default `Date.now`); for tests. */
  now?: (() => number) | undefined;
  /** How to wait between polls (default: a timer); for tests. */
  sleep?: ((ms: number, signal?: AbortSignal) => Promise<void>) | undefined;
}

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
const DEFAULT_INTERVAL = 5;
/** RFC 8628 §3.5: on `slow_down`, "the interval MUST be increased by 5 seconds for this and all subsequent requests". */
const SLOW_DOWN_STEP = 5;
/** Longest polling interval reached by backing off after connection failures, seconds. */
const MAX_BACKOFF_INTERVAL = 60;
/**
 * Bounds on the polling interval, seconds. RFC 8628 §3.2 makes `interval` "the minimum amount of
 * time in seconds that the client SHOULD wait between polling requests": a server asking for less
 * than 5 s is obeyed, but never below 1 s (a fraction of a second would be a busy loop); one asking
 * for more than 5 minutes gets 5 minutes (a huge value would leave the user waiting for nothing —
 * the server can still answer `slow_down`). Every wait also ends at the code's expiry.
 */
const MIN_INTERVAL = 1;
const MAX_INTERVAL = 300;
const boundInterval = (seconds: number) => Math.min(MAX_INTERVAL, Math.max(MIN_INTERVAL, seconds));

/**
 * The default prompt: verification URI, user code and complete URI on standard error (control
 * characters escaped, should a caller build a prompt that was not checked by {@link deviceLogin}).
 */
export function printDevicePrompt(prompt: DevicePrompt, write: (line: string) => void = toStderr): void {
  write(`To sign in, visit ${escapeControlChars(prompt.verification_uri)}`);
  write(`and enter the code: ${escapeControlChars(prompt.user_code)}`);
  if (prompt.verification_uri_complete !== undefined) write(`(or open ${escapeControlChars(prompt.verification_uri_complete)})`);
  if (prompt.browserOpened) write('A browser window was opened; check that it shows the same code.');
  write(`The code expires in ${Math.ceil(prompt.expires_in / 60)} minute(s). Waiting for approval…`);
}

/**
 * Signs a user in with the device authorization grant: requests a device code (RFC 8628 §3.1),
 * shows the verification URI and user code (§3.3; opens the browser on the complete URI when
 * asked), then polls the token endpoint (§3.4) every `interval` seconds (5 by default), adding 5
 * seconds on `slow_down` and doubling the interval after a connection failure or a 5xx (§3.5),
 * until the user approves (tokens), denies (`access_denied`) or the code expires
 * (`expired_token`). Throws {@link OAuthResponseError} for the server's refusals. The interval is
 * kept between 1 s and 5 minutes and no wait goes past the code's expiry. A device authorization
 * response whose user code or verification URIs hold control characters (terminal escape
 * sequences), or whose URIs are not https (http is accepted on loopback, or anywhere with
 * `dangerouslyAllowInsecureHttp`), is refused as
 * `invalid_response` before anything is shown.
 *
 * @example
 * ```ts
 * const { tokens } = await deviceLogin({ issuer: 'https://id.example.com', clientId: 'my-cli', scope: 'openid offline_access' });
 * ```
 *
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3
 */
export async function deviceLogin(options: DeviceLoginOptions): Promise<LoginResult> {
  const connection = new IssuerConnection(options);
  const client: oauth.Client = { client_id: options.clientId };
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? realSleep;
  const signal = options.signal;
  const what = 'device login';

  const authorization = await withRetry(
    async () => {
      try {
        const as = await connection.metadata(signal);
        if (as.device_authorization_endpoint === undefined) {
          throw new GatehouseClientError('invalid_configuration', 'the authorization server does not advertise a device_authorization_endpoint (RFC 8628)');
        }
        const params = addScopeAndResource(new URLSearchParams(options.additionalParameters), options);
        // RFC 8628 §3.1: client_id (public clients) or client authentication, and scope.
        const response = await oauth.deviceAuthorizationRequest(as, client, clientAuthentication(as, options), params, connection.requestOptions(signal));
        await throwOnServerFailure(response);
        return { as, device: await oauth.processDeviceAuthorizationResponse(as, client, response) };
      } catch (err) {
        throw await toClientError(err, what);
      }
    },
    options.retry ?? {},
    { sleep: wait, random: Math.random, signal },
  );
  const { as, device } = authorization;
  const started = now();
  const deadline = started + device.expires_in * 1000;

  // What the user is shown comes from the server: no escape sequences, no non-https links.
  if (hasControlChars(device.user_code)) throw new GatehouseClientError('invalid_response', `${what}: the user_code holds control characters`);
  const insecureHttpAllowed = options.dangerouslyAllowInsecureHttp === true;
  const verificationUri = checkVerificationUri(device.verification_uri, 'verification_uri', insecureHttpAllowed);
  const complete = device.verification_uri_complete === undefined ? undefined : checkVerificationUri(device.verification_uri_complete, 'verification_uri_complete', insecureHttpAllowed);
  const browserOpened = await maybeOpenBrowser(options.openBrowser, complete ?? verificationUri);
  const prompt: DevicePrompt = {
    verification_uri: verificationUri,
    user_code: device.user_code,
    verification_uri_complete: complete,
    expires_in: device.expires_in,
    browserOpened,
  };
  await (options.onPrompt ?? printDevicePrompt)(prompt);

  // RFC 8628 §3.4/§3.5: poll no faster than `interval` seconds.
  let interval = boundInterval(device.interval ?? DEFAULT_INTERVAL);
  const expired = () => new OAuthResponseError('expired_token', 'the device code expired before the user approved');
  for (;;) {
    const left = deadline - now();
    if (left <= 0) throw expired();
    // Not past the expiry: a poll after it could only be refused.
    await wait(Math.min(interval * 1000, left), signal);
    if (now() >= deadline) throw expired();
    try {
      const response = await oauth.deviceCodeGrantRequest(as, client, clientAuthentication(as, options), device.device_code, connection.requestOptions(signal));
      await throwOnServerFailure(response);
      const result = await oauth.processDeviceCodeResponse(as, client, response);
      return loginResult(as, result, Math.floor(now() / 1000));
    } catch (caught) {
      const err = await toClientError(caught, what);
      if (err.code === 'authorization_pending') continue;
      if (err.code === 'slow_down') {
        interval = boundInterval(interval + SLOW_DOWN_STEP);
        continue;
      }
      // RFC 8628 §3.5: "On encountering a connection timeout, clients MUST unilaterally reduce
      // their polling frequency before retrying."
      if (err.retryable && !signal?.aborted) {
        interval = Math.max(interval, Math.min(interval * 2, MAX_BACKOFF_INTERVAL));
        continue;
      }
      // access_denied, expired_token, invalid_grant, invalid_client, …: the login is over.
      throw err;
    }
  }
}

/**
 * A verification URI the user may be sent to: no control characters, an absolute https URL (http
 * only to a loopback host, or anywhere with `dangerouslyAllowInsecureHttp`); returned normalised.
 */
function checkVerificationUri(value: string, name: string, insecureHttpAllowed: boolean): string {
  if (hasControlChars(value)) throw new GatehouseClientError('invalid_response', `device login: the ${name} holds control characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new GatehouseClientError('invalid_response', `device login: the ${name} is not an absolute URL`);
  }
  if (!usesHttps(url, insecureHttpAllowed)) {
    throw new GatehouseClientError('invalid_response', `device login: the ${name} must use https`);
  }
  return url.href;
}
