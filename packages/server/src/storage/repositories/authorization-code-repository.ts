import type { Kysely, Selectable, Transaction } from 'kysely';
import type { AuthorizationCode, RefreshToken } from '../../model.js';
import { delegationFromRow, delegationToRow } from './delegation-columns.js';
import type { AuthorizationCodeTable, Database } from '../schema.js';
import { refreshTokenRow } from './refresh-token-repository.js';

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

/** What a successful redemption issues, recorded in the same transaction that consumes the code. */
export interface CodeRedemption {
  familyId: string;
  familyExpiresAt: number;
  accessTokenJti: string;
  accessTokenExpiresAt: number;
  refreshToken?: { tokenHash: string; token: RefreshToken };
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
  async redeemAuthorizationCode(codeHash: string, now: number, issue: CodeRedemption): Promise<RedemptionResult> {
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
      // The grant may have been revoked since the code was issued: then nothing is issued.
      const grant = await trx.selectFrom('grants').select('grant_id').where('grant_id', '=', code.grant_id).executeTakeFirst();
      if (!grant) throw new GrantRevokedError();
      await trx
        .insertInto('token_families')
        .values({ family_id: issue.familyId, grant_id: code.grant_id, client_id: code.client_id, user_id: code.user_id, created_at: now, expires_at: issue.familyExpiresAt, revoked_at: null })
        .execute();
      if (issue.refreshToken) await insertRefreshToken(trx, issue.refreshToken.tokenHash, issue.refreshToken.token);
      await trx.updateTable('grants').set({ last_used_at: now }).where('grant_id', '=', code.grant_id).execute();
      return 'redeemed';
    });
  }
}

/** The grant behind a code or refresh token was revoked: the request fails, nothing is written. */
export class GrantRevokedError extends Error {
  constructor() {
    super('the grant was revoked');
    this.name = 'GrantRevokedError';
  }
}

async function insertRefreshToken(trx: Transaction<Database>, tokenHash: string, token: RefreshToken): Promise<void> {
  await trx.insertInto('refresh_tokens').values(refreshTokenRow(tokenHash, token)).execute();
}
