import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Single use of client assertions (RFC 7523 §3 (7)) across every instance sharing the database. */
export class AssertionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Records an assertion id; returns false when it was already used and has not expired. An
   * expired record is taken over, so a row left behind never blocks a later, valid assertion.
   */
  async recordAssertionId(idHash: string, expiresAt: number, now: number): Promise<boolean> {
    const result = await this.db
      .insertInto('used_assertions')
      .values({ id_hash: idHash, expires_at: expiresAt })
      .onConflict((oc) =>
        oc
          .column('id_hash')
          .doUpdateSet({ expires_at: expiresAt })
          .where('used_assertions.expires_at', '<=', now),
      )
      .executeTakeFirst();
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }
}
