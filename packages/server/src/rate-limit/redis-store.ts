import type * as IORedis from 'ioredis';
import { lazyModule } from '../lazy-module.js';
import type { RateHits, RateLimitStore } from './store.js';

// Loaded only when Redis is configured (REDIS_URL).
const loadIORedis = lazyModule<typeof IORedis>('ioredis');

/**
 * Rate-limit counters in Redis (`REDIS_URL`): INCRBY and PEXPIREAT per counter, one pipeline per
 * batch. Redis holds counters only; grants and tokens always live in the database. A command
 * waits at most two seconds (also while Redis is unreachable), so a report fails and is retried.
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const;
  readonly #redis: IORedis.Redis;

  constructor(url: string, private readonly prefix = 'gatehouse:ratelimit:') {
    this.#redis = new (loadIORedis().Redis)(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000 });
    // Connection errors surface through the commands that fail; don't crash on the event.
    this.#redis.on('error', () => undefined);
  }

  async addHits(batch: readonly RateHits[]): Promise<number[]> {
    if (batch.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const h of batch) {
      const key = `${this.prefix}${h.counterKey}`;
      pipeline.incrby(key, h.hits);
      pipeline.pexpireat(key, h.expiresAt * 1000);
    }
    const results = (await pipeline.exec()) ?? [];
    return batch.map((_, i) => {
      const [err, value] = results[i * 2] ?? [new Error('no reply'), null];
      if (err) throw err;
      return Number(value);
    });
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
