import type { Kysely } from 'kysely';
import type { AuthorizationRequest } from '../../model.js';
import type { Database } from '../schema.js';

export interface StoredInteraction {
  bindingHash: string;
  request: AuthorizationRequest;
  expiresAt: number;
}

/** Authorization requests waiting for the user to sign in or consent, bound to one browser. */
export class InteractionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async createInteraction(interactionId: string, bindingHash: string, request: AuthorizationRequest, now: number, expiresAt: number): Promise<void> {
    await this.db
      .insertInto('interactions')
      .values({ interaction_id: interactionId, binding_hash: bindingHash, request: JSON.stringify(request), created_at: now, expires_at: expiresAt })
      .execute();
  }

  async findInteraction(interactionId: string, now: number): Promise<StoredInteraction | undefined> {
    const row = await this.db
      .selectFrom('interactions')
      .selectAll()
      .where('interaction_id', '=', interactionId)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return row && { bindingHash: row.binding_hash, request: JSON.parse(row.request) as AuthorizationRequest, expiresAt: row.expires_at };
  }

  /** Records progress (e.g. a completed sign-in satisfies prompt=login and max_age). */
  async updateInteractionRequest(interactionId: string, request: AuthorizationRequest): Promise<void> {
    await this.db.updateTable('interactions').set({ request: JSON.stringify(request) }).where('interaction_id', '=', interactionId).execute();
  }

  /** Ends an interaction; true for the one caller that ended it (a form posted twice loses). */
  async finishInteraction(interactionId: string): Promise<boolean> {
    const result = await this.db.deleteFrom('interactions').where('interaction_id', '=', interactionId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
