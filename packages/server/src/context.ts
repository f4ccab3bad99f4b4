import type { ClientAuthDeps } from './client-auth/types.js';
import type { GatehouseConfig } from './config/schema.js';
import type { GrantRegistry } from './grants/grant-handler.js';
import type { KeySet } from './keys/key-set.js';
import type { Logger } from './logging.js';
import type { Storage } from './storage/storage.js';
import type { AccessTokenService } from './tokens/access-token.js';
import type { UsageRecorder } from './usage-recorder.js';
import type { ClientCache } from './cache/client-cache.js';
import type { ResourceCatalog } from './cache/resource-catalog.js';
import type { BrowserSessions } from './interaction/browser-sessions.js';
import type { Cookies } from './interaction/cookies.js';
import type { Csrf } from './interaction/csrf.js';
import type { PageRenderer } from './interaction/pages.js';
import type { LoginThrottle } from './users/login-throttle.js';
import type { IdTokenService } from './tokens/id-token.js';
import type { RateLimits } from './rate-limit/rate-limits.js';
import type { Metrics } from './metrics.js';

/** Seconds since the epoch; injected so tests and pure rules share one notion of now. */
export type Clock = () => number;

export const systemClock: Clock = () => Math.floor(Date.now() / 1000);

/** Public URLs of the endpoints, derived from the issuer. */
export interface EndpointUrls {
  authorization: string;
  userinfo: string;
  endSession: string;
  account: string;
  token: string;
  introspection: string;
  revocation: string;
  jwks: string;
  registration: string;
  /** RFC 8628 §3.1 device authorization endpoint. */
  deviceAuthorization: string;
  /** RFC 8628 §3.2 verification_uri: where the user enters the code. */
  device: string;
}

export interface EndpointPaths {
  base: string;
  authorization: string;
  userinfo: string;
  endSession: string;
  account: string;
  /** Sign-in and consent pages of a pending authorization request: `${interaction}/:id`. */
  interaction: string;
  token: string;
  introspection: string;
  revocation: string;
  jwks: string;
  registration: string;
  deviceAuthorization: string;
  /** The device verification page; `${device}/login` and `${device}/confirm` are its forms. */
  device: string;
}

export function endpointPaths(issuer: string): EndpointPaths {
  const base = new URL(issuer).pathname.replace(/\/$/, '');
  return {
    base,
    authorization: `${base}/authorize`,
    userinfo: `${base}/userinfo`,
    endSession: `${base}/logout`,
    account: `${base}/account`,
    interaction: `${base}/interaction`,
    token: `${base}/token`,
    introspection: `${base}/introspect`,
    revocation: `${base}/revoke`,
    jwks: `${base}/jwks`,
    registration: `${base}/register`,
    deviceAuthorization: `${base}/device_authorization`,
    device: `${base}/device`,
  };
}

export function endpointUrls(issuer: string): EndpointUrls {
  return {
    authorization: `${issuer}/authorize`,
    userinfo: `${issuer}/userinfo`,
    endSession: `${issuer}/logout`,
    account: `${issuer}/account`,
    token: `${issuer}/token`,
    introspection: `${issuer}/introspect`,
    revocation: `${issuer}/revoke`,
    jwks: `${issuer}/jwks`,
    registration: `${issuer}/register`,
    deviceAuthorization: `${issuer}/device_authorization`,
    device: `${issuer}/device`,
  };
}

/** What the endpoints share; built once by the composition root. */
export interface ServerContext {
  config: GatehouseConfig;
  storage: Storage;
  keys: KeySet;
  accessTokens: AccessTokenService;
  grants: GrantRegistry;
  clientAuth: ClientAuthDeps;
  clientCache: ClientCache;
  catalog: ResourceCatalog;
  idTokens: IdTokenService;
  /** Browser-facing pieces: pages, cookies, CSRF, sessions, sign-in throttling. */
  web: {
    pages: PageRenderer;
    cookies: Cookies;
    csrf: Csrf;
    sessions: BrowserSessions;
    loginThrottle: LoginThrottle;
    /** HMAC key of device-flow user codes (protocol/user-code.ts), the same on every instance. */
    userCodeKey: Buffer;
  };
  /** Clients' last use (governance), written behind the token path. */
  usage: UsageRecorder;
  rateLimits: RateLimits;
  /** Prometheus counters of this instance (labels: route patterns and RFC codes only). */
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  urls: EndpointUrls;
  paths: EndpointPaths;
}
