import { randomBytes } from 'node:crypto';
import type { ExpressionBuilder, Kysely, Selection } from 'kysely';
import type { Database } from '../schema.js';

/** A local user account. The password hash is never part of it (see `findCredentials`). */
export interface User {
  /** 128 random bits, hex; the `sub` of this user's tokens. */
  userId: string;
  /** As entered when the account was created. */
  username: string;
  email: string | null;
  emailVerified: boolean;
  /** Display name. */
  name: string | null;
  disabled: boolean;
  /** False for an account created without a password: it cannot sign in yet. */
  hasPassword: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface UserInput {
  username: string;
  email?: string | null;
  emailVerified?: boolean;
  name?: string | null;
}

/** What `updateUser` may change; an absent field stays as it is. */
export interface UserUpdate {
  email?: string | null;
  /** When `email` changes and this is absent, the new address counts as unverified. */
  emailVerified?: boolean;
  name?: string | null;
}

export interface UserCredentials {
  user: User;
  /** argon2id PHC string; null when the user has no password. */
  passwordHash: string | null;
}

/** Another account already has this username (compared after normalization). */
export class UsernameTakenError extends Error {
  constructor(readonly username: string) {
    super(`username '${username}' is already taken`);
    this.name = 'UsernameTakenError';
  }
}

/** The username breaks the rules of `usernameProblem`. */
export class InvalidUsernameError extends Error {
  constructor(readonly reason: string) {
    super(`username ${reason}`);
    this.name = 'InvalidUsernameError';
  }
}

export const MAX_USERNAME_LENGTH = 200;
const USER_ID = /^[0-9a-f]{32}$/;

/**
 * The lookup form of a username: surrounding white space removed, NFKC (so compatibility forms
 * such as full-width letters and ligatures become their plain equivalents), lowercase, and NFKC
 * again because lowercasing can leave a string that is no longer normalized.
 */
export function usernameKey(username: string): string {
  return username.trim().normalize('NFKC').toLowerCase().normalize('NFKC');
}

/** Whether a string has the shape of a server-generated user id. */
export function looksLikeUserId(value: string): boolean {
  return USER_ID.test(value);
}

/** Why a username cannot be used, or undefined when it can. */
export function usernameProblem(username: string): string | undefined {
  const key = usernameKey(username);
  if (key === '') return 'must not be empty';
  if (username !== username.trim()) return 'must not start or end with white space';
  // Code points, as PostgreSQL's varchar(200) counts them; the key may be longer than the input.
  if ([...username].length > MAX_USERNAME_LENGTH || [...key].length > MAX_USERNAME_LENGTH) return `must be at most ${MAX_USERNAME_LENGTH} characters`;
  if (/\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}/u.test(username)) return 'must not contain control or invisible formatting characters';
  // `gatehouse users show <username|user_id>` must never be ambiguous.
  if (looksLikeUserId(key)) return 'must not look like a user id (32 hexadecimal digits)';
  return undefined;
}

const USER_COLUMNS = ['user_id', 'username', 'email', 'email_verified', 'name', 'disabled', 'created_at', 'updated_at'] as const;

function hasPasswordColumn(eb: ExpressionBuilder<Database, 'users'>) {
  return eb.case().when('users.password_hash', 'is', null).then(0).else(1).end().as('has_password');
}

type UserRow = Selection<Database, 'users', (typeof USER_COLUMNS)[number]> & { has_password: number };

