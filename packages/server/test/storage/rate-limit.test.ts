import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logging.js';
import { RateLimiter } from '../../src/rate-limit/limiter.js';
import { admit, secondsLeft, windowStart } from '../../src/rate-limit/policy.js';
import { RedisRateLimitStore } from '../../src/rate-limit/redis-store.js';
import type { RateHits, RateLimitStore } from '../../src/rate-limit/store.js';
import { migrateToLatest } from '../../src/storage/database.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';
import { createPostgresSchema, type PostgresSchema } from '../helpers/postgres.js';
import { DIALECTS } from '../helpers/server.js';

const NOW = 1_800_000_020;
const TEST_REDIS_URL = process.env.TEST_REDIS_URL;
const logger = createLogger('silent');

describe('rate-limit rules', () => {
  it('fixed windows on multiples of their length; Retry-After is what is left of the window', () => {
    expect(windowStart(1_800_000_020, 60)).toBe(1_800_000_000);
    expect(secondsLeft(1_800_000_020, 60)).toBe(40);
    expect(secondsLeft(1_800_000_000, 60)).toBe(60);
    expect(admit(4, { limit: 5, window: 60 }, NOW)).toEqual({ allowed: true });
    expect(admit(5, { limit: 5, window: 60 }, NOW)).toEqual({ allowed: false, retryAfter: 40 });
  });
});

/** A store whose every report fails: a database or Redis outage. */
class DownStore implements RateLimitStore {
  readonly kind = 'database' as const;
  reports = 0;
  async addHits(_batch: readonly RateHits[]): Promise<number[]> {
    this.reports++;
    throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  }
  async close(): Promise<void> {}
}

const stores: Array<{ name: string; open(): Promise<{ store: () => RateLimitStore; close(): Promise<void> }> }> = [
  ...DIALECTS.map((dialect) => ({
    name: dialect,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'gatehouse-rl-'));
      const schema: PostgresSchema | undefined = dialect === 'postgres' ? await createPostgresSchema() : undefined;
      const storage: Storage = openStorage({ databaseUrl: schema?.url, sqliteFile: join(dir, 'rl.db') });
      await migrateToLatest(storage.handle.db);
      return {
        store: () => storage.rateLimits,
        async close() {
          await storage.close();
          await schema?.drop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  })),
  ...(TEST_REDIS_URL === undefined
    ? []
    : [
        {
          name: 'redis',
          async open() {
            const prefix = `gatehouse-test:${process.pid}:${Date.now()}:`;
            const opened: RedisRateLimitStore[] = [];
            return {
              store: () => {
                const s = new RedisRateLimitStore(TEST_REDIS_URL, prefix);
                opened.push(s);
                return s;
              },
              async close() {
                await Promise.all(opened.map((s) => s.close()));
              },
            };
          },
        },
      ]),
];

describe.each(stores)('rate limiter over the $name store', ({ open }) => {
  let opened: Awaited<ReturnType<(typeof stores)[number]['open']>>;
  let now = NOW;
  const clock = () => now;
  const limiter = () => new RateLimiter({ store: opened.store(), syncInterval: 60_000, maxCounters: 1000, logger, clock });
  const rule = { limit: 5, window: 60 };

  beforeAll(async () => {
    opened = await open();
  });
  afterAll(async () => {
    await opened.close();
  });

  it('one instance: exactly the limit per window, per key; refused hits are not counted', async () => {
    const a = limiter();
    const key = `client-${now}`;
    for (let i = 0; i < 5; i++) expect(a.hit('token', key, rule, now)).toEqual({ allowed: true });
    expect(a.hit('token', key, rule, now)).toEqual({ allowed: false, retryAfter: secondsLeft(now, 60) });
    await a.sync();
    expect(a.hit('token', key, rule, now).allowed).toBe(false);
    // Another key, another bucket: their own budgets.
    expect(a.hit('token', `${key}-other`, rule, now).allowed).toBe(true);
    expect(a.hit('introspect', key, rule, now).allowed).toBe(true);
    // The next window starts afresh.
    now += secondsLeft(now, 60);
    expect(a.hit('token', key, rule, now).allowed).toBe(true);
    await a.stop();
  });

  it('two instances share the counters: together they admit at most one sync interval beyond the limit', async () => {
    const a = limiter();
    const b = limiter();
    const key = `shared-${now}`;
    for (let i = 0; i < 5; i++) expect(a.hit('token', key, rule, now).allowed).toBe(true);
    await a.sync();
    // b has not heard of a's hits yet: it admits one, reports it, and learns the total.
    expect(b.hit('token', key, rule, now).allowed).toBe(true);
    await b.sync();
    expect(b.hit('token', key, rule, now).allowed).toBe(false);
    expect(a.hit('token', key, rule, now).allowed).toBe(false);
    await a.sync();
    expect(a.hit('token', key, rule, now).allowed).toBe(false);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a report of more counters than one statement holds adds each up and returns each total, in order', async () => {
    const store = opened.store();
    const batch = Array.from({ length: 1203 }, (_, i) => ({ counterKey: `big-${now}-${i}`, hits: (i % 7) + 1, expiresAt: now + 120 }));
    expect(await store.addHits(batch)).toEqual(batch.map((h) => h.hits));
    const picked = [batch[1202], batch[0], batch[600]] as RateHits[];
    const again = picked.map((h) => ({ ...h, hits: 10 }));
    expect(await store.addHits(again)).toEqual(picked.map((h) => 10 + h.hits));
  });

  it('concurrent reports from many instances add up exactly', async () => {
    const instances = Array.from({ length: 8 }, () => limiter());
    const key = `many-${now}`;
    const wide = { limit: 1000, window: 60 };
    for (const inst of instances) for (let i = 0; i < 10; i++) inst.hit('token', key, wide, now);
    await Promise.all(instances.map((inst) => inst.sync()));
    // One more hit reported alone: that instance then knows the total, 8 × 10 + 1.
    const last = instances[7] as RateLimiter;
    last.hit('token', key, wide, now);
    await last.sync();
    expect(last.hit('token', key, { limit: 81, window: 60 }, now).allowed).toBe(false);
    expect(last.hit('token', key, { limit: 82, window: 60 }, now).allowed).toBe(true);
    await Promise.all(instances.map((inst) => inst.stop()));
  });
});

describe('rate limiter during a store outage', () => {
  it('keeps enforcing what it counts, keeps the hits, and reports them once the store is back', async () => {
    const down = new DownStore();
    const limiter = new RateLimiter({ store: down, syncInterval: 60_000, maxCounters: 10, logger, clock: () => NOW });
    const rule = { limit: 3, window: 60 };
    for (let i = 0; i < 3; i++) expect(limiter.hit('token', 'k', rule, NOW).allowed).toBe(true);
    await limiter.sync();
    expect(down.reports).toBe(1);
    expect(limiter.hit('token', 'k', rule, NOW).allowed).toBe(false);
    await limiter.sync();
    expect(down.reports).toBe(2);
  });

  it('stays bounded in memory: the oldest idle counters make room', async () => {
    const down = new DownStore();
    let now = NOW;
    const limiter = new RateLimiter({ store: down, syncInterval: 60_000, maxCounters: 10, logger, clock: () => now });
    for (let i = 0; i < 10; i++) limiter.hit('ip', `k${i}`, { limit: 1, window: 1 }, now);
    now += 2;
    for (let i = 10; i < 20; i++) expect(limiter.hit('ip', `k${i}`, { limit: 1, window: 1 }, now).allowed).toBe(true);
  });
});
