import type { Kysely } from 'kysely';
import type { OpaqueAccessToken } from '../../model.js';
import { parseJsonList, splitScope } from '../json.js';
import type { Database } from '../schema.js';
import { PreparedRead } from '../prepared-query.js';
import type { ReadRows } from '../database.js';

/** State kept for access tokens: opaque tokens by digest, and revoked JWT ids until they expire. */
export class AccessTokenRepository {
  readonly #revoked: PreparedRead<[string], { jti: string }>;

  constructor(
    private readonly db: Kysely<Database>,
    readRows: ReadRows,
  ) {
    this.#revoked = new PreparedRead(
      readRows,
      (jti: string) => db.selectFrom('revoked_access_tokens').select('jti').where('jti', '=', jti),
      ['\u0000jti'],
    );
  }

  async storeOpaqueAccessToken(tokenHash: string, token: OpaqueAccessToken): Promise<void> {
    await this.db
      .insertInto('opaque_access_tokens')
      .values({
        token_hash: tokenHash,
        jti: token.jti,
        client_id: token.clientId,
        subject: token.subject,
        family_id: token.familyId,
        audience: JSON.stringify(token.audience),
        scope: token.scope.join(' '),
        issued_at: token.issuedAt,
        expires_at: token.expiresAt,
        revoked: token.revoked ? 1 : 0,
      })
      .execute();
  }

  async findOpaqueAccessToken(tokenHash: string): Promise<OpaqueAccessToken | undefined> {
    const row = await this.db.selectFrom('opaque_access_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
    if (!row) return undefined;
    return {
      jti: row.jti,
      clientId: row.client_id,
      subject: row.subject,
      familyId: row.family_id,
      audience: parseJsonList(row.audience),
      scope: splitScope(row.scope),
      issuedAt: row.issued_at,
      expiresAt: row.expires_at,
      revoked: row.revoked === 1,
    };
  }

  async revokeOpaqueAccessToken(tokenHash: string): Promise<void> {
    await this.db.updateTable('opaque_access_tokens').set({ revoked: 1 }).where('token_hash', '=', tokenHash).execute();
  }

  /** Remembers a revoked JWT access token's `jti` until the token would have expired anyway. */
  async revokeAccessTokenId(jti: string, expiresAt: number): Promise<void> {
    await this.db
      .insertInto('revoked_access_tokens')
      .values({ jti, expires_at: expiresAt })
      .onConflict((oc) => oc.column('jti').doNothing())
      .execute();
  }

  /** Introspection hot path: one precompiled lookup by primary key. */
  async isAccessTokenIdRevoked(jti: string): Promise<boolean> {
    return (await this.#revoked.execute(jti)).length > 0;
  }
}
