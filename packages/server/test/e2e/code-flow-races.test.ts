import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, createCodeClient, createUser, pkcePair, type CodeClient } from '../helpers/browser-agent.js';
import { basicAuth, DIALECTS, postForm, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';

const CONCURRENCY = 20;

type TokenBody = { access_token?: string; refresh_token?: string; error?: string };

/**
 * Many requests racing for one code or one refresh token, over HTTP, on each database: the
 * database arbitrates, exactly as it must when the requests reach different instances.
 */
describe.each(DIALECTS)('code flow races on %s', (dialect: Dialect) => {
  let t: TestServer;
  let graceful: TestServer;
  let users = 0;

  beforeAll(async () => {
    const config = { introspection: { restrictToOwnResources: false }, login: { freeAttempts: 100 } };
    t = await startTestServer({ dialect, config });
    await t.createResource('https://orders.example.com', ['orders:read', 'orders:write']);
    graceful = await startTestServer({ dialect, config: { ...config, authorization: { refreshTokenGracePeriod: '60s' } } });
  });

  afterAll(async () => {
    await Promise.all([t.close(), graceful.close()]);
  });

  async function codeFor(server: TestServer, client: CodeClient): Promise<{ code: string; verifier: string }> {
    users += 1;
    const user = await createUser(server, { username: `racer${users}` });
    const { verifier, challenge } = await pkcePair();
    const out = await new BrowserAgent(server.issuer).authorize(
      { response_type: 'code', client_id: client.clientId, redirect_uri: client.redirectUri, scope: 'openid offline_access', state: 's', code_challenge: challenge, code_challenge_method: 'S256' },
      { credentials: user },
    );
    if (out.code === undefined) throw new Error(`no code: ${out.error ?? out.response.status}`);
    return { code: out.code, verifier };
  }

  const token = (server: TestServer, client: CodeClient, form: Record<string, string>) => postForm(`${server.issuer}/token`, { client_id: client.clientId, ...form });

  async function tokensFor(server: TestServer, client: CodeClient): Promise<{ accessToken: string; refreshToken: string }> {
    const { code, verifier } = await codeFor(server, client);
    const res = await token(server, client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier });
    expect(res.status).toBe(200);
    const body = res.body as TokenBody;
    if (body.access_token === undefined || body.refresh_token === undefined) throw new Error('no tokens');
    return { accessToken: body.access_token, refreshToken: body.refresh_token };
  }

  async function introspector(server: TestServer): Promise<string> {
    const c = await server.createClient({ scope: 'introspect' });
    return basicAuth(c.clientId, c.clientSecret ?? '');
  }

  async function isActive(server: TestServer, auth: string, accessToken: string): Promise<boolean> {
    const res = await postForm(`${server.issuer}/introspect`, { token: accessToken }, { authorization: auth });
    expect(res.status).toBe(200);
    return (res.body as { active: boolean }).active;
  }

  /** Refresh tokens of the family that would still be honoured: not rotated, not revoked, family live. */
  async function liveRefreshTokens(server: TestServer, familyId: string): Promise<number> {
    const rows = await server.server.storage.handle.db
      .selectFrom('refresh_tokens')
      .innerJoin('token_families', 'token_families.family_id', 'refresh_tokens.family_id')
      .select('refresh_tokens.token_hash')
      .where('refresh_tokens.family_id', '=', familyId)
      .where('refresh_tokens.rotated_at', 'is', null)
      .where('refresh_tokens.revoked', '=', 0)
      .where('token_families.revoked_at', 'is', null)
      .execute();
    return rows.length;
  }

  const statuses = (results: Array<{ status: number }>) => results.map((r) => r.status).sort();

  it(`${CONCURRENCY} concurrent redemptions of one code: exactly one 200, the others invalid_grant, no 5xx`, async () => {
    const client = await createCodeClient(t, { scope: 'openid offline_access' });
    const { code, verifier } = await codeFor(t, client);
    const results = await Promise.all(
      Array.from({ length: CONCURRENCY }, () => token(t, client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier })),
    );
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expect({ status: r.status, error: (r.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    // The code is spent for good.
    const again = await token(t, client, { grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier });
    expect({ status: again.status, error: (again.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it(`${CONCURRENCY} concurrent refreshes of one refresh token: at most one 200, then no live lineage (grace 0)`, async () => {
    const client = await createCodeClient(t, { scope: 'openid offline_access' });
    const auth = await introspector(t);
    const { accessToken, refreshToken } = await tokensFor(t, client);
    const familyId = decodeJwt(accessToken).fid as string;
    const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => token(t, client, { grant_type: 'refresh_token', refresh_token: refreshToken })));
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeLessThanOrEqual(1);
    for (const r of results.filter((x) => x.status !== 200)) expect({ status: r.status, error: (r.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect(statuses(results).every((s) => s === 200 || s === 400)).toBe(true);

    // Reuse was seen, so the family is revoked: no refresh token of it works, nor its access tokens.
    expect(await liveRefreshTokens(t, familyId)).toBe(0);
    const issued = ok.map((r) => (r.body as TokenBody).refresh_token).filter((v): v is string => v !== undefined);
    for (const rt of [refreshToken, ...issued]) {
      const res = await token(t, client, { grant_type: 'refresh_token', refresh_token: rt });
      expect({ status: res.status, error: (res.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    }
    expect(await isActive(t, auth, accessToken)).toBe(false);
    for (const r of ok) expect(await isActive(t, auth, (r.body as TokenBody).access_token ?? '')).toBe(false);
  });

  it.each([
    ['after a first consent', true],
    ['as the first consent', false],
  ])('concurrent consents of one user to one client, %s, widening the grant differently: the grant holds every scope', async (_what, prior) => {
    const scopes = ['profile', 'email', 'offline_access', 'orders:read', 'orders:write'];
    const client = await createCodeClient(t, { scope: `openid ${scopes.join(' ')}` });
    users += 1;
    const user = await createUser(t, { username: `racer${users}` });
    const agent = new BrowserAgent(t.issuer);
    const params = async (scope: string) => ({
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: client.redirectUri,
      scope,
      code_challenge: (await pkcePair()).challenge,
      code_challenge_method: 'S256',
    });
    if (prior) {
      expect((await agent.authorize(await params('openid'), { credentials: user })).code).toBeDefined();
    } else {
      // Signed in, no grant yet.
      const login = await agent.startAuthorization(await params('openid'));
      expect((await agent.submitLogin(login, user)).text).toContain('Allow access');
    }
    // Several consent pages open at once, approved at once.
    const pages = await Promise.all(scopes.map(async (s) => agent.startAuthorization(await params(`openid ${s}`))));
    for (const page of pages) expect(page.text).toContain('Allow access');
    const results = await Promise.all(pages.map((page) => agent.submitConsent(page, 'approve')));
    for (const r of results) {
      expect(r.status).toBe(303);
      expect(r.location?.searchParams.get('code')).toBeTruthy();
    }
    const grants = await t.server.storage.grants.listGrants({ userId: user.user.userId });
    expect(grants).toHaveLength(1);
    expect(new Set(grants[0]?.scope)).toEqual(new Set(['openid', ...scopes]));
  });

  it(`with a grace period, ${CONCURRENCY} concurrent retries of a rotated token leave at most one live refresh token`, async () => {
    const client = await createCodeClient(graceful, { scope: 'openid offline_access' });
    const { accessToken, refreshToken: rt0 } = await tokensFor(graceful, client);
    const familyId = decodeJwt(accessToken).fid as string;
    const first = await token(graceful, client, { grant_type: 'refresh_token', refresh_token: rt0 });
    expect(first.status).toBe(200);
    const rt1 = (first.body as TokenBody).refresh_token ?? '';
    expect(await liveRefreshTokens(graceful, familyId)).toBe(1);

    expect(rt1).not.toBe(rt0);
    // Retries of the rotated rt0 (inside the grace window) race each other: each is answered, and
    // each replaces the family's one live token.
    const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => token(graceful, client, { grant_type: 'refresh_token', refresh_token: rt0 })));
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    expect(statuses(results).every((s) => s === 200 || s === 400)).toBe(true);
    expect(results.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    // Never two live lineages.
    expect(await liveRefreshTokens(graceful, familyId)).toBeLessThanOrEqual(1);
  });

  it('with a grace period, grace retries racing a rotation of the live token leave at most one live refresh token', async () => {
    const client = await createCodeClient(graceful, { scope: 'openid offline_access' });
    const { accessToken, refreshToken: rt0 } = await tokensFor(graceful, client);
    const familyId = decodeJwt(accessToken).fid as string;
    const first = await token(graceful, client, { grant_type: 'refresh_token', refresh_token: rt0 });
    const rt1 = (first.body as TokenBody).refresh_token ?? '';
    const half = CONCURRENCY / 2;
    const results = await Promise.all([
      ...Array.from({ length: half }, () => token(graceful, client, { grant_type: 'refresh_token', refresh_token: rt0 })),
      ...Array.from({ length: half }, () => token(graceful, client, { grant_type: 'refresh_token', refresh_token: rt1 })),
    ]);
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    expect(statuses(results).every((s) => s === 200 || s === 400)).toBe(true);
    expect(await liveRefreshTokens(graceful, familyId)).toBeLessThanOrEqual(1);
  });
});
