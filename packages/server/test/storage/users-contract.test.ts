import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/storage/database.js';
import { InvalidUsernameError, UsernameTakenError, usernameKey, type User } from '../../src/storage/repositories/user-repository.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';
import { randomToken, sha256 } from '../../src/tokens/random.js';
import { authenticateUser, type AuthenticateUserDeps } from '../../src/users/authenticate-user.js';
import { LoginThrottle, loginThrottleKeys, stateAfterFailure, type LoginPolicy } from '../../src/users/login-throttle.js';
import { DUMMY_PASSWORD_HASH, hashPassword, passwordNeedsRehash, verifyPassword, type PasswordVerifier } from '../../src/users/passwords.js';
import { DIALECTS, type Dialect } from '../helpers/server.js';
import { createPostgresSchema, type PostgresSchema } from '../helpers/postgres.js';

const NOW = 1_800_000_000;
const POLICY: LoginPolicy = { freeAttempts: 5, baseDelay: 1, maxDelay: 900, window: 3600 };
const IDLE = 7200;

/** A new session's cookie value (kept by the browser) and what the server stores. */
function newSessionIds() {
  const cookie = randomToken();
  return { cookie, sessionHash: sha256(cookie), sid: randomToken() };
}

/** The real verifier, counting how often it ran and against which hash. */
function countingVerifier(): { verify: PasswordVerifier; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    verify: async (stored, password) => {
      calls.push(stored);
      return verifyPassword(stored, password);
    },
  };
}

