import type { GatehouseConfig } from '../config/schema.js';
import { TooManyRequestsError } from '../errors.js';
import { addressThrottleKey } from '../users/login-throttle.js';
import type { RateLimiter } from './limiter.js';
import type { RateVerdict } from './policy.js';

/** The endpoints with limits of their own. */
export const RATE_BUCKETS = ['token', 'introspection', 'revocation', 'registration', 'deviceAuthorization', 'pages'] as const;
export type RateBucket = (typeof RATE_BUCKETS)[number];

export type RateLimitConfig = GatehouseConfig['rateLimits'];

/**
 * The rate limits of the protocol endpoints and the sign-in, consent and device forms: per client
 * address before anything else is read, and per authenticated client once it is known. Every
 * limit is counted in its own bucket, so one abusive client or address spends only its own
 * budget; a refused request costs a digest and a map lookup, before any database work.
 *
 * Public clients (`none`) are not limited by client: their id is public, so anyone could spend
 * their budget for every user of the app; their requests are limited by address.
 */
export class RateLimits {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly config: RateLimitConfig,
    private readonly onRefused: (bucket: RateBucket) => void = () => undefined,
  ) {}

  /** Counts a request from `ip` against the bucket's per-address limit. */
  byAddress(bucket: RateBucket, ip: string, now: number): RateVerdict {
    const limit = this.config[bucket].perAddress;
    if (!this.config.enabled || limit === 0) return { allowed: true };
    // An IPv6 client by its /64, which one subscriber usually holds whole (as sign-in throttling does).
    const verdict = this.limiter.hit(`${bucket}:address`, addressThrottleKey(ip), { limit, window: this.config.window }, now);
    if (!verdict.allowed) this.onRefused(bucket);
    return verdict;
  }

  /** Throws 429 when an authenticated, confidential client is over the bucket's per-client limit. */
  requireClientBudget(bucket: RateBucket, client: { clientId: string; tokenEndpointAuthMethod: string }, now: number): void {
    if (!this.config.enabled || client.tokenEndpointAuthMethod === 'none') return;
    const limits = this.config[bucket];
    const limit = 'perClient' in limits ? limits.perClient : 0;
    if (limit === 0) return;
    const verdict = this.limiter.hit(`${bucket}:client`, client.clientId, { limit, window: this.config.window }, now);
    if (verdict.allowed) return;
    this.onRefused(bucket);
    throw new TooManyRequestsError(verdict.retryAfter);
  }
}
