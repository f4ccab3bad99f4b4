import type { Kysely } from 'kysely';

/**
 * Shared rate-limit counters: one row per key and fixed window (`counter_key`, a digest of
 * bucket, key and window start).
 * Instances add the hits they counted locally every few hundred milliseconds; the janitor deletes
 * rows whose window has ended.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('rate_limit_counters')
    .addColumn('counter_key', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rate_limit_counters_expires').on('rate_limit_counters').column('expires_at').execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported; restore a backup instead');
}
