import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodeClient, createUser, type CodeClient, type TestUser } from '../../server/test/helpers/browser-agent.js';
import { postForm, startTestServer, type TestServer } from '../../server/test/helpers/server.js';
import { GatehouseClientError, openSession, SessionStore, type StoredSession } from '../src/index.js';
import { agentLogin, API, confidentialClient, countingFetch, introspect, SCOPE, slowTokenEndpoint } from './helpers/harness.js';

/**
 * Stored CLI sessions where they break: two refreshes at once through a slow token endpoint, a
 * caller giving up mid-refresh, an answer that fails validation after Gatehouse rotated the
 * refresh token, files others can read, a lock someone else keeps, a damaged file, a second
 * login. Gatehouse's refresh grace period is 0 (the default): a refresh token presented twice
 * revokes its whole family, so "the session survives" below is a real check.
 */

const ISSUER = 'https://id.example.test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stored sessions: lock, rotation, permissions, replacement (real Gatehouse)', () => {
  let t: TestServer;
  let user: TestUser;
  let app: CodeClient;
  let api: { clientId: string; clientSecret: string };
  let root: string;
  let n = 0;

  beforeAll(async () => {
    t = await startTestServer();
    api = await confidentialClient(t, { client_name: 'orders api', scope: '' });
    await t.createResource(API, ['orders:read'], { clientId: api.clientId });
    user = await createUser(t, { username: 'alice', name: 'Alice Example', email: 'alice@example.com', emailVerified: true });
    app = await createCodeClient(t, { name: 'Orders CLI', redirectUris: ['http://127.0.0.1/callback'], scope: SCOPE });
    root = mkdtempSync(join(tmpdir(), 'gatehouse-session-hardening-'));
  });

  afterAll(async () => {
    await t?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** A fresh configuration directory holding a session signed in on Gatehouse's real pages. */
  async function signedIn(): Promise<{ configDir: string; file: string; session: StoredSession }> {
    const configDir = join(root, `config-${++n}`);
    const outcome = await agentLogin(t, user, { clientId: app.clientId, configDir, resource: API });
    return { configDir, file: outcome.file, session: outcome.session };
  }

  /** A store whose lock goes stale after 400 ms (30 s in real use), touched every 50 ms. */
  const quickLocks = (dir: string, heartbeatInterval = 50) => new SessionStore(dir, { staleLockAfter: 400, heartbeatInterval, maxLockHold: 10_000 });

  /** The session survived: the stored refresh token still refreshes, and the new access token is active. */
  async function sessionSurvives(configDir: string): Promise<void> {
    const fresh = await (await openSession({ configDir })).refresh();
    expect(await introspect(t, fresh.access_token, api)).toMatchObject({ active: true });
  }

  it('lock: a holder working past the stale threshold keeps the lock by touching it; nobody enters meanwhile', async () => {
    const dir = join(root, 'lock-heartbeat');
    const events: string[] = [];
    const slow = quickLocks(dir).withLock(ISSUER, 'cli', async () => {
      events.push('a in');
      await sleep(1200); // three stale thresholds
      events.push('a out');
    });
    await sleep(50);
    const waiter = quickLocks(dir).withLock(ISSUER, 'cli', async () => {
      events.push('b in');
    });
    await Promise.all([slow, waiter]);
    expect(events).toEqual(['a in', 'a out', 'b in']);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('lock: waiters racing for an abandoned lock enter one at a time; a holder taken over cannot delete its successor’s lock', async () => {
    const dir = join(root, 'lock-takeover');
    mkdirSync(dir, { mode: 0o700 });
    const lock = `${new SessionStore(dir).pathFor(ISSUER, 'cli')}.lock`;
    // A lock whose process died a minute ago, and eight waiters at once.
    writeFileSync(lock, '999999 abandoned\n', { mode: 0o600 });
    const aMinuteAgo = new Date(Date.now() - 60_000);
    utimesSync(lock, aMinuteAgo, aMinuteAgo);
    let inside = 0;
    let most = 0;
    let entered = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        quickLocks(dir).withLock(ISSUER, 'cli', async () => {
          most = Math.max(most, ++inside);
          entered++;
          await sleep(20);
          inside--;
        }),
      ),
    );
    expect({ most, entered }).toEqual({ most: 1, entered: 8 });

    // A holder that stopped touching its lock (a suspended process) is taken over. When it
    // finishes, its release must leave the new holder's lock alone, or a third process would
    // walk in while the second is still inside.
    const order: string[] = [];
    const first = quickLocks(dir, 60_000).withLock(ISSUER, 'cli', async () => {
      order.push('first in');
      await sleep(700);
      order.push('first out');
    });
    await sleep(50);
    const second = quickLocks(dir).withLock(ISSUER, 'cli', async () => {
      order.push('second in');
      await sleep(800);
      order.push('second out');
    });
    await sleep(900); // the first has left and released by now; the second is inside
    const third = quickLocks(dir).withLock(ISSUER, 'cli', async () => {
      order.push('third in');
    });
    await Promise.all([first, second, third]);
    expect(order).toEqual(['first in', 'second in', 'first out', 'second out', 'third in']);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('two sessions refreshing at once through a token endpoint slower than the stale threshold never present one refresh token twice: the session survives', async () => {
    const { configDir, session } = await signedIn();
    // Two openSession() calls share nothing in memory: two processes, as far as the lock knows.
    const slowA = slowTokenEndpoint(1000);
    const slowB = slowTokenEndpoint(1000);
    const a = await openSession({ configDir, store: quickLocks(configDir), fetch: slowA.fetch });
    const b = await openSession({ configDir, store: quickLocks(configDir), fetch: slowB.fetch });
    // A minimum validity no token meets: each refreshes, one after the other, each with the latest refresh token.
    const tokens = await Promise.all([a.getToken({ minValidity: 1e6 }), b.getToken({ minValidity: 1e6 })]);
    const presented = [...slowA.presented, ...slowB.presented];
    expect(presented).toHaveLength(2);
    expect(new Set(presented).size).toBe(2);
    expect(presented).toContain(session.refresh_token);
    for (const token of tokens) expect(await introspect(t, token, api)).toMatchObject({ active: true });
    await sessionSurvives(configDir);
  });

  it('a caller giving up does not cancel the shared refresh: the rotated refresh token is saved, for the others and for later', async () => {
    const { configDir, file, session } = await signedIn();
    const slow = slowTokenEndpoint(400);
    const s = await openSession({ configDir, fetch: slow.fetch });
    const [impatient, patient] = await Promise.allSettled([s.getToken({ minValidity: 1e6, signal: AbortSignal.timeout(50) }), s.getToken({ minValidity: 1e6 })]);
    expect(impatient.status === 'rejected' ? (impatient.reason as GatehouseClientError).code : impatient.status).toBe('aborted');
    expect(patient.status).toBe('fulfilled');
    expect(slow.presented).toEqual([session.refresh_token]);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as StoredSession;
    expect(saved.refresh_token).not.toBe(session.refresh_token);
    expect(patient.status === 'fulfilled' && patient.value).toBe(saved.access_token);

    // The only caller gives up: the refresh still completes and is saved (nothing presented twice).
    const alone = await openSession({ configDir, fetch: slow.fetch });
    await expect(alone.getToken({ minValidity: 1e6, signal: AbortSignal.timeout(50) })).rejects.toMatchObject({ code: 'aborted' });
    await sleep(600);
    const after = JSON.parse(readFileSync(file, 'utf8')) as StoredSession;
    expect(slow.presented).toEqual([session.refresh_token, saved.refresh_token]);
    expect(after.refresh_token).not.toBe(saved.refresh_token);
    await sessionSurvives(configDir);
  });

  it('an answer that fails validation after Gatehouse rotated the refresh token: the new refresh token is kept, and the error carries no token', async () => {
    const { configDir, file, session } = await signedIn();
    // The session now expects ID tokens signed with PS512; Gatehouse signs them RS256. The
    // refresh answer is refused when its ID token is checked — after the server rotated.
    writeFileSync(file, JSON.stringify({ ...session, id_token_signing_alg_values_supported: ['PS512'] }), { mode: 0o600 });
    const watch = slowTokenEndpoint(0);
    const s = await openSession({ configDir, fetch: watch.fetch });
    const err = await s.refresh().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatehouseClientError);
    expect((err as GatehouseClientError).code).toBe('invalid_response');

    const answer = (await watch.answered[0]?.json()) as { access_token: string; refresh_token: string; id_token: string };
    const saved = JSON.parse(readFileSync(file, 'utf8')) as StoredSession;
    expect(saved.refresh_token).toBe(answer.refresh_token);
    expect(saved.refresh_token).not.toBe(session.refresh_token);

    // console.error(err), a logger walking the cause chain: no token of the answer, nor the one sent.
    const shown = [inspect(err, { depth: Infinity, showHidden: true }), JSON.stringify(err), (err as Error).stack].join('\n');
    for (const secret of [answer.access_token, answer.refresh_token, answer.id_token, session.refresh_token ?? '']) expect(shown).not.toContain(secret);

    writeFileSync(file, JSON.stringify({ ...saved, id_token_signing_alg_values_supported: ['RS256'] }), { mode: 0o600 });
    await sessionSurvives(configDir);
  });

  it('a refused refresh (invalid_grant) and its inspection carry no token either', async () => {
    const { configDir, session } = await signedIn();
    await postForm(`${t.issuer}/revoke`, { token: session.refresh_token ?? '', client_id: app.clientId });
    const err = await (await openSession({ configDir })).refresh().catch((e: unknown) => e);
    expect((err as GatehouseClientError).code).toBe('login_required');
    const shown = inspect(err, { depth: Infinity, showHidden: true });
    for (const secret of [session.refresh_token ?? '', session.access_token]) expect(shown).not.toContain(secret);
  });

  it('refuses, like ssh, a directory others can write to, a file others can read, a file of another user; login refuses before signing in', async () => {
    const { configDir, file } = await signedIn();
    chmodSync(configDir, 0o777);
    await expect(openSession({ configDir })).rejects.toMatchObject({ code: 'insecure_permissions', message: expect.stringContaining('chmod 700') as unknown });
    const counter = countingFetch();
    await expect(agentLogin(t, user, { clientId: app.clientId, configDir, fetch: counter.fetch })).rejects.toMatchObject({ code: 'insecure_permissions' });
    expect(counter.seen).toEqual([]);
    chmodSync(configDir, 0o700);

    chmodSync(file, 0o644);
    await expect(openSession({ configDir })).rejects.toMatchObject({ code: 'insecure_permissions', message: expect.stringContaining('chmod 600') as unknown });
    await expect(openSession({ configDir, issuer: t.issuer, clientId: app.clientId })).rejects.toMatchObject({ code: 'insecure_permissions' });
    chmodSync(file, 0o600);
    if (process.getuid?.() === 0) {
      chownSync(file, 4242, 4242);
      await expect(openSession({ configDir })).rejects.toMatchObject({ code: 'insecure_permissions', message: expect.stringContaining('belongs to another user') as unknown });
      chownSync(file, 0, 0);
    }
    await expect(openSession({ configDir })).resolves.toMatchObject({ clientId: app.clientId });
  });

  it('logging in again waits for the lock, replaces the session, revokes the replaced one, and clears old temporary files', async () => {
    const { configDir, session: first } = await signedIn();
    const store = new SessionStore(configDir);
    const base = store.pathFor(t.issuer, app.clientId);
    // Leftovers of crashes (two minutes old) go; a temporary file being written right now stays.
    const leftovers = [`${base}.0123456789ab.tmp`, `${base}.lock.ba9876543210.tmp`];
    const inProgress = `${base}.aaaaaaaaaaaa.tmp`;
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    for (const path of [...leftovers, inProgress]) writeFileSync(path, 'x', { mode: 0o600 });
    for (const path of leftovers) utimesSync(path, twoMinutesAgo, twoMinutesAgo);

    // Another process is refreshing the old session: the new login must not write under it.
    let untouchedWhileHeld: boolean | undefined;
    const holder = store.withLock(t.issuer, app.clientId, async () => {
      await sleep(1000);
      untouchedWhileHeld = (await store.read(t.issuer, app.clientId))?.refresh_token === first.refresh_token;
    });
    const second = await agentLogin(t, user, { clientId: app.clientId, configDir, resource: API });
    await holder;
    expect(untouchedWhileHeld).toBe(true);

    expect(second.replaced?.revoked.map((r) => ({ hint: r.token_type_hint, ok: r.error === undefined }))).toEqual([
      { hint: 'refresh_token', ok: true },
      { hint: 'access_token', ok: true },
    ]);
    const refused = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: first.refresh_token ?? '', client_id: app.clientId });
    expect(refused.body).toMatchObject({ error: 'invalid_grant' });
    expect(await introspect(t, first.access_token, api)).toEqual({ active: false });
    expect(await introspect(t, second.session.access_token, api)).toMatchObject({ active: true });
    await sessionSurvives(configDir);
    expect(readdirSync(configDir).sort()).toEqual([basename(base), basename(inProgress)].sort());
  });

  it('logout deletes the file and revokes even when another process keeps the lock, or the file was damaged since it was opened', async () => {
    const held = await signedIn();
    const s = await openSession({ configDir: held.configDir, store: new SessionStore(held.configDir, { lockTimeout: 300 }) });
    let release!: () => void;
    const holding = new SessionStore(held.configDir).withLock(t.issuer, app.clientId, () => new Promise<void>((resolve) => (release = resolve)));
    await sleep(50);
    const result = await s.logout();
    release();
    await holding;
    expect(result).toMatchObject({ deleted: true, warnings: [expect.stringContaining('another process held the session lock') as unknown] });
    expect(result.revoked.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(await introspect(t, held.session.access_token, api)).toEqual({ active: false });
    expect(readdirSync(held.configDir)).toEqual([]);

    const damaged = await signedIn();
    const opened = await openSession({ configDir: damaged.configDir });
    writeFileSync(damaged.file, '{"version": 1, "issuer": "half a fi', { mode: 0o600 });
    const outcome = await opened.logout();
    expect(outcome).toMatchObject({ deleted: true, warnings: [expect.stringContaining('is damaged') as unknown] });
    expect(outcome.revoked.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(await introspect(t, damaged.session.access_token, api)).toEqual({ active: false });
    expect(readdirSync(damaged.configDir)).toEqual([]);
  });
});
