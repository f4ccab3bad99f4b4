import { randomBytes } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Grant } from '../../model.js';
import { parseJsonList, splitScope } from '../json.js';
import type { Database, GrantTable } from '../schema.js';
import { recordLastUse } from './last-use.js';

function toGrant(row: Selectable<GrantTable>): Grant {
  return {
    grantId: row.grant_id,
    userId: row.user_id,
    clientId: row.client_id,
    scope: splitScope(row.scope),
    resources: parseJsonList(row.resources),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastUsedAt: row.last_used_at,
  };
}

export interface GrantSummary extends Grant {
  clientName: string | null;
}

/**
 * Records consent inside the caller's transaction: creates the user's grant for the client, or
 * widens it to include the new scopes and resources. Returns the grant id. A concurrent first
 * consent for the same user and client makes the insert fail (unique constraint): the caller
 * retries its transaction once, and the retry merges.
 */
export async function mergeConsent(
  trx: Transaction<Database>,
  userId: string,
  clientId: string,
  scope: readonly string[],
  resources: readonly string[],
  now: number,
): Promise<string> {
  // RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted by the
  // resource owner" — this row is that record, so no consent may be lost. Concurrent consents
  // widening one grant each read the old scope and the last write won (PostgreSQL, READ
  // COMMITTED): the row is locked first (this UPDATE; SQLite has a single writer) so the read
  // below sees the previous merge.
  const locked = await trx.updateTable('grants').set({ updated_at: now }).where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  const existing =
    locked.numUpdatedRows === 0n ? undefined : await trx.selectFrom('grants').selectAll().where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  if (existing) {
    const mergedScope = [...new Set([...splitScope(existing.scope), ...scope])];
    const mergedResources = [...new Set([...parseJsonList(existing.resources), ...resources])];
    await trx
      .updateTable('grants')
      .set({ scope: mergedScope.join(' '), resources: JSON.stringify(mergedResources), updated_at: now })
      .where('grant_id', '=', existing.grant_id)
      .execute();
    return existing.grant_id;
  }
  const grantId = randomBytes(16).toString('hex');
  await trx
    .insertInto('grants')
    .values({ grant_id: grantId, user_id: userId, client_id: clientId, scope: scope.join(' '), resources: JSON.stringify(resources), created_at: now, updated_at: now, last_used_at: null })
    .execute();
  return grantId;
}

/** Consent records, one per user and client. */
export class GrantRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Governance: when these grants were last used, by a refresh or a redemption (see recordLastUse). */
  async recordGrantsUse(grantIds: readonly string[], now: number): Promise<void> {
    await recordLastUse(this.db, 'grants', 'grant_id', grantIds, now);
  }

  async findGrant(userId: string, clientId: string): Promise<Grant | undefined> {
    const row = await this.db.selectFrom('grants').selectAll().where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
    return row && toGrant(row);
  }

  async findGrantById(grantId: string): Promise<Grant | undefined> {
    const row = await this.db.selectFrom('grants').selectAll().where('grant_id', '=', grantId).executeTakeFirst();
    return row && toGrant(row);
  }

  /**
   * Records consent: creates the user's grant for the client, or widens it to include the new
   * scopes and resources. One transaction; a concurrent first consent is retried once.
   */
  async recordConsent(userId: string, clientId: string, scope: readonly string[], resources: readonly string[], now: number): Promise<Grant> {
    const attempt = () => this.db.transaction().execute((trx) => mergeConsent(trx, userId, clientId, scope, resources, now));
    let grantId: string;
    try {
      grantId = await attempt();
    } catch {
      grantId = await attempt();
    }
    const grant = await this.findGrantById(grantId);
    if (!grant) throw new Error('grant vanished after consent');
    return grant;
  }

  async listGrants(filter: { userId?: string; clientId?: string } = {}): Promise<GrantSummary[]> {
    let query = this.db
      .selectFrom('grants')
      .leftJoin('clients', 'clients.client_id', 'grants.client_id')
      .selectAll('grants')
      .select('clients.client_name');
    if (filter.userId !== undefined) query = query.where('grants.user_id', '=', filter.userId);
    if (filter.clientId !== undefined) query = query.where('grants.client_id', '=', filter.clientId);
    const rows = await query.orderBy('grants.created_at').orderBy('grants.grant_id').execute();
    return rows.map((row) => ({ ...toGrant(row), clientName: row.client_name }));
  }

  /**
   * Revokes a grant and everything issued under it, atomically: its token families (so their
   * access tokens introspect inactive), its refresh tokens, and its codes not yet redeemed.
   */
  async revokeGrant(grantId: string, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // Lock order: every family of the grant (revoked ones too), then their refresh tokens —
      // the order revokeFamily and rotation use, so concurrent revocations cannot deadlock.
      await trx
        .updateTable('token_families')
        .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(now)) }))
        .where('grant_id', '=', grantId)
        .execute();
      await trx.updateTable('refresh_tokens').set({ revoked: 1 }).where('grant_id', '=', grantId).execute();
      await trx.deleteFrom('authorization_codes').where('grant_id', '=', grantId).where('consumed_at', 'is', null).execute();
      const result = await trx.deleteFrom('grants').where('grant_id', '=', grantId).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }
}
