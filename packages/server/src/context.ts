import type { ClientAuthDeps } from './client-auth/types.js';
import type { GatehouseConfig } from './config/schema.js';
import type { GrantRegistry } from './grants/grant-handler.js';
import type { KeySet } from './keys/key-set.js';
import type { Logger } from './logging.js';
import type { Storage } from './storage/storage.js';
import type { AccessTokenService } from './tokens/access-token.js';
import type { ClientUsageRecorder } from './client-usage.js';
import type { ClientCache } from './cache/client-cache.js';

/** Seconds since the epoch; injected so tests and pure rules share one notion of now. */
export type Clock = () => number;

export const systemClock: Clock = () => Math.floor(Date.now() / 1000);

/** Public URLs of the endpoints, derived from the issuer. */
export interface EndpointUrls {
  token: string;
  introspection: string;
  revocation: string;
  jwks: string;
  registration: string;
}

export interface EndpointPaths {
  base: string;
  token: string;
  introspection: string;
  revocation: string;
  jwks: string;
  registration: string;
}

export function endpointPaths(issuer: string): EndpointPaths {
  const base = new URL(issuer).pathname.replace(/\/$/, '');
  return {
    base,
    token: `${base}/token`,
    introspection: `${base}/introspect`,
    revocation: `${base}/revoke`,
    jwks: `${base}/jwks`,
    registration: `${base}/register`,
  };
}

export function endpointUrls(issuer: string): EndpointUrls {
  return {
    token: `${issuer}/token`,
    introspection: `${issuer}/introspect`,
    revocation: `${issuer}/revoke`,
    jwks: `${issuer}/jwks`,
    registration: `${issuer}/register`,
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
  usage: ClientUsageRecorder;
  logger: Logger;
  clock: Clock;
  urls: EndpointUrls;
  paths: EndpointPaths;
}
