import type { Kysely } from 'kysely';
import type { RateHits, RateLimitStore } from '../../rate-limit/store.js';
import type { Database } from '../schema.js';

/** Rate-limit counters in the shared database: one upsert per counter, one transaction per batch. */
export class RateLimitRepository implements RateLimitStore {
  readonly kind = 'database' as const;

  constructor(private readonly db: Kysely<Database>) {}

  async addHits(batch: readonly RateHits[]): Promise<number[]> {
    if (batch.length === 0) return [];
    // Counters in a fixed order: two instances adding overlapping batches lock rows in the same
    // order (PostgreSQL), so they cannot deadlock.
    const order = batch.map((_, i) => i).sort((a, b) => ((batch[a]?.counterKey ?? '') < (batch[b]?.counterKey ?? '') ? -1 : 1));
    const totals = new Array<number>(batch.length).fill(0);
    await this.db.transaction().execute(async (trx) => {
      for (const i of order) {
        const h = batch[i] as RateHits;
        const row = await trx
          .insertInto('rate_limit_counters')
          .values({ counter_key: h.counterKey, hits: h.hits, expires_at: h.expiresAt })
          .onConflict((oc) => oc.column('counter_key').doUpdateSet((eb) => ({ hits: eb('rate_limit_counters.hits', '+', h.hits) })))
          .returning('hits')
          .executeTakeFirstOrThrow();
        totals[i] = Number(row.hits);
      }
    });
    return totals;
  }

  async close(): Promise<void> {
    // The database handle belongs to Storage.
  }
}
