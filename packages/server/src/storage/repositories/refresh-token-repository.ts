import type { Kysely, Selectable, Transaction } from 'kysely';
import type { RefreshToken } from '../../model.js';
import { delegationFromRow, delegationToRow } from './delegation-columns.js';
import type { Database, RefreshTokenTable } from '../schema.js';

export function refreshTokenRow(tokenHash: string, t: RefreshToken): RefreshTokenTable {
  return {
    token_hash: tokenHash,
    ...delegationToRow(t),
    family_id: t.familyId,
    created_at: t.createdAt,
    expires_at: t.expiresAt,
    idle_expires_at: t.idleExpiresAt,
    rotated_at: t.rotatedAt,
    revoked: t.revoked ? 1 : 0,
  };
}

function toRefreshToken(row: Selectable<RefreshTokenTable>): RefreshToken {
  return {
    ...delegationFromRow(row),
    familyId: row.family_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    idleExpiresAt: row.idle_expires_at,
    rotatedAt: row.rotated_at,
    revoked: row.revoked === 1,
  };
}

export interface RefreshTokenState {
  token: RefreshToken;
  /** The family was revoked (reuse detected, grant revoked, explicit revocation). */
  familyRevoked: boolean;
  /** The grant still exists. */
  grantActive: boolean;
  /** The user still exists and is not disabled. */
  userActive: boolean;
}

/** Refresh tokens (SHA-256 digests) and the token families they belong to. */
export class RefreshTokenRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async findRefreshToken(tokenHash: string): Promise<RefreshTokenState | undefined> {
    const row = await this.db
      .selectFrom('refresh_tokens')
      .innerJoin('token_families', 'token_families.family_id', 'refresh_tokens.family_id')
      .leftJoin('grants', 'grants.grant_id', 'refresh_tokens.grant_id')
      // The user's state in the same read: one round trip fewer on every refresh.
      .leftJoin('users', 'users.user_id', 'refresh_tokens.user_id')
      .selectAll('refresh_tokens')
      .select(['token_families.revoked_at as family_revoked_at', 'grants.grant_id as live_grant_id', 'users.user_id as live_user_id', 'users.disabled as user_disabled'])
      .where('refresh_tokens.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      token: toRefreshToken(row),
      familyRevoked: row.family_revoked_at !== null,
      grantActive: row.live_grant_id !== null,
      userActive: row.live_user_id !== null && Number(row.user_disabled) === 0,
    };
  }

  /**
   * Rotates: marks the presented token used and stores its successor, in one transaction. False
   * when another request rotated it first (the caller treats that as reuse).
   */
  async rotateRefreshToken(tokenHash: string, next: { tokenHash: string; token: RefreshToken }, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await lockLiveFamily(trx, next.token.familyId))) return false;
      const rotated = await trx
        .updateTable('refresh_tokens')
        .set({ rotated_at: now })
        .where('token_hash', '=', tokenHash)
        .where('rotated_at', 'is', null)
        .where('revoked', '=', 0)
        .executeTakeFirst();
      if (rotated.numUpdatedRows === 0n) return false;
      await trx.insertInto('refresh_tokens').values(refreshTokenRow(next.tokenHash, next.token)).execute();
      return true;
    });
  }

  /**
   * A retry inside the grace window: the family's current live token is replaced by a new one,
   * so there is still exactly one live lineage.
   */
  async replaceLiveRefreshToken(familyId: string, next: { tokenHash: string; token: RefreshToken }, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (!(await lockLiveFamily(trx, familyId))) return false;
      await trx.updateTable('refresh_tokens').set({ revoked: 1, rotated_at: now }).where('family_id', '=', familyId).where('rotated_at', 'is', null).execute();
      await trx.insertInto('refresh_tokens').values(refreshTokenRow(next.tokenHash, next.token)).execute();
      return true;
    });
  }

  /** Revokes a whole family: its refresh tokens, and (through the family) its access tokens. */
  async revokeFamily(familyId: string, now: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      // The family row's lock first, even when the family is already revoked (see lockLiveFamily):
      // concurrent revocations of a revoked family each updated its refresh_tokens rows in their
      // own order and deadlocked on PostgreSQL (40P01, a 500 to the client).
      await trx
        .updateTable('token_families')
        .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(now)) }))
        .where('family_id', '=', familyId)
        .execute();
      await trx.updateTable('refresh_tokens').set({ revoked: 1 }).where('family_id', '=', familyId).where('revoked', '=', 0).execute();
    });
  }

  /** Whether access tokens of this family are still honoured: family live, grant present, user enabled. */
  async isFamilyActive(familyId: string, now: number): Promise<boolean> {
    // RFC 7662 §2.2: "active" true "will generally indicate that a given token has been issued by
    // this authorization server, has not been revoked by the resource owner, and is within its
    // given time window of validity" — a disabled (or deleted) user's tokens are not honoured, as
    // this method promises: the user row must exist and be enabled.
    const row = await this.db
      .selectFrom('token_families')
      .innerJoin('grants', 'grants.grant_id', 'token_families.grant_id')
      .innerJoin('users', 'users.user_id', 'token_families.user_id')
      .select(['token_families.revoked_at', 'token_families.expires_at'])
      .where('token_families.family_id', '=', familyId)
      .where('users.disabled', '=', 0)
      .executeTakeFirst();
    return row !== undefined && row.revoked_at === null && row.expires_at > now;
  }
}

/**
 * RFC 9700 §4.14.2, refresh token rotation: "the authorization server issues a new refresh token
 * with every access token refresh response. The previous refresh token is invalidated". Rotations
 * and grace-window replacements of one family must therefore run one after the other: each takes
 * the family row's lock first (a no-op UPDATE; PostgreSQL row lock, SQLite's single writer), so
 * the next one's statements see, and invalidate, the token the previous one inserted. Without it,
 * on PostgreSQL (READ COMMITTED) concurrent replacements each revoked only the rows of their own
 * snapshot and left several live refresh tokens in one family. False when the family is gone or
 * revoked. Same lock order as revokeFamily and revokeGrant: token_families, then refresh_tokens.
 */
async function lockLiveFamily(trx: Transaction<Database>, familyId: string): Promise<boolean> {
  const locked = await trx.updateTable('token_families').set({ revoked_at: null }).where('family_id', '=', familyId).where('revoked_at', 'is', null).executeTakeFirst();
  return locked.numUpdatedRows > 0n;
}
