import { sql, type Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** What one janitor run deleted, by table. */
export type JanitorReport = Record<string, number>;

/** Expired rows by table: the key column and the condition that makes a row deletable. */
interface Sweep {
  table: keyof Database & string;
  key: string;
  expired: (now: number) => ReturnType<typeof sql>;
}

/** Consumed codes and device codes are kept a day after they expire, so a late replay still revokes what they issued. */
const CODE_REPLAY_WINDOW = 86_400;
/** Device codes never redeemed are kept an hour after they expire, so a late poll is still told expired_token. */
const LATE_POLL_WINDOW = 3_600;

const SWEEPS: Sweep[] = [
  { table: 'authorization_codes', key: 'code_hash', expired: (now) => sql`expires_at <= ${now - CODE_REPLAY_WINDOW}` },
  {
    table: 'device_codes',
    key: 'device_code_hash',
    expired: (now) => sql`(expires_at <= ${now - LATE_POLL_WINDOW} and status <> 'consumed') or expires_at <= ${now - CODE_REPLAY_WINDOW}`,
  },
  { table: 'interactions', key: 'interaction_id', expired: (now) => sql`expires_at <= ${now}` },
  // Refresh tokens go with their family (ON DELETE CASCADE): rotated ones must stay while the
  // family lives, so reuse is still detected.
  { table: 'token_families', key: 'family_id', expired: (now) => sql`expires_at <= ${now}` },
  { table: 'revoked_access_tokens', key: 'jti', expired: (now) => sql`expires_at <= ${now}` },
  { table: 'used_assertions', key: 'id_hash', expired: (now) => sql`expires_at <= ${now}` },
  { table: 'opaque_access_tokens', key: 'token_hash', expired: (now) => sql`expires_at <= ${now}` },
  { table: 'initial_access_tokens', key: 'token_hash', expired: (now) => sql`expires_at <= ${now}` },
  { table: 'rate_limit_counters', key: 'counter_key', expired: (now) => sql`expires_at <= ${now}` },
];

/**
 * Deletes expired rows in small batches (each one short statement on an indexed column), so the
 * tables stay bounded without long locks. Sessions, sign-in throttles and signing keys have
 * their own rules and are swept by their repositories.
 */
export class JanitorRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async sweepExpired(now: number, batchSize: number, maxBatches: number): Promise<JanitorReport> {
    const report: JanitorReport = {};
    for (const sweep of SWEEPS) {
      let deleted = 0;
      for (let batch = 0; batch < maxBatches; batch++) {
        const result = await sql`delete from ${sql.table(sweep.table)} where ${sql.ref(sweep.key)} in (select ${sql.ref(sweep.key)} from ${sql.table(sweep.table)} where ${sweep.expired(now)} limit ${batchSize})`.execute(this.db);
        const count = Number(result.numAffectedRows ?? 0n);
        deleted += count;
        if (count < batchSize) break;
      }
      report[sweep.table] = deleted;
    }
    return report;
  }

  /**
   * Takes the janitor lock for `ttl` seconds unless another instance holds it: only one instance
   * sweeps at a time. True when this holder has it.
   */
  async acquireLock(holder: string, now: number, ttl: number): Promise<boolean> {
    await this.db.insertInto('locks').values({ name: 'janitor', holder: null, until: 0 }).onConflict((oc) => oc.column('name').doNothing()).execute();
    const result = await this.db
      .updateTable('locks')
      .set({ holder, until: now + ttl })
      .where('name', '=', 'janitor')
      .where((eb) => eb.or([eb('until', '<=', now), eb('holder', '=', holder)]))
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }
}
