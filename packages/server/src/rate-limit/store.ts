/** Hits one instance counted for one key in one window since its last report. */
export interface RateHits {
  /** SHA-256 digest of "<bucket>:<window start>:<key>": addresses and client ids are not stored as such. */
  counterKey: string;
  hits: number;
  /** The counter may be deleted after this time. */
  expiresAt: number;
}

/**
 * Where instances add up their hits: the database (`RateLimitRepository`) or Redis
 * (`RedisRateLimitStore`). `addHits` adds each batch entry's hits to its shared counter and
 * returns the counters' totals, in order.
 */
export interface RateLimitStore {
  readonly kind: 'database' | 'redis';
  addHits(batch: readonly RateHits[]): Promise<number[]>;
  close(): Promise<void>;
}
