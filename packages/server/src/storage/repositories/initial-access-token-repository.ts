import type { Kysely } from 'kysely';
import type { InitialAccessToken } from '../../model.js';
import { splitScope } from '../json.js';
import type { Database } from '../schema.js';

/** RFC 7591 §3 initial access tokens, stored only as SHA-256 digests. */
export class InitialAccessTokenRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async createInitialAccessToken(tokenHash: string, token: InitialAccessToken): Promise<void> {
    await this.db
      .insertInto('initial_access_tokens')
      .values({
        token_hash: tokenHash,
        description: token.description,
        scope: token.scope.join(' '),
        created_at: token.createdAt,
        expires_at: token.expiresAt,
        max_uses: token.maxUses,
        uses: 0,
      })
      .execute();
  }

  /**
   * The scopes a valid token allows, or undefined when it is unknown, expired or used up. A use
   * is counted by `ClientRepository.createClient`, in the transaction that registers the client.
   */
  async findValidInitialAccessToken(tokenHash: string, now: number): Promise<{ scope: string[] } | undefined> {
    const row = await this.db
      .selectFrom('initial_access_tokens')
      .select('scope')
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', now)
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirst();
    return row && { scope: splitScope(row.scope) };
  }
}
