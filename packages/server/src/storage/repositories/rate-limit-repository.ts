import type { Kysely } from 'kysely';
import type { RateHits, RateLimitStore } from '../../rate-limit/store.js';
import type { Database } from '../schema.js';

/** Rows per statement: a batch of thousands of counters becomes a few statements, not thousands of round trips. */
const ROWS_PER_STATEMENT = 500;

/** Rate-limit counters in the shared database: one multi-row upsert per 500 counters, one transaction per batch. */
export class RateLimitRepository implements RateLimitStore {
  readonly kind = 'database' as const;

  constructor(private readonly db: Kysely<Database>) {}

  async addHits(batch: readonly RateHits[]): Promise<number[]> {
    if (batch.length === 0) return [];
    // One row per counter (a batch names each once), in key order: two instances adding
    // overlapping batches lock rows in the same order (PostgreSQL), so they cannot deadlock.
    const merged = new Map<string, RateHits>();
    for (const h of batch) {
      const seen = merged.get(h.counterKey);
      merged.set(h.counterKey, seen === undefined ? h : { ...seen, hits: seen.hits + h.hits, expiresAt: Math.max(seen.expiresAt, h.expiresAt) });
    }
    const rows = [...merged.values()].sort((a, b) => (a.counterKey < b.counterKey ? -1 : a.counterKey > b.counterKey ? 1 : 0));
    const totals = new Map<string, number>();
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
        const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
        const returned = await trx
          .insertInto('rate_limit_counters')
          .values(chunk.map((h) => ({ counter_key: h.counterKey, hits: h.hits, expires_at: h.expiresAt })))
          .onConflict((oc) => oc.column('counter_key').doUpdateSet((eb) => ({ hits: eb('rate_limit_counters.hits', '+', eb.ref('excluded.hits')) })))
          .returning(['counter_key', 'hits'])
          .execute();
        for (const r of returned) totals.set(r.counter_key, Number(r.hits));
      }
    });
    return batch.map((h) => totals.get(h.counterKey) ?? 0);
  }

  async close(): Promise<void> {
    // The database handle belongs to Storage.
  }
}
