import { createLocalJWKSet, createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import { createOutboundFetch } from './outbound-fetch.js';
import type { Client } from '../model.js';

/**
 * Resolves the verification keys of a client: its registered `jwks`, or its `jwks_uri` fetched
 * with a short timeout and cached (jose's remote JWK set: refetch on unknown `kid`, rate-limited
 * by a cooldown). Only registered URIs are ever fetched, never a URL taken from a token.
 */
export class ClientKeyResolver {
  #remote = new Map<string, JWTVerifyGetKey>();
  readonly #fetch: ReturnType<typeof createOutboundFetch>;
  static readonly MAX_REMOTE_SETS = 1000;

  constructor(options: { allowPrivateAddresses: boolean } = { allowPrivateAddresses: false }) {
    this.#fetch = createOutboundFetch({ allowPrivateAddresses: options.allowPrivateAddresses, maxBytes: 64 * 1024 });
  }

  resolve(client: Client): JWTVerifyGetKey | null {
    if (client.jwks !== null) return createLocalJWKSet(client.jwks);
    if (client.jwksUri === null) return null;
    let set = this.#remote.get(client.jwksUri);
    if (!set) {
      if (this.#remote.size >= ClientKeyResolver.MAX_REMOTE_SETS) {
        const oldest = this.#remote.keys().next().value;
        if (oldest !== undefined) this.#remote.delete(oldest);
      }
      set = createRemoteJWKSet(new URL(client.jwksUri), {
        timeoutDuration: 3_000,
        cooldownDuration: 30_000,
        cacheMaxAge: 600_000,
        [customFetch]: this.#fetch,
      });
      this.#remote.set(client.jwksUri, set);
    }
    return set;
  }
}
