import type { Kysely } from 'kysely';

/**
 * A counter per cached table. Every write to clients or resources increments its counter in the
 * same transaction; instances poll the counters and drop their in-memory copies when they move.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('generations')
    .addColumn('name', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('value', 'bigint', (c) => c.notNull())
    .execute();
  const generations = db as unknown as Kysely<{ generations: { name: string; value: number } }>;
  await generations
    .insertInto('generations')
    .values([
      { name: 'clients', value: 0 },
      { name: 'resources', value: 0 },
    ])
    .execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported; restore a backup instead');
}