function toUser(row: UserRow): User {
  return {
    userId: row.user_id,
    username: row.username,
    email: row.email,
    emailVerified: Number(row.email_verified) === 1,
    name: row.name,
    disabled: Number(row.disabled) === 1,
    hasPassword: Number(row.has_password) === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Local user accounts. Passwords are only ever handled as argon2id hashes. */
export class UserRepository {
  constructor(private readonly db: Kysely<Database>) {}

  #select() {
    return this.db.selectFrom('users').select(USER_COLUMNS).select(hasPasswordColumn);
  }

  /**
   * Creates a user with a server-generated id. Throws `InvalidUsernameError` for a username
   * `usernameProblem` refuses, and `UsernameTakenError` when another account has the same
   * normalized username (checked atomically by the unique key, so concurrent creations of one
   * name produce exactly one account).
   */
  async createUser(input: UserInput, passwordHash: string | null, now: number): Promise<User> {
    const problem = usernameProblem(input.username);
    if (problem !== undefined) throw new InvalidUsernameError(problem);
    const userId = randomBytes(16).toString('hex');
    const result = await this.db
      .insertInto('users')
      .values({
        user_id: userId,
        username: input.username,
        username_key: usernameKey(input.username),
        email: input.email ?? null,
        email_verified: input.emailVerified === true ? 1 : 0,
        name: input.name ?? null,
        password_hash: passwordHash,
        disabled: 0,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('username_key').doNothing())
      .executeTakeFirst();
    if ((result.numInsertedOrUpdatedRows ?? 0n) === 0n) throw new UsernameTakenError(input.username);
    const created = await this.findUserById(userId);
    if (!created) throw new Error('user vanished after creation');
    return created;
  }

  async findUserById(userId: string): Promise<User | undefined> {
    const row = await this.#select().where('user_id', '=', userId).executeTakeFirst();
    return row && toUser(row);
  }

  /** Looks a user up by username, compared after normalization (`usernameKey`). */
  async findUserByUsername(username: string): Promise<User | undefined> {
    const row = await this.#select().where('username_key', '=', usernameKey(username)).executeTakeFirst();
    return row && toUser(row);
  }

  /**
   * The user and the stored password hash, for verifying a password: the only way the hash
   * leaves the database. One query, the same whether or not the user exists.
   */
  async findCredentials(username: string): Promise<UserCredentials | undefined> {
    const row = await this.#select().select('password_hash').where('username_key', '=', usernameKey(username)).executeTakeFirst();
    return row && { user: toUser(row), passwordHash: row.password_hash };
  }

  async listUsers(): Promise<User[]> {
    const rows = await this.#select().orderBy('created_at').orderBy('username_key').execute();
    return rows.map(toUser);
  }

  /** Changes profile fields; false when the user does not exist. */
  async updateUser(userId: string, update: UserUpdate, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('users').select(['email', 'email_verified']).where('user_id', '=', userId).executeTakeFirst();
      if (!current) return false;
      let emailVerified = Number(current.email_verified) === 1;
      if (update.email !== undefined && update.email !== current.email) emailVerified = false;
      if (update.emailVerified !== undefined) emailVerified = update.emailVerified;
      await trx
        .updateTable('users')
        .set({
          ...(update.email === undefined ? {} : { email: update.email }),
          ...(update.name === undefined ? {} : { name: update.name }),
          email_verified: emailVerified ? 1 : 0,
          updated_at: now,
        })
        .where('user_id', '=', userId)
        .execute();
      return true;
    });
  }

  /**
   * Disables or enables a user; false when the user does not exist. Disabling also ends every
   * browser session of the user, in the same transaction, so enabling again does not revive them.
   */
  async setUserDisabled(userId: string, disabled: boolean, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('users')
        .set({ disabled: disabled ? 1 : 0, updated_at: now })
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (disabled) await trx.deleteFrom('browser_sessions').where('user_id', '=', userId).execute();
      return result.numUpdatedRows > 0n;
    });
  }

  /**
   * Replaces the password hash (null: no password). By default every browser session of the
   * user ends in the same transaction, as it should after a password reset; pass
   * `endSessions: false` when only the hash's parameters are upgraded after a sign-in, with
   * `ifCurrentHash` so an upgrade never undoes a password change made in the meantime.
   * False when the user does not exist (or the hash is no longer `ifCurrentHash`).
   */
  async setPasswordHash(
    userId: string,
    passwordHash: string | null,
    now: number,
    options: { endSessions?: boolean; ifCurrentHash?: string } = {},
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      let update = trx.updateTable('users').set({ password_hash: passwordHash, updated_at: now }).where('user_id', '=', userId);
      if (options.ifCurrentHash !== undefined) update = update.where('password_hash', '=', options.ifCurrentHash);
      const result = await update.executeTakeFirst();
      if (result.numUpdatedRows === 0n) return false;
      if (options.endSessions !== false) await trx.deleteFrom('browser_sessions').where('user_id', '=', userId).execute();
      return true;
    });
  }

  /** Deletes a user and, in the same transaction, their browser sessions; false when unknown. */
  async deleteUser(userId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // The foreign key cascades too; deleting explicitly does not depend on SQLite's pragma.
      await trx.deleteFrom('browser_sessions').where('user_id', '=', userId).execute();
      const result = await trx.deleteFrom('users').where('user_id', '=', userId).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }
}
