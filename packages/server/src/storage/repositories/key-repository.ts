import type { Kysely, Selectable } from 'kysely';
import type { KeyPurpose, StoredSigningKey } from '../../model.js';
import type { Database, SigningKeyTable } from '../schema.js';

function toKey(row: Selectable<SigningKeyTable>): StoredSigningKey {
  return {
    kid: row.kid,
    purpose: row.purpose as KeyPurpose,
    alg: row.alg,
    publicJwk: JSON.parse(row.public_jwk) as Record<string, unknown>,
    encryptedPrivateKey: row.private_key,
    createdAt: row.created_at,
    activatesAt: row.activates_at,
    retiresAt: row.retires_at,
    expiresAt: row.expires_at,
  };
}

function toRow(key: StoredSigningKey): SigningKeyTable {
  return {
    kid: key.kid,
    purpose: key.purpose,
    alg: key.alg,
    public_jwk: JSON.stringify(key.publicJwk),
    private_key: key.encryptedPrivateKey,
    created_at: key.createdAt,
    activates_at: key.activatesAt,
    retires_at: key.retiresAt,
    expires_at: key.expiresAt,
  };
}

export interface RotationPlan {
  purpose: KeyPurpose;
  next: StoredSigningKey;
  /** Keys still signing stop at `next.activatesAt` and leave the JWKS at this time. */
  retiredExpireAt: number;
}

/** Signing keys. Private keys arrive and leave encrypted; this layer never sees them in clear. */
export class KeyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Every key still published at `now` (pending, current and retired-but-not-expired). */
  async listPublishedKeys(now: number): Promise<StoredSigningKey[]> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .orderBy('activates_at')
      .orderBy('kid')
      .execute();
    return rows.map(toKey);
  }

  async listAllKeys(): Promise<StoredSigningKey[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().orderBy('activates_at').orderBy('kid').execute();
    return rows.map(toKey);
  }

  /**
   * Adds the next key of a purpose and retires the ones it replaces, in one transaction, unless
   * `shouldRotate` (evaluated inside the transaction, under a row lock on PostgreSQL) says another
   * instance already did. Returns whether it rotated.
   */
  async rotateSigningKey(
    plan: RotationPlan,
    shouldRotate: (published: StoredSigningKey[]) => boolean,
    now: number,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // Serialise rotations across instances: one lock row per purpose.
      const lockName = `keys:${plan.purpose}`;
      await trx.insertInto('locks').values({ name: lockName, holder: null, until: 0 }).onConflict((oc) => oc.column('name').doNothing()).execute();
      await trx.updateTable('locks').set({ until: now }).where('name', '=', lockName).execute();
      const rows = await trx
        .selectFrom('signing_keys')
        .selectAll()
        .where('purpose', '=', plan.purpose)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
        .execute();
      if (!shouldRotate(rows.map(toKey))) return false;
      await trx
        .updateTable('signing_keys')
        .set({ retires_at: plan.next.activatesAt, expires_at: plan.retiredExpireAt })
        .where('purpose', '=', plan.purpose)
        .where('retires_at', 'is', null)
        .execute();
      await trx.insertInto('signing_keys').values(toRow(plan.next)).execute();
      return true;
    });
  }

  /** Ends a key now: it stops signing and leaves the JWKS (its row goes with the expired ones). */
  async revokeSigningKey(kid: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('signing_keys')
      .set((eb) => ({ retires_at: eb.fn.coalesce('retires_at', eb.val(now)), expires_at: now }))
      .where('kid', '=', kid)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async deleteExpiredKeys(now: number): Promise<number> {
    const result = await this.db.deleteFrom('signing_keys').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
