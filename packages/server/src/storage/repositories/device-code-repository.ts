import type { Kysely, Selectable } from 'kysely';
import type { DeviceApproval, DeviceAuthorization, DeviceAuthorizationStatus } from '../../model.js';
import { parseJsonList, splitScope } from '../json.js';
import type { Database, DeviceCodeTable } from '../schema.js';
import { mergeConsent } from './grant-repository.js';
import { recordLineage, type NewLineage } from './lineage.js';

function toDeviceAuthorization(row: Selectable<DeviceCodeTable>): DeviceAuthorization {
  const approved = row.user_id !== null && row.grant_id !== null && row.auth_time !== null;
  return {
    clientId: row.client_id,
    scope: splitScope(row.scope),
    resources: parseJsonList(row.resources),
    status: row.status as DeviceAuthorizationStatus,
    failedAttempts: row.failed_attempts,
    pollInterval: row.poll_interval,
    expiresAt: row.expires_at,
    approval: approved
      ? { userId: row.user_id as string, grantId: row.grant_id as string, sid: row.sid, authTime: row.auth_time as number, acr: row.acr, amr: parseJsonList(row.amr ?? '[]') }
      : null,
  };
}

/** A new request as the device authorization endpoint stores it. */
export interface NewDeviceAuthorization {
  deviceCodeHash: string;
  selectorHash: string;
  userCodeHash: string;
  clientId: string;
  scope: string[];
  resources: string[];
  pollInterval: number;
  createdAt: number;
  expiresAt: number;
}

/** A pending request found by its user code's selector, with the digest that proves the whole code. */
export interface PendingDeviceAuthorization {
  deviceCodeHash: string;
  userCodeHash: string;
  authorization: DeviceAuthorization;
}

export type PollResult = { tooSoon: false } | { tooSoon: true; pollInterval: number };

/**
 * Device authorization requests (RFC 8628). Device codes are SHA-256 digests; user codes keyed
 * digests (protocol/user-code.ts). Every state change is one conditional statement, so two
 * instances deciding or redeeming one request at once cannot both succeed.
 */
