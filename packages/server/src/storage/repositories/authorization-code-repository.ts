import type { Kysely, Selectable } from 'kysely';
import type { AuthorizationCode } from '../../model.js';
import { delegationFromRow, delegationToRow } from './delegation-columns.js';
import type { AuthorizationCodeTable, Database } from '../schema.js';
import { recordLineage, type NewLineage } from './lineage.js';

function toCode(row: Selectable<AuthorizationCodeTable>): AuthorizationCode {
  return {
    ...delegationFromRow(row),
    redirectUri: row.redirect_uri,
    redirectUriSent: row.redirect_uri_sent === 1,
    codeChallenge: row.code_challenge,
    nonce: row.nonce,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    consumedAt: row.consumed_at,
    familyId: row.family_id,
    accessTokenJti: row.access_token_jti,
    accessTokenExpiresAt: row.access_token_expires_at,
  };
}

export type RedemptionResult = 'redeemed' | 'already_used';

/** Authorization codes, stored only as SHA-256 digests, single use. */
export class AuthorizationCodeRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async storeAuthorizationCode(codeHash: string, code: AuthorizationCode): Promise<void> {
    await this.db
      .insertInto('authorization_codes')
      .values({
        code_hash: codeHash,
        ...delegationToRow(code),
        redirect_uri: code.redirectUri,
        redirect_uri_sent: code.redirectUriSent ? 1 : 0,
        code_challenge: code.codeChallenge,
        nonce: code.nonce,
        created_at: code.createdAt,
        expires_at: code.expiresAt,
        consumed_at: null,
        family_id: null,
        access_token_jti: null,
        access_token_expires_at: null,
      })
      .execute();
  }

  async findAuthorizationCode(codeHash: string): Promise<AuthorizationCode | undefined> {
    const row = await this.db.selectFrom('authorization_codes').selectAll().where('code_hash', '=', codeHash).executeTakeFirst();
    return row && toCode(row);
  }

  /**
   * Consumes a code and records what it issues, in one transaction. Of any number of concurrent
   * redemptions exactly one sees 'redeemed': the conditional update is the arbiter.
   */
  async redeemAuthorizationCode(codeHash: string, now: number, issue: NewLineage): Promise<RedemptionResult> {
    return this.db.transaction().execute(async (trx) => {
      const consumed = await trx
        .updateTable('authorization_codes')
        .set({ consumed_at: now, family_id: issue.familyId, access_token_jti: issue.accessTokenJti, access_token_expires_at: issue.accessTokenExpiresAt })
        .where('code_hash', '=', codeHash)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (consumed.numUpdatedRows === 0n) return 'already_used';
      const code = await trx.selectFrom('authorization_codes').select(['grant_id', 'client_id', 'user_id']).where('code_hash', '=', codeHash).executeTakeFirstOrThrow();
      await recordLineage(trx, { grantId: code.grant_id, clientId: code.client_id, userId: code.user_id }, issue, now);
      return 'redeemed';
    });
  }
}
