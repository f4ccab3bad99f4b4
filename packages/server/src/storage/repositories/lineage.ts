import type { Transaction } from 'kysely';
import type { RefreshToken } from '../../model.js';
import type { Database } from '../schema.js';
import { refreshTokenRow } from './refresh-token-repository.js';

/**
 * What redeeming a code or a device code issues: a new token family (its access tokens name it),
 * and its first refresh token when there is one. Recorded in the transaction that consumes the
 * code, so tokens are valid only once the code is spent.
 */
export interface NewLineage {
  familyId: string;
  familyExpiresAt: number;
  accessTokenJti: string;
  accessTokenExpiresAt: number;
  refreshToken?: { tokenHash: string; token: RefreshToken };
}

/** The grant behind a code or refresh token was revoked: the request fails, nothing is written. */
export class GrantRevokedError extends Error {
  constructor() {
    super('the grant was revoked');
    this.name = 'GrantRevokedError';
  }
}

/**
 * Records a new lineage under a grant, inside the caller's transaction. Throws GrantRevokedError
 * (rolling the transaction back) when the grant is gone: then nothing is issued.
 */
export async function recordLineage(
  trx: Transaction<Database>,
  owner: { grantId: string; clientId: string; userId: string },
  lineage: NewLineage,
  now: number,
): Promise<void> {
  const grant = await trx.selectFrom('grants').select('grant_id').where('grant_id', '=', owner.grantId).executeTakeFirst();
  if (!grant) throw new GrantRevokedError();
  await trx
    .insertInto('token_families')
    .values({ family_id: lineage.familyId, grant_id: owner.grantId, client_id: owner.clientId, user_id: owner.userId, created_at: now, expires_at: lineage.familyExpiresAt, revoked_at: null })
    .execute();
  if (lineage.refreshToken) await trx.insertInto('refresh_tokens').values(refreshTokenRow(lineage.refreshToken.tokenHash, lineage.refreshToken.token)).execute();
}