export class DeviceCodeRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores a new request. False when a pending, unexpired request already has this very user
   * code (one chance in 20^8 per pending request: the caller draws another); an expired one gives
   * its code up first.
   */
  async createDeviceAuthorization(d: NewDeviceAuthorization): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('device_codes')
        .set({ selector_hash: null, user_code_hash: null })
        .where('user_code_hash', '=', d.userCodeHash)
        .where('expires_at', '<=', d.createdAt)
        .execute();
      const inserted = await trx
        .insertInto('device_codes')
        .values({
          device_code_hash: d.deviceCodeHash,
          selector_hash: d.selectorHash,
          user_code_hash: d.userCodeHash,
          client_id: d.clientId,
          scope: d.scope.join(' '),
          resources: JSON.stringify(d.resources),
          status: 'pending',
          failed_attempts: 0,
          poll_interval: d.pollInterval,
          last_polled_at: null,
          created_at: d.createdAt,
          expires_at: d.expiresAt,
          decided_at: null,
          user_id: null,
          grant_id: null,
          sid: null,
          auth_time: null,
          acr: null,
          amr: null,
        })
        .onConflict((oc) => oc.column('user_code_hash').doNothing())
        .executeTakeFirst();
      return Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0;
    });
  }

  async findDeviceAuthorization(deviceCodeHash: string): Promise<DeviceAuthorization | undefined> {
    const row = await this.db.selectFrom('device_codes').selectAll().where('device_code_hash', '=', deviceCodeHash).executeTakeFirst();
    return row && toDeviceAuthorization(row);
  }

  /** The pending, unexpired requests whose user code starts with this selector (usually none or one). */
  async findPendingBySelector(selectorHash: string, now: number): Promise<PendingDeviceAuthorization[]> {
    const rows = await this.db
      .selectFrom('device_codes')
      .selectAll()
      .where('selector_hash', '=', selectorHash)
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .limit(20)
      .execute();
    return rows.map((row) => ({ deviceCodeHash: row.device_code_hash, userCodeHash: row.user_code_hash ?? '', authorization: toDeviceAuthorization(row) }));
  }

  /**
   * Counts a wrong user code typed against a pending request's selector; the `lockAfter`-th locks
   * the request (it can no longer be approved; the device is told access_denied). True when locked.
   */
  async recordWrongUserCode(deviceCodeHash: string, lockAfter: number, now: number): Promise<boolean> {
    const row = await this.db
      .updateTable('device_codes')
      .set((eb) => ({
        failed_attempts: eb('failed_attempts', '+', 1),
        status: eb.case().when('failed_attempts', '>=', lockAfter - 1).then('locked').else('pending').end(),
        selector_hash: eb.case().when('failed_attempts', '>=', lockAfter - 1).then(eb.val<string | null>(null)).else(eb.ref('selector_hash')).end(),
        user_code_hash: eb.case().when('failed_attempts', '>=', lockAfter - 1).then(eb.val<string | null>(null)).else(eb.ref('user_code_hash')).end(),
        decided_at: eb.case().when('failed_attempts', '>=', lockAfter - 1).then(now).else(eb.ref('decided_at')).end(),
      }))
      .where('device_code_hash', '=', deviceCodeHash)
      .where('status', '=', 'pending')
      .returning('status')
      .executeTakeFirst();
    return row?.status === 'locked';
  }

  /**
   * The user allows a pending, unexpired request: in one transaction the request is claimed
   * (only the first decision counts), the user's consent is recorded as a grant (created or
   * widened) and the request names it. False, with nothing written, when it was already decided,
   * locked or expired.
   */
  async approveDeviceAuthorization(deviceCodeHash: string, approval: Omit<DeviceApproval, 'grantId'>, now: number): Promise<boolean> {
    const attempt = () =>
      this.db.transaction().execute(async (trx) => {
        const claimed = await trx
          .updateTable('device_codes')
          .set({ status: 'approved', selector_hash: null, user_code_hash: null, decided_at: now })
          .where('device_code_hash', '=', deviceCodeHash)
          .where('status', '=', 'pending')
          .where('expires_at', '>', now)
          .returning(['client_id', 'scope', 'resources'])
          .executeTakeFirst();
        if (claimed === undefined) return false;
        const grantId = await mergeConsent(trx, approval.userId, claimed.client_id, splitScope(claimed.scope), parseJsonList(claimed.resources), now);
        await trx
          .updateTable('device_codes')
          .set({ user_id: approval.userId, grant_id: grantId, sid: approval.sid, auth_time: approval.authTime, acr: approval.acr, amr: JSON.stringify(approval.amr) })
          .where('device_code_hash', '=', deviceCodeHash)
          .execute();
        return true;
      });
    try {
      return await attempt();
    } catch {
      // A concurrent first consent for the same user and client (see mergeConsent): once more.
      return attempt();
    }
  }

  /** The user denies a pending, unexpired request. False when it was already decided, locked or expired. */
  async denyDeviceAuthorization(deviceCodeHash: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('device_codes')
      .set({ status: 'denied', selector_hash: null, user_code_hash: null, decided_at: now })
      .where('device_code_hash', '=', deviceCodeHash)
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * RFC 8628 §3.5 polling: records this poll, and when it came sooner than `minimumGap` seconds
   * after the previous one, grows the interval by `increment` ("slow_down"). The "on time" update
   * is conditional on the interval and the previous poll it was judged against, so of concurrent
   * polls at most one is on time.
   */
  async recordPoll(deviceCodeHash: string, now: number, minimumGap: (interval: number) => number, increment: number): Promise<PollResult> {
    const row = await this.db.selectFrom('device_codes').select(['poll_interval']).where('device_code_hash', '=', deviceCodeHash).executeTakeFirst();
    if (row === undefined) return { tooSoon: false };
    const onTime = await this.db
      .updateTable('device_codes')
      .set({ last_polled_at: now })
      .where('device_code_hash', '=', deviceCodeHash)
      .where('poll_interval', '=', row.poll_interval)
      .where((eb) => eb.or([eb('last_polled_at', 'is', null), eb('last_polled_at', '<=', now - minimumGap(row.poll_interval))]))
      .executeTakeFirst();
    if (onTime.numUpdatedRows > 0n) return { tooSoon: false };
    const slowed = await this.db
      .updateTable('device_codes')
      .set((eb) => ({ last_polled_at: now, poll_interval: eb('poll_interval', '+', increment) }))
      .where('device_code_hash', '=', deviceCodeHash)
      .returning('poll_interval')
      .executeTakeFirst();
    return { tooSoon: true, pollInterval: slowed?.poll_interval ?? row.poll_interval + increment };
  }

  /**
   * Redeems an approved, unexpired request and records what it issues, in one transaction. Of any
   * number of concurrent redemptions exactly one sees 'redeemed'.
   */
  async redeemDeviceCode(deviceCodeHash: string, now: number, issue: NewLineage): Promise<'redeemed' | 'not_redeemable'> {
    return this.db.transaction().execute(async (trx) => {
      const consumed = await trx
        .updateTable('device_codes')
        .set({ status: 'consumed' })
        .where('device_code_hash', '=', deviceCodeHash)
        .where('status', '=', 'approved')
        .where('expires_at', '>', now)
        .returning(['grant_id', 'client_id', 'user_id'])
        .executeTakeFirst();
      if (consumed === undefined || consumed.grant_id === null || consumed.user_id === null) return 'not_redeemable';
      await recordLineage(trx, { grantId: consumed.grant_id, clientId: consumed.client_id, userId: consumed.user_id }, issue, now);
      return 'redeemed';
    });
  }
}
