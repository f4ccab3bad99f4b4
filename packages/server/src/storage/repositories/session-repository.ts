import type { Kysely, Selectable } from 'kysely';
import { parseJsonList } from '../json.js';
import type { BrowserSessionTable, Database } from '../schema.js';
import type { User } from './user-repository.js';

/** A signed-in browser. Identified by the SHA-256 of its cookie value; `sid` is public. */
export interface BrowserSession {
  sessionHash: string;
  /** The OpenID Connect `sid` claim. */
  sid: string;
  userId: string;
  /** When the user authenticated (the `auth_time` claim). */
  authTime: number;
  /** Authentication methods (RFC 8176), e.g. ["pwd"]. */
  amr: string[];
  acr: string | null;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute end, however active the session is. */
  expiresAt: number;
}

/**
 * A session to create: `sessionHash` is `sha256(cookieValue)` (the cookie value itself is never
 * stored), `expiresAt` the absolute end (typically `now + config.sessions.absoluteLifetime`).
 */
export type NewBrowserSession = Omit<BrowserSession, 'createdAt' | 'lastSeenAt'> & { now: number };

export interface ActiveBrowserSession {
  session: BrowserSession;
  user: User;
}

function toSession(row: Selectable<BrowserSessionTable>): BrowserSession {
  return {
    sessionHash: row.session_hash,
    sid: row.sid,
    userId: row.user_id,
    authTime: row.auth_time,
    amr: parseJsonList(row.amr),
    acr: row.acr,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    expiresAt: row.expires_at,
  };
}

const SESSION_COLUMNS = [
  'browser_sessions.session_hash',
  'browser_sessions.sid',
  'browser_sessions.user_id',
  'browser_sessions.auth_time',
  'browser_sessions.amr',
  'browser_sessions.acr',
  'browser_sessions.created_at',
  'browser_sessions.last_seen_at',
  'browser_sessions.expires_at',
] as const;

/** Browser sessions of local users. */
export class BrowserSessionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Stores a new session; throws when the session hash or sid already exists, or the user does not. */
  async createSession(input: NewBrowserSession): Promise<BrowserSession> {
    const row: Selectable<BrowserSessionTable> = {
      session_hash: input.sessionHash,
      sid: input.sid,
      user_id: input.userId,
      auth_time: input.authTime,
      amr: JSON.stringify(input.amr),
      acr: input.acr,
      created_at: input.now,
      last_seen_at: input.now,
      expires_at: input.expiresAt,
    };
    await this.db.insertInto('browser_sessions').values(row).execute();
    return toSession(row);
  }

  /**
   * The session and its user, when the session is usable at `now`: known, before its absolute
   * end (`now < expires_at`), used within `idleTimeout` seconds (`now - last_seen_at <=
   * idleTimeout`), and its user exists and is enabled. Otherwise undefined. One query.
   */
  async findSession(sessionHash: string, now: number, idleTimeout: number): Promise<ActiveBrowserSession | undefined> {
    const row = await this.db
      .selectFrom('browser_sessions')
      .innerJoin('users', 'users.user_id', 'browser_sessions.user_id')
      .select(SESSION_COLUMNS)
      .select([
        'users.username',
        'users.email',
        'users.email_verified',
        'users.name',
        'users.disabled',
        'users.created_at as user_created_at',
        'users.updated_at as user_updated_at',
      ])
      .select((eb) => eb.case().when('users.password_hash', 'is', null).then(0).else(1).end().as('has_password'))
      .where('browser_sessions.session_hash', '=', sessionHash)
      .where('browser_sessions.expires_at', '>', now)
      .where('browser_sessions.last_seen_at', '>=', now - idleTimeout)
      .where('users.disabled', '=', 0)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      session: toSession(row),
      user: {
        userId: row.user_id,
        username: row.username,
        email: row.email,
        emailVerified: Number(row.email_verified) === 1,
        name: row.name,
        disabled: false,
        hasPassword: Number(row.has_password) === 1,
        createdAt: row.user_created_at,
        updatedAt: row.user_updated_at,
      },
    };
  }

  /** The session with this public id, whatever its state (for logout by `sid`). */
  async findSessionBySid(sid: string): Promise<BrowserSession | undefined> {
    const row = await this.db.selectFrom('browser_sessions').selectAll().where('sid', '=', sid).executeTakeFirst();
    return row && toSession(row);
  }

  /** Records activity (`last_seen_at`, never moved backwards); callers decide how often. False when unknown. */
  async touchSession(sessionHash: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('browser_sessions')
      .set({ last_seen_at: now })
      .where('session_hash', '=', sessionHash)
      .where('last_seen_at', '<=', now)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async deleteSession(sessionHash: string): Promise<boolean> {
    const result = await this.db.deleteFrom('browser_sessions').where('session_hash', '=', sessionHash).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Ends every session of a user; returns how many there were. */
  async deleteSessionsOfUser(userId: string): Promise<number> {
    const result = await this.db.deleteFrom('browser_sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** How many sessions of a user are usable at `now` (absolute end and idle timeout). */
  async countSessionsOfUser(userId: string, now: number, idleTimeout: number): Promise<number> {
    const row = await this.db
      .selectFrom('browser_sessions')
      .select((eb) => eb.fn.countAll().as('count'))
      .where('user_id', '=', userId)
      .where('expires_at', '>', now)
      .where('last_seen_at', '>=', now - idleTimeout)
      .executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  /** Removes sessions past their absolute end or idle for longer than `idleTimeout`; returns how many. */
  async deleteExpiredSessions(now: number, idleTimeout: number): Promise<number> {
    const result = await this.db
      .deleteFrom('browser_sessions')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<', now - idleTimeout)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
