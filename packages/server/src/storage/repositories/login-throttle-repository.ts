import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Failed sign-ins counted under one key (an account or a client address). */
export interface ThrottleState {
  failures: number;
  lastFailureAt: number;
  /** Sign-ins under this key are refused until this time; 0 when never blocked. */
  blockedUntil: number;
}

/**
 * Counters of failed sign-ins, shared by every instance. Keys are SHA-256 digests of
 * "user:<username_key>" or "ip:<address>" (users/login-throttle.ts builds them); the policy
 * (how many, how long) lives there too.
 */
export class LoginThrottleRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** The counters of these keys that exist. */
  async findThrottleStates(keyHashes: readonly string[]): Promise<Map<string, ThrottleState>> {
    const out = new Map<string, ThrottleState>();
    if (keyHashes.length === 0) return out;
    const rows = await this.db.selectFrom('login_throttle').selectAll().where('key_hash', 'in', [...keyHashes]).execute();
    for (const r of rows) out.set(r.key_hash, { failures: r.failures, lastFailureAt: r.last_failure_at, blockedUntil: r.blocked_until });
    return out;
  }

  /**
   * Counts one failure, atomically (one `insert … on conflict do update … returning`, so
   * concurrent failures on any instance each get their own count). A counter whose last
   * failure is at or before `forgetBefore` starts again at 1; `blocked_until` is kept.
   */
  async recordFailure(keyHash: string, now: number, forgetBefore: number): Promise<ThrottleState> {
    const row = await this.db
      .insertInto('login_throttle')
      .values({ key_hash: keyHash, failures: 1, last_failure_at: now, blocked_until: 0 })
      .onConflict((oc) =>
        oc.column('key_hash').doUpdateSet((eb) => ({
          failures: eb
            .case()
            .when('login_throttle.last_failure_at', '<=', forgetBefore)
            .then(1)
            .else(eb('login_throttle.failures', '+', 1))
            .end(),
          last_failure_at: now,
        })),
      )
      .returning(['failures', 'last_failure_at', 'blocked_until'])
      .executeTakeFirstOrThrow();
    return { failures: row.failures, lastFailureAt: row.last_failure_at, blockedUntil: row.blocked_until };
  }

  /** Blocks the key until `blockedUntil`, unless it is already blocked longer. */
  async extendBlock(keyHash: string, blockedUntil: number): Promise<void> {
    await this.db.updateTable('login_throttle').set({ blocked_until: blockedUntil }).where('key_hash', '=', keyHash).where('blocked_until', '<', blockedUntil).execute();
  }

  /**
   * Takes back one failure counted in advance for an attempt that then succeeded, and the block
   * that count may have set: `blocked_until` goes back to at most `blockedUntilBefore`.
   */
  async refundFailure(keyHash: string, blockedUntilBefore: number): Promise<void> {
    await this.db
      .updateTable('login_throttle')
      .set((eb) => ({
        failures: eb('failures', '-', 1),
        blocked_until: eb.case().when('blocked_until', '>', blockedUntilBefore).then(blockedUntilBefore).else(eb.ref('blocked_until')).end(),
      }))
      .where('key_hash', '=', keyHash)
      .where('failures', '>', 0)
      .execute();
  }

  /** Forgets the failures of a key (after a successful sign-in). */
  async resetThrottle(keyHash: string): Promise<void> {
    await this.db.deleteFrom('login_throttle').where('key_hash', '=', keyHash).execute();
  }

  /** Removes counters whose last failure is before `before` and whose block has ended; returns how many. */
  async deleteStaleThrottles(before: number, now: number): Promise<number> {
    const result = await this.db.deleteFrom('login_throttle').where('last_failure_at', '<', before).where('blocked_until', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