/** Users, sessions and login throttling behave the same on SQLite and PostgreSQL. */
describe.each(DIALECTS)('users contract on %s', (dialect: Dialect) => {
  let storage: Storage;
  let dir: string;
  let schema: PostgresSchema | undefined;
  let aliceHash: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-users-'));
    if (dialect === 'postgres') schema = await createPostgresSchema();
    storage = openStorage({ databaseUrl: schema?.url, sqliteFile: join(dir, 'test.db') });
    const first = await migrateToLatest(storage.handle.db);
    expect(first.applied).toContain('0003-users');
    aliceHash = await hashPassword('alice password 1');
  });

  afterAll(async () => {
    await storage.close();
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('users', () => {
    let alice: User;

    it('creates a user with a generated 128-bit id and reads it back', async () => {
      alice = await storage.users.createUser({ username: 'Alice', email: 'alice@example.com', emailVerified: true, name: 'Alice Liddell' }, aliceHash, NOW);
      expect(alice).toEqual({
        userId: expect.stringMatching(/^[0-9a-f]{32}$/),
        username: 'Alice',
        email: 'alice@example.com',
        emailVerified: true,
        name: 'Alice Liddell',
        disabled: false,
        hasPassword: true,
        createdAt: NOW,
        updatedAt: NOW,
      });
      expect(alice).not.toHaveProperty('passwordHash');
      expect(await storage.users.findUserById(alice.userId)).toEqual(alice);
      expect(await storage.users.findUserById('0'.repeat(32))).toBeUndefined();
    });

    it('finds a user by username without regard to case, width or surrounding space', async () => {
      for (const typed of ['Alice', 'alice', 'ALICE', ' alice ', 'Ａｌｉｃｅ']) {
        expect((await storage.users.findUserByUsername(typed))?.userId).toBe(alice.userId);
      }
      expect(await storage.users.findUserByUsername('alicia')).toBeUndefined();
      expect(usernameKey('Ａｌｉｃｅ')).toBe('alice');
    });

    it('refuses a username that normalizes to a taken one, with a typed error', async () => {
      for (const username of ['alice', 'ALICE', 'Ａｌｉｃｅ']) {
        await expect(storage.users.createUser({ username }, null, NOW)).rejects.toBeInstanceOf(UsernameTakenError);
      }
      expect((await storage.users.listUsers()).length).toBe(1);
    });

    it('refuses concurrent creations of one username but one', async () => {
      const results = await Promise.allSettled(['carol', 'Carol', 'CAROL', 'carol'].map((username) => storage.users.createUser({ username }, null, NOW)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(UsernameTakenError);
    });

    it.each([
      ['empty', ''],
      ['white space only', '   '],
      ['leading space', ' bob'],
      ['a control character', 'bob\u0000'],
      ['an invisible format character', 'b\u200bob'],
      ['201 characters', 'b'.repeat(201)],
      ['the shape of a user id', 'ABCDEF0123456789abcdef0123456789'],
    ])('refuses a username with %s', async (_name, username) => {
      await expect(storage.users.createUser({ username }, null, NOW)).rejects.toBeInstanceOf(InvalidUsernameError);
    });

    it('accepts a 200-character username and non-Latin scripts', async () => {
      const long = await storage.users.createUser({ username: 'd'.repeat(200) }, null, NOW);
      expect(long.username).toHaveLength(200);
      const greek = await storage.users.createUser({ username: 'Ἀλέξανδρος' }, null, NOW);
      expect((await storage.users.findUserByUsername('ἀλέξανδρος'))?.userId).toBe(greek.userId);
      await storage.users.deleteUser(long.userId);
      await storage.users.deleteUser(greek.userId);
    });

    it('gives the password hash out only through findCredentials', async () => {
      const credentials = await storage.users.findCredentials('ALICE');
      expect(credentials).toEqual({ user: alice, passwordHash: aliceHash });
      expect(await storage.users.findCredentials('nobody')).toBeUndefined();
      const carol = await storage.users.findCredentials('carol');
      expect(carol?.passwordHash).toBeNull();
      expect(carol?.user.hasPassword).toBe(false);
    });

    it('lists users in creation order', async () => {
      const bob = await storage.users.createUser({ username: 'bob' }, null, NOW + 1);
      const list = await storage.users.listUsers();
      expect(list.map((u) => u.username)).toEqual(['Alice', expect.stringMatching(/^carol$/i), 'bob']);
      expect(list[2]).toEqual(bob);
    });

    it('updates profile fields; a changed email address is unverified unless said otherwise', async () => {
      expect(await storage.users.updateUser(alice.userId, { name: 'A. Liddell' }, NOW + 10)).toBe(true);
      let user = await storage.users.findUserById(alice.userId);
      expect(user).toMatchObject({ name: 'A. Liddell', email: 'alice@example.com', emailVerified: true, updatedAt: NOW + 10 });

      expect(await storage.users.updateUser(alice.userId, { email: 'alice@example.com' }, NOW + 11)).toBe(true);
      expect((await storage.users.findUserById(alice.userId))?.emailVerified).toBe(true);

      expect(await storage.users.updateUser(alice.userId, { email: 'alice@example.org' }, NOW + 12)).toBe(true);
      user = await storage.users.findUserById(alice.userId);
      expect(user).toMatchObject({ email: 'alice@example.org', emailVerified: false });

      expect(await storage.users.updateUser(alice.userId, { email: 'alice@example.com', emailVerified: true, name: null }, NOW + 13)).toBe(true);
      user = await storage.users.findUserById(alice.userId);
      expect(user).toMatchObject({ email: 'alice@example.com', emailVerified: true, name: null });
      expect(await storage.users.updateUser('0'.repeat(32), { name: 'x' }, NOW)).toBe(false);
    });

    it('sets and clears a password hash', async () => {
      const bob = await storage.users.findUserByUsername('bob');
      if (!bob) throw new Error('bob missing');
      const bobHash = await hashPassword('bob password 1');
      expect(await storage.users.setPasswordHash(bob.userId, bobHash, NOW + 20)).toBe(true);
      expect((await storage.users.findCredentials('bob'))?.passwordHash).toBe(bobHash);
      expect((await storage.users.findUserById(bob.userId))?.hasPassword).toBe(true);
      // A conditional update does nothing when the hash changed meanwhile.
      expect(await storage.users.setPasswordHash(bob.userId, 'other', NOW + 21, { ifCurrentHash: aliceHash })).toBe(false);
      expect((await storage.users.findCredentials('bob'))?.passwordHash).toBe(bobHash);
      expect(await storage.users.setPasswordHash(bob.userId, null, NOW + 22, { ifCurrentHash: bobHash })).toBe(true);
      expect((await storage.users.findUserById(bob.userId))?.hasPassword).toBe(false);
      expect(await storage.users.setPasswordHash('0'.repeat(32), bobHash, NOW)).toBe(false);
    });

    it('disables and enables a user', async () => {
      expect(await storage.users.setUserDisabled(alice.userId, true, NOW + 30)).toBe(true);
      expect((await storage.users.findUserById(alice.userId))?.disabled).toBe(true);
      expect(await storage.users.setUserDisabled(alice.userId, false, NOW + 31)).toBe(true);
      expect((await storage.users.findUserById(alice.userId))?.disabled).toBe(false);
      expect(await storage.users.setUserDisabled('0'.repeat(32), true, NOW)).toBe(false);
    });
  });

  describe('browser sessions', () => {
    let user: User;

    beforeAll(async () => {
      user = await storage.users.createUser({ username: 'dana' }, await hashPassword('dana password 1'), NOW);
    });

    async function session(overrides: { expiresAt?: number; now?: number; userId?: string } = {}) {
      const ids = newSessionIds();
      const created = await storage.sessions.createSession({
        sessionHash: ids.sessionHash,
        sid: ids.sid,
        userId: overrides.userId ?? user.userId,
        authTime: overrides.now ?? NOW,
        amr: ['pwd'],
        acr: null,
        expiresAt: overrides.expiresAt ?? NOW + 43_200,
        now: overrides.now ?? NOW,
      });
      return { ...ids, created };
    }

    it('creates a session and finds it with its user by the cookie digest', async () => {
      const s = await session();
      expect(s.created).toEqual({
        sessionHash: s.sessionHash,
        sid: s.sid,
        userId: user.userId,
        authTime: NOW,
        amr: ['pwd'],
        acr: null,
        createdAt: NOW,
        lastSeenAt: NOW,
        expiresAt: NOW + 43_200,
      });
      const found = await storage.sessions.findSession(sha256(s.cookie), NOW + 5, IDLE);
      expect(found).toEqual({ session: s.created, user });
      expect(await storage.sessions.findSession(sha256('some other cookie'), NOW, IDLE)).toBeUndefined();
      // The cookie value itself is not a key.
      expect(await storage.sessions.findSession(s.cookie, NOW, IDLE)).toBeUndefined();
      expect(await storage.sessions.findSessionBySid(s.sid)).toEqual(s.created);
      expect(await storage.sessions.findSessionBySid('unknown')).toBeUndefined();
    });

    it('keeps acr and several amr values', async () => {
      const ids = newSessionIds();
      await storage.sessions.createSession({ ...ids, userId: user.userId, authTime: NOW - 3, amr: ['pwd', 'otp'], acr: 'urn:example:mfa', expiresAt: NOW + 100, now: NOW });
      const found = await storage.sessions.findSession(ids.sessionHash, NOW, IDLE);
      expect(found?.session).toMatchObject({ amr: ['pwd', 'otp'], acr: 'urn:example:mfa', authTime: NOW - 3 });
    });

    it('refuses a duplicate sid or session digest, and a session of an unknown user', async () => {
      const s = await session();
      await expect(storage.sessions.createSession({ ...newSessionIds(), sid: s.sid, userId: user.userId, authTime: NOW, amr: ['pwd'], acr: null, expiresAt: NOW + 10, now: NOW })).rejects.toThrow();
      await expect(storage.sessions.createSession({ ...newSessionIds(), sessionHash: s.sessionHash, userId: user.userId, authTime: NOW, amr: ['pwd'], acr: null, expiresAt: NOW + 10, now: NOW })).rejects.toThrow();
      await expect(storage.sessions.createSession({ ...newSessionIds(), userId: 'f'.repeat(32), authTime: NOW, amr: ['pwd'], acr: null, expiresAt: NOW + 10, now: NOW })).rejects.toThrow();
    });

    it('ends a session at its absolute end, however active', async () => {
      const s = await session({ expiresAt: NOW + 100 });
      expect(await storage.sessions.findSession(s.sessionHash, NOW + 99, IDLE)).toBeDefined();
      expect(await storage.sessions.touchSession(s.sessionHash, NOW + 99)).toBe(true);
      expect(await storage.sessions.findSession(s.sessionHash, NOW + 100, IDLE)).toBeUndefined();
      expect(await storage.sessions.findSession(s.sessionHash, NOW + 101, IDLE)).toBeUndefined();
    });

    it('ends a session idle for longer than the idle timeout; use keeps it alive', async () => {
      const s = await session();
      expect(await storage.sessions.findSession(s.sessionHash, NOW + IDLE, IDLE)).toBeDefined();
      expect(await storage.sessions.findSession(s.sessionHash, NOW + IDLE + 1, IDLE)).toBeUndefined();
      expect(await storage.sessions.touchSession(s.sessionHash, NOW + IDLE - 10)).toBe(true);
      const found = await storage.sessions.findSession(s.sessionHash, NOW + IDLE + 1, IDLE);
      expect(found?.session.lastSeenAt).toBe(NOW + IDLE - 10);
      // last_seen_at never moves backwards.
      expect(await storage.sessions.touchSession(s.sessionHash, NOW)).toBe(false);
      expect((await storage.sessions.findSessionBySid(s.sid))?.lastSeenAt).toBe(NOW + IDLE - 10);
      expect(await storage.sessions.touchSession(sha256('unknown'), NOW)).toBe(false);
    });

    it('deletes one session, or all of a user', async () => {
      const a = await session();
      const b = await session();
      expect(await storage.sessions.deleteSession(a.sessionHash)).toBe(true);
      expect(await storage.sessions.deleteSession(a.sessionHash)).toBe(false);
      expect(await storage.sessions.findSession(a.sessionHash, NOW, IDLE)).toBeUndefined();
      expect(await storage.sessions.findSession(b.sessionHash, NOW, IDLE)).toBeDefined();
      const count = await storage.sessions.countSessionsOfUser(user.userId, NOW, IDLE);
      expect(count).toBeGreaterThan(1);
      expect(await storage.sessions.deleteSessionsOfUser(user.userId)).toBeGreaterThanOrEqual(count);
      expect(await storage.sessions.findSession(b.sessionHash, NOW, IDLE)).toBeUndefined();
      expect(await storage.sessions.countSessionsOfUser(user.userId, NOW, IDLE)).toBe(0);
    });

    it('counts and removes only usable sessions', async () => {
      await session({ expiresAt: NOW + 10 });
      await session({ now: NOW - IDLE - 5 });
      const live = await session();
      expect(await storage.sessions.countSessionsOfUser(user.userId, NOW + 20, IDLE)).toBe(1);
      expect(await storage.sessions.deleteExpiredSessions(NOW + 20, IDLE)).toBe(2);
      expect(await storage.sessions.findSession(live.sessionHash, NOW + 20, IDLE)).toBeDefined();
      await storage.sessions.deleteSessionsOfUser(user.userId);
    });

    it('ends the sessions of a disabled user, and does not revive them on enabling', async () => {
      const s = await session();
      expect(await storage.users.setUserDisabled(user.userId, true, NOW + 1)).toBe(true);
      expect(await storage.sessions.findSession(s.sessionHash, NOW + 2, IDLE)).toBeUndefined();
      expect(await storage.users.setUserDisabled(user.userId, false, NOW + 3)).toBe(true);
      expect(await storage.sessions.findSession(s.sessionHash, NOW + 4, IDLE)).toBeUndefined();
    });

    it('ignores a session whose user is disabled, even one created after disabling', async () => {
      await storage.users.setUserDisabled(user.userId, true, NOW);
      const s = await session();
      expect(await storage.sessions.findSession(s.sessionHash, NOW, IDLE)).toBeUndefined();
      await storage.users.setUserDisabled(user.userId, false, NOW);
      expect((await storage.sessions.findSession(s.sessionHash, NOW, IDLE))?.user.userId).toBe(user.userId);
      await storage.sessions.deleteSessionsOfUser(user.userId);
    });

    it('ends every session on a password change, unless asked to keep them', async () => {
      const s = await session();
      const current = (await storage.users.findCredentials('dana'))?.passwordHash;
      if (!current) throw new Error('dana has no hash');
      expect(await storage.users.setPasswordHash(user.userId, current, NOW, { endSessions: false })).toBe(true);
      expect(await storage.sessions.findSession(s.sessionHash, NOW, IDLE)).toBeDefined();
      expect(await storage.users.setPasswordHash(user.userId, await hashPassword('dana password 2'), NOW)).toBe(true);
      expect(await storage.sessions.findSession(s.sessionHash, NOW, IDLE)).toBeUndefined();
    });

    it('deletes a user with their sessions', async () => {
      const temp = await storage.users.createUser({ username: 'temporary' }, null, NOW);
      const s = await session({ userId: temp.userId });
      expect(await storage.users.deleteUser(temp.userId)).toBe(true);
      expect(await storage.users.deleteUser(temp.userId)).toBe(false);
      expect(await storage.users.findUserById(temp.userId)).toBeUndefined();
      expect(await storage.sessions.findSessionBySid(s.sid)).toBeUndefined();
      // The username is free again.
      const again = await storage.users.createUser({ username: 'Temporary' }, null, NOW);
      expect(again.userId).not.toBe(temp.userId);
      await storage.users.deleteUser(again.userId);
    });
  });

  describe('login throttle counters', () => {
    it('counts failures atomically, concurrently, and agrees with the pure rule', async () => {
      const key = sha256(`user:counter-${dialect}`);
      const counts = await Promise.all(Array.from({ length: 12 }, () => storage.loginThrottle.recordFailure(key, NOW, NOW - POLICY.window)));
      expect(counts.map((c) => c.failures).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      const state = (await storage.loginThrottle.findThrottleStates([key])).get(key);
      expect(state).toEqual({ failures: 12, lastFailureAt: NOW, blockedUntil: 0 });

      // A failure inside the window counts on; one a full window later starts again at 1.
      const next = await storage.loginThrottle.recordFailure(key, NOW + 3599, NOW + 3599 - POLICY.window);
      expect(next).toEqual({ failures: 13, lastFailureAt: NOW + 3599, blockedUntil: 0 });
      expect(next.failures).toBe(stateAfterFailure(state, NOW + 3599, POLICY).failures);
      const restarted = await storage.loginThrottle.recordFailure(key, NOW + 7199, NOW + 7199 - POLICY.window);
      expect(restarted.failures).toBe(stateAfterFailure(next, NOW + 7199, POLICY).failures);
      expect(restarted.failures).toBe(1);
    });

    it('only ever extends a block, and forgets a key on reset', async () => {
      const key = sha256('ip:198.51.100.7');
      await storage.loginThrottle.recordFailure(key, NOW, NOW - POLICY.window);
      await storage.loginThrottle.extendBlock(key, NOW + 100);
      await storage.loginThrottle.extendBlock(key, NOW + 50);
      expect((await storage.loginThrottle.findThrottleStates([key])).get(key)?.blockedUntil).toBe(NOW + 100);
      // Counting again keeps the block.
      expect((await storage.loginThrottle.recordFailure(key, NOW + 1, NOW + 1 - POLICY.window)).blockedUntil).toBe(NOW + 100);
      await storage.loginThrottle.resetThrottle(key);
      expect((await storage.loginThrottle.findThrottleStates([key])).size).toBe(0);
      expect((await storage.loginThrottle.findThrottleStates([])).size).toBe(0);
    });

    it('removes stale counters whose block has ended', async () => {
      const stale = sha256('ip:stale');
      const blocked = sha256('ip:stale-but-blocked');
      const fresh = sha256('ip:fresh');
      await storage.loginThrottle.recordFailure(stale, NOW - 5000, 0);
      await storage.loginThrottle.recordFailure(blocked, NOW - 5000, 0);
      await storage.loginThrottle.extendBlock(blocked, NOW + 10);
      await storage.loginThrottle.recordFailure(fresh, NOW, 0);
      expect(await storage.loginThrottle.deleteStaleThrottles(NOW - POLICY.window, NOW)).toBeGreaterThanOrEqual(1);
      const left = await storage.loginThrottle.findThrottleStates([stale, blocked, fresh]);
      expect([...left.keys()].sort()).toEqual([blocked, fresh].sort());
    });
  });

  describe('authenticateUser', () => {
    const PASSWORD = 'erin password 1';
    let erin: User;
    let erinHash: string;
    let t = NOW + 100_000;
    // Each test signs in from its own address, so address counters do not carry over.
    let ipCounter = 0;
    const nextIp = () => `203.0.113.${++ipCounter}`;

    beforeAll(async () => {
      erinHash = await hashPassword(PASSWORD);
      erin = await storage.users.createUser({ username: 'Erin' }, erinHash, NOW);
      await storage.users.createUser({ username: 'frank' }, null, NOW);
    });

    function deps(verify: PasswordVerifier = verifyPassword): AuthenticateUserDeps {
      return { users: storage.users, throttle: new LoginThrottle(storage.loginThrottle, POLICY), verifyPassword: verify };
    }

    async function clear(username: string, ip: string) {
      const keys = loginThrottleKeys(username, ip);
      await storage.loginThrottle.resetThrottle(keys.account);
      await storage.loginThrottle.resetThrottle(keys.address);
    }

    it('signs in with the right password, whatever the username case', async () => {
      const ip = nextIp();
      const counting = countingVerifier();
      const result = await authenticateUser({ username: 'ERIN', password: PASSWORD, ip, now: t }, deps(counting.verify));
      expect(result).toEqual({ ok: true, user: erin });
      expect(counting.calls).toEqual([erinHash]);
    });

    it('unknown user, wrong password, disabled user and user without password: same answer, one verification each', async () => {
      const cases: [string, string, () => Promise<void>, string][] = [
        ['nobody-at-all', PASSWORD, async () => undefined, DUMMY_PASSWORD_HASH],
        ['erin', 'wrong password', async () => undefined, erinHash],
        ['frank', 'any password 1', async () => undefined, DUMMY_PASSWORD_HASH],
        [
          'erin',
          PASSWORD,
          async () => {
            await storage.users.setUserDisabled(erin.userId, true, t);
          },
          erinHash,
        ],
      ];
      for (const [username, password, setup, expectedHash] of cases) {
        await setup();
        const counting = countingVerifier();
        const result = await authenticateUser({ username, password, ip: nextIp(), now: t }, deps(counting.verify));
        expect(result).toEqual({ ok: false, reason: 'invalid_credentials' });
        // Exactly one argon2id verification, against a hash with the same parameters.
        expect(counting.calls).toEqual([expectedHash]);
        expect(passwordNeedsRehash(counting.calls[0] ?? '')).toBe(false);
        await clear(username, '');
      }
      await storage.users.setUserDisabled(erin.userId, false, t);
      await clear('erin', '');
    });

    it('throttles an account after freeAttempts failures without verifying the password', async () => {
      t += 10_000;
      const counting = countingVerifier();
      const results = [];
      // Each attempt from a different address: the account counter alone throttles.
      for (let i = 0; i < POLICY.freeAttempts; i++) {
        results.push(await authenticateUser({ username: 'erin', password: `wrong ${i}`, ip: nextIp(), now: t }, deps(counting.verify)));
      }
      expect(results.every((r) => !r.ok && r.reason === 'invalid_credentials')).toBe(true);
      expect(counting.calls).toHaveLength(POLICY.freeAttempts);

      // Blocked for baseDelay: even the right password is not looked at.
      const blocked = await authenticateUser({ username: 'Erin', password: PASSWORD, ip: nextIp(), now: t }, deps(counting.verify));
      expect(blocked).toEqual({ ok: false, reason: 'throttled', retryAfter: 1 });
      expect(counting.calls).toHaveLength(POLICY.freeAttempts);

      // After the delay: one more failure doubles it.
      t += 1;
      expect(await authenticateUser({ username: 'erin', password: 'wrong again', ip: nextIp(), now: t }, deps(counting.verify))).toEqual({ ok: false, reason: 'invalid_credentials' });
      expect(await authenticateUser({ username: 'erin', password: PASSWORD, ip: nextIp(), now: t + 1 }, deps(counting.verify))).toEqual({ ok: false, reason: 'throttled', retryAfter: 1 });
      expect(counting.calls).toHaveLength(POLICY.freeAttempts + 1);

      // Throttled attempts were not counted: after 2 s the right password works and resets the account.
      t += 2;
      const ok = await authenticateUser({ username: 'erin', password: PASSWORD, ip: nextIp(), now: t }, deps(counting.verify));
      expect(ok.ok).toBe(true);
      const keys = loginThrottleKeys('erin', '');
      expect((await storage.loginThrottle.findThrottleStates([keys.account])).size).toBe(0);
    });

    it('throttles an address across usernames, and a success does not reset the address', async () => {
      t += 10_000;
      const ip = '2001:db8:1:2::10';
      const counting = countingVerifier();
      for (let i = 0; i < POLICY.freeAttempts - 1; i++) {
        await authenticateUser({ username: `guess-${i}`, password: 'password guess', ip, now: t }, deps(counting.verify));
      }
      // A valid sign-in from the same /64 resets Erin's counter, not the address's.
      const ok = await authenticateUser({ username: 'erin', password: PASSWORD, ip: '2001:db8:1:2::99', now: t }, deps(counting.verify));
      expect(ok.ok).toBe(true);
      expect(await authenticateUser({ username: 'guess-last', password: 'password guess', ip, now: t }, deps(counting.verify))).toEqual({ ok: false, reason: 'invalid_credentials' });
      const blocked = await authenticateUser({ username: 'erin', password: PASSWORD, ip: '2001:db8:1:2:ffff::1', now: t }, deps(counting.verify));
      expect(blocked).toEqual({ ok: false, reason: 'throttled', retryAfter: 1 });
      // Another address is not affected.
      expect((await authenticateUser({ username: 'erin', password: PASSWORD, ip: '2001:db8:1:3::10', now: t }, deps(counting.verify))).ok).toBe(true);
    });

    it('throttles guesses sent in parallel: they cannot all pass a check made before any failed', async () => {
      t += 10_000;
      const counting = countingVerifier();
      // 50 guesses at once, each from its own address: only the account counter can stop them.
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => authenticateUser({ username: 'erin', password: `guess ${i}`, ip: `198.51.100.${i + 1}`, now: t }, deps(counting.verify))),
      );
      // Without counting in advance, every one of them would have reached the password hash.
      expect(counting.calls.length).toBeLessThanOrEqual(POLICY.freeAttempts);
      expect(results.filter((r) => !r.ok && r.reason === 'throttled').length).toBeGreaterThanOrEqual(50 - POLICY.freeAttempts);
      // The account is blocked now, even for the right password.
      expect((await authenticateUser({ username: 'erin', password: PASSWORD, ip: '198.51.100.200', now: t }, deps())).ok).toBe(false);
      t += POLICY.maxDelay + 1;
      expect((await authenticateUser({ username: 'erin', password: PASSWORD, ip: '198.51.100.201', now: t }, deps())).ok).toBe(true);
    });

    it('forgets failures a window after the last one', async () => {
      t += 10_000;
      const ip = nextIp();
      for (let i = 0; i < POLICY.freeAttempts - 1; i++) {
        await authenticateUser({ username: 'erin', password: 'wrong', ip, now: t }, deps());
      }
      t += POLICY.window;
      // Four old failures are forgotten, so this is the first of a new window: no block.
      expect(await authenticateUser({ username: 'erin', password: 'wrong', ip, now: t }, deps())).toEqual({ ok: false, reason: 'invalid_credentials' });
      expect((await authenticateUser({ username: 'erin', password: PASSWORD, ip, now: t }, deps())).ok).toBe(true);
    });

    it('upgrades a hash made with older parameters on sign-in, keeping sessions', async () => {
      t += 10_000;
      const old = await hash(PASSWORD, { memoryCost: 4096, timeCost: 1, parallelism: 1 });
      await storage.users.setPasswordHash(erin.userId, old, t);
      const ids = newSessionIds();
      await storage.sessions.createSession({ ...ids, userId: erin.userId, authTime: t, amr: ['pwd'], acr: null, expiresAt: t + 1000, now: t });
      const result = await authenticateUser({ username: 'erin', password: PASSWORD, ip: nextIp(), now: t }, deps());
      expect(result.ok).toBe(true);
      const stored = (await storage.users.findCredentials('erin'))?.passwordHash ?? '';
      expect(stored).not.toBe(old);
      expect(stored.startsWith('$argon2id$v=19$m=19456,t=2,p=1$')).toBe(true);
      expect(await verifyPassword(stored, PASSWORD)).toBe(true);
      expect(await storage.sessions.findSession(ids.sessionHash, t, IDLE)).toBeDefined();
    });
  });
});
