import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** The tables that record a last use (governance), and their keys. */
interface LastUseTables {
  clients: 'client_id';
  grants: 'grant_id';
}

/**
 * Records the last use of many rows at once: one statement per 500 ids, in one transaction. A
 * later last use is never moved back (another instance may have written first), and the ids are
 * sorted so that instances writing overlapping sets lock the rows in one order (no deadlock on
 * PostgreSQL).
 */
export async function recordLastUse<T extends keyof LastUseTables>(
  db: Kysely<Database>,
  table: T,
  key: LastUseTables[T],
  ids: readonly string[],
  now: number,
): Promise<void> {
  const sorted = [...new Set(ids)].sort();
  if (sorted.length === 0) return;
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < sorted.length; i += 500) {
      const chunk = sorted.slice(i, i + 500);
      await sql`update ${sql.table(table)} set last_used_at = ${now}
        where ${sql.ref(key)} in (${sql.join(chunk)}) and (last_used_at is null or last_used_at < ${now})`.execute(trx);
    }
  });
}
