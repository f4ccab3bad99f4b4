import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  BrowserAgent,
  createCodeClient,
  createUser,
  pageKind,
  pkcePair,
  readForm,
  readForms,
  type AgentResponse,
  type AuthorizationOutcome,
  type CodeClient,
  type TestUser,
} from '../helpers/browser-agent.js';
import { basicAuth, DIALECTS, postForm, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';

const API = 'https://orders.example.com';
const OTHER_API = 'https://billing.example.com';
const CB = 'https://client.example.com/cb';
const LOGOUT_CB = 'https://client.example.com/signed-out';
const ALL_SCOPES = 'openid profile email offline_access orders:read orders:write billing';
/** Spaces, non-ASCII, and every character with a meaning in a URL or in HTML. */
const TRICKY_STATE = `state with spaces ü 日本語 ☃ &=?#%+/ "quoted" <b>'x'</b> %20 +`;
const insecure = { [oauth.allowInsecureRequests]: true } as const;

type Params = Record<string, string>;

interface Started {
  params: Params;
  verifier: string;
  nonce: string | undefined;
  state: string | undefined;
}

interface Authorized extends Started {
  out: AuthorizationOutcome;
}

const errorOf = (body: unknown) => (body as { error?: string } | undefined)?.error;
const atHash = (token: string) => createHash('sha256').update(token, 'ascii').digest().subarray(0, 16).toString('base64url');
const scopeSet = (scope: string | undefined) => new Set((scope ?? '').split(' ').filter((s) => s !== ''));

function secretOf(c: { clientSecret?: string }): string {
  if (c.clientSecret === undefined) throw new Error('no secret');
  return c.clientSecret;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is missing`);
  return value;
}

/** The headers every server-rendered page carries. */
function expectPageHeaders(res: AgentResponse): void {
  expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
  const csp = res.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("default-src 'none'");
  expect(res.headers.get('x-frame-options')).toBe('DENY');
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
}

/** An error page: HTML, the given status, and never a redirect. */
function expectErrorPage(res: AgentResponse, status = 400): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('location')).toBeNull();
  expect(pageKind(res.text)).toBe('error');
  expectPageHeaders(res);
}

describe.each(DIALECTS)('authorization code flow over HTTP on %s', (dialect: Dialect) => {
  let t: TestServer;
  let as: oauth.AuthorizationServer;
  let jwks: ReturnType<typeof createRemoteJWKSet>;
  /** Public client (PKCE only), with a post-logout redirect URI. */
  let pub: CodeClient;
  /** Confidential client (client_secret_basic). */
  let conf: CodeClient;
  let introspector: string;
  let machine: { clientId: string; basic: string };
  let userCount = 0;

  beforeAll(async () => {
    t = await startTestServer({
      dialect,
      config: {
        authorization: { refreshTokenTtl: '1h', refreshTokenIdleTtl: '10m' },
        // Throttling has its own server below; here failures must never block 127.0.0.1.
        login: { freeAttempts: 100 },
        // One introspecting client checks every token in these tests, whoever it was issued to.
        introspection: { restrictToOwnResources: false },
      },
    });
    await t.createResource(API, ['orders:read', 'orders:write']);
    await t.createResource(OTHER_API, ['billing']);
    pub = await createCodeClient(t, { name: 'Public App', scope: ALL_SCOPES, postLogoutRedirectUris: [LOGOUT_CB] });
    conf = await createCodeClient(t, { name: 'Confidential App', confidential: true, scope: ALL_SCOPES });
    const i = await t.createClient({ client_name: 'introspector', scope: 'orders:read' });
    introspector = basicAuth(i.clientId, secretOf(i));
    const m = await t.createClient({ client_name: 'machine', scope: 'openid profile' });
    machine = { clientId: m.clientId, basic: basicAuth(m.clientId, secretOf(m)) };
    as = await oauth.processDiscoveryResponse(new URL(t.issuer), await oauth.discoveryRequest(new URL(t.issuer), insecure));
    jwks = createRemoteJWKSet(new URL(`${t.issuer}/jwks`));
  });

  afterAll(async () => {
    await t.close();
  });

  const newUser = (extra: { name?: string; email?: string } = {}): Promise<TestUser> => {
    userCount += 1;
    return createUser(t, { username: `user${userCount}`, name: `User ${userCount}`, email: `user${userCount}@example.com`, emailVerified: true, ...extra });
  };

  /** An authorization request for a client: PKCE S256, random state and nonce; `extra` overrides (undefined removes). */
  async function request(c: CodeClient, extra: Record<string, string | undefined> = {}): Promise<Started> {
    const { verifier, challenge } = await pkcePair();
    const params: Params = {
      response_type: 'code',
      client_id: c.clientId,
      redirect_uri: c.redirectUri,
      scope: 'openid profile email offline_access',
      state: oauth.generateRandomState(),
      nonce: oauth.generateRandomNonce(),
      code_challenge: challenge,
      code_challenge_method: 'S256',
    };
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined) delete params[k];
      else params[k] = v;
    }
    return { params, verifier, nonce: params.nonce, state: params.state };
  }

  async function authorizeAs(agent: BrowserAgent, c: CodeClient, user: TestUser | undefined, extra: Record<string, string | undefined> = {}, consent: 'approve' | 'deny' = 'approve'): Promise<Authorized> {
    const started = await request(c, extra);
    const out = await agent.authorize(started.params, { ...(user ? { credentials: user } : {}), consent });
    return { ...started, out };
  }

  /** Redeems with oauth4webapi: validates state and iss (RFC 9207), then the token response and ID token (nonce, aud, iss). */
  async function redeem(c: CodeClient, started: Authorized, options: { maxAge?: number } = {}): Promise<oauth.TokenEndpointResponse> {
    const callback = oauth.validateAuthResponse(as, c.client, started.out.params, started.state ?? oauth.expectNoState);
    const response = await oauth.authorizationCodeGrantRequest(as, c.client, c.auth, callback, c.redirectUri, started.verifier, insecure);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('pragma')).toBe('no-cache');
    const openid = (started.params.scope ?? '').split(' ').includes('openid');
    return oauth.processAuthorizationCodeResponse(as, c.client, response, openid ? { expectedNonce: started.nonce ?? oauth.expectNoNonce, requireIdToken: true, ...options } : {});
  }

  /** A fresh user signs in, consents, and the code is redeemed. */
  async function tokens(c: CodeClient, extra: Record<string, string | undefined> = {}, user?: TestUser) {
    const agent = new BrowserAgent(t.issuer);
    const u = user ?? (await newUser());
    const started = await authorizeAs(agent, c, u, extra);
    expect(started.out.error).toBeUndefined();
    const result = await redeem(c, started);
    return { agent, user: u, started, result };
  }

  /** A fresh user signs in and consents; the code is returned unredeemed. */
  async function freshCode(c: CodeClient = pub, extra: Record<string, string | undefined> = {}) {
    const agent = new BrowserAgent(t.issuer);
    const user = await newUser();
    const started = await authorizeAs(agent, c, user, extra);
    return { ...started, agent, user, code: need(started.out.code, 'code') };
  }

  function tokenRequest(c: CodeClient, form: Params) {
    return c.basic === undefined
      ? postForm(`${t.issuer}/token`, { client_id: c.clientId, ...form })
      : postForm(`${t.issuer}/token`, form, { authorization: c.basic });
  }

  const redeemRaw = (c: CodeClient, code: string, verifier: string, extra: Params = {}) =>
    tokenRequest(c, { grant_type: 'authorization_code', code, redirect_uri: c.redirectUri, code_verifier: verifier, ...extra });

  const refreshRaw = (c: CodeClient, refreshToken: string, extra: Params = {}) => tokenRequest(c, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });

  function expectTokenError(res: { status: number; headers: Headers; body: unknown }, error: string, status = 400): void {
    expect({ status: res.status, error: errorOf(res.body) }).toEqual({ status, error });
    expect(res.headers.get('cache-control')).toBe('no-store');
  }

  function expectTokens(res: { status: number; headers: Headers; body: unknown }) {
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    return res.body as { access_token: string; refresh_token?: string; id_token?: string; scope?: string; token_type: string; expires_in: number };
  }

  async function isActive(token: string): Promise<boolean> {
    const res = await postForm(`${t.issuer}/introspect`, { token }, { authorization: introspector });
    expect(res.status).toBe(200);
    return (res.body as { active: boolean }).active;
  }

  async function userinfo(token: string): Promise<{ status: number; body: unknown; challenge: string | null }> {
    const res = await fetch(`${t.issuer}/userinfo`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text), challenge: res.headers.get('www-authenticate') };
  }

  const verifyAccessToken = (token: string, audience: string) =>
    jwtVerify(token, jwks, { issuer: t.issuer, audience, typ: 'at+jwt', algorithms: ['ES256'], currentDate: new Date(t.clock.now() * 1000) });

  const verifyIdToken = (token: string, clientId: string) =>
    jwtVerify(token, jwks, { issuer: t.issuer, audience: clientId, algorithms: ['RS256'], currentDate: new Date(t.clock.now() * 1000) });

  /** Runs `fn` with the test clock moved; puts it back afterwards. */
  async function withClock<T>(fn: (advance: (seconds: number) => void) => Promise<T>): Promise<T> {
    const saved = t.clock.current;
    try {
      return await fn((seconds) => t.clock.advance(seconds));
    } finally {
      t.clock.current = saved;
    }
  }

  /** An error returned to the client's redirect URI with state and iss. */
  function expectRedirectError(out: AuthorizationOutcome, error: string, state: string | undefined, target = CB): void {
    expect(out.kind).toBe('redirect');
    expect(out.response.status).toBe(303);
    expect(out.target).toBe(target);
    expect(out.error).toBe(error);
    expect(out.code).toBeUndefined();
    expect(out.state).toBe(state);
    expect(out.iss).toBe(t.issuer);
  }

  describe('happy paths', () => {
    it('public client: login page, consent page, then a code with state byte for byte and iss; tokens and ID token check out', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser({ name: 'Alice Example', email: 'alice@example.com' });
      const started = await authorizeAs(agent, pub, user, { scope: 'openid profile email offline_access orders:read', state: TRICKY_STATE });
      const { out } = started;
      expect(out.pages).toEqual(['login', 'consent']);
      expect(out.kind).toBe('redirect');
      expect(out.response.status).toBe(303);
      expect(out.response.headers.get('cache-control')).toBe('no-store');
      expect(out.target).toBe(CB);
      expect(out.state).toBe(TRICKY_STATE);
      expect(out.iss).toBe(t.issuer);
      expect(out.code).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect([...out.params.keys()].sort()).toEqual(['code', 'iss', 'state']);

      const result = await redeem(pub, started);
      expect(result.token_type).toBe('bearer');
      expect(scopeSet(result.scope)).toEqual(new Set(['openid', 'profile', 'email', 'orders:read']));
      expect(result.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const at = await verifyAccessToken(result.access_token, API);
      expect(at.protectedHeader.typ).toBe('at+jwt');
      expect(at.payload.sub).toBe(user.user.userId);
      expect(at.payload.client_id).toBe(pub.clientId);
      expect(at.payload.aud).toEqual([API, t.issuer]);
      expect(typeof at.payload.fid).toBe('string');
      expect(scopeSet(at.payload.scope as string)).toEqual(new Set(['openid', 'profile', 'email', 'orders:read']));

      const idToken = need(result.id_token, 'id_token');
      const id = await verifyIdToken(idToken, pub.clientId);
      expect(id.protectedHeader.alg).toBe('RS256');
      expect(id.payload.sub).toBe(user.user.userId);
      expect(id.payload.aud).toBe(pub.clientId);
      expect(id.payload.nonce).toBe(started.nonce);
      expect(id.payload.auth_time).toBe(t.clock.now());
      expect(typeof id.payload.sid).toBe('string');
      expect(id.payload.at_hash).toBe(atHash(result.access_token));
      const claims = oauth.getValidatedIdTokenClaims(result);
      expect(claims?.nonce).toBe(started.nonce);

      const info = await oauth.processUserInfoResponse(as, pub.client, user.user.userId, await oauth.userInfoRequest(as, pub.client, result.access_token, insecure));
      expect(info).toEqual({ sub: user.user.userId, name: 'Alice Example', preferred_username: user.username, email: 'alice@example.com', email_verified: true });
      expect(await isActive(result.access_token)).toBe(true);
    });

    it('a client configured to always receive one gets a refresh token without offline_access', async () => {
      const always = await createCodeClient(t, { name: 'Always Refresh', confidential: true, alwaysIssueRefreshToken: true, scope: 'openid' });
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const result = await redeem(always, await authorizeAs(agent, always, user, { scope: 'openid' }));
      expect(typeof result.refresh_token).toBe('string');
      expectTokens(await refreshRaw(always, need(result.refresh_token, 'refresh_token')));
    });

    it('confidential client (client_secret_basic): no refresh token without offline_access; userinfo releases claims by scope', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const first = await authorizeAs(agent, conf, user, { scope: 'openid email' });
      expect(first.out.pages).toEqual(['login', 'consent']);
      const result = await redeem(conf, first);
      expect(result.refresh_token).toBeUndefined();
      expect(result.scope).toBe('openid email');
      const at = await verifyAccessToken(result.access_token, t.issuer);
      expect(at.payload.aud).toBe(t.issuer);
      expect((await userinfo(result.access_token)).body).toEqual({ sub: user.user.userId, email: user.user.email, email_verified: true });

      // openid alone: the subject only. A narrower request needs no new consent.
      const second = await authorizeAs(agent, conf, user, { scope: 'openid' });
      expect(second.out.pages).toEqual([]);
      const onlyOpenId = await redeem(conf, second);
      expect((await userinfo(onlyOpenId.access_token)).body).toEqual({ sub: user.user.userId });

      // The confidential client must authenticate: the same flow without a secret is invalid_client.
      const third = await authorizeAs(agent, conf, user, { scope: 'openid' });
      const res = await postForm(`${t.issuer}/token`, { grant_type: 'authorization_code', client_id: conf.clientId, code: need(third.out.code, 'code'), redirect_uri: CB, code_verifier: third.verifier });
      expectTokenError(res, 'invalid_client', 401);
    });

    it('userinfo refuses a client-credentials token, tokens without openid, and requests without a token', async () => {
      const cc = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', scope: 'openid profile' }, { authorization: machine.basic });
      const ccToken = expectTokens(cc).access_token;
      expect(decodeJwt(ccToken).aud).toBe(t.issuer);
      const fromMachine = await userinfo(ccToken);
      expect(fromMachine.status).toBe(401);
      expect(fromMachine.challenge).toContain('error="invalid_token"');

      const profileOnly = (await tokens(pub, { scope: 'profile' })).result;
      const noOpenId = await userinfo(profileOnly.access_token);
      expect(noOpenId.status).toBe(403);
      expect(noOpenId.challenge).toContain('error="insufficient_scope"');

      const apiOnly = (await tokens(pub, { scope: 'orders:read' })).result;
      expect(decodeJwt(apiOnly.access_token).aud).toBe(API);
      const forApi = await userinfo(apiOnly.access_token);
      expect(forApi.status).toBe(401);
      expect(forApi.challenge).toContain('error="invalid_token"');

      const none = await fetch(`${t.issuer}/userinfo`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    });

    it('a second authorization for the same scopes skips consent (grant reused); prompt=consent and a wider scope ask again', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const first = await authorizeAs(agent, pub, user, { scope: 'openid profile' });
      expect(first.out.pages).toEqual(['login', 'consent']);
      const [grant] = await t.server.storage.grants.listGrants({ userId: user.user.userId });
      expect(grant?.scope).toEqual(['openid', 'profile']);

      const second = await authorizeAs(agent, pub, user, { scope: 'openid profile' });
      expect(second.out.pages).toEqual([]);
      expect(second.out.code).toBeDefined();
      await redeem(pub, second);
      const after = await t.server.storage.grants.listGrants({ userId: user.user.userId });
      expect(after.map((g) => g.grantId)).toEqual([grant?.grantId]);

      const forced = await authorizeAs(agent, pub, user, { scope: 'openid profile', prompt: 'consent' });
      expect(forced.out.pages).toEqual(['consent']);
      expect(forced.out.code).toBeDefined();

      const wider = await authorizeAs(agent, pub, user, { scope: 'openid profile email' });
      expect(wider.out.pages).toEqual(['consent']);
      await redeem(pub, wider);
      const widened = await t.server.storage.grants.listGrants({ userId: user.user.userId });
      expect(widened).toHaveLength(1);
      expect(new Set(widened[0]?.scope)).toEqual(new Set(['openid', 'profile', 'email']));
    });

    it('a first-party client is not asked for consent', async () => {
      const fp = await createCodeClient(t, { name: 'First Party', firstParty: true });
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      // Without state and nonce: the response carries no state, the ID token no nonce.
      const started = await authorizeAs(agent, fp, user, { scope: 'openid profile', state: undefined, nonce: undefined });
      expect(started.out.pages).toEqual(['login']);
      expect(started.out.params.has('state')).toBe(false);
      const result = await redeem(fp, started);
      expect(oauth.getValidatedIdTokenClaims(result)?.nonce).toBeUndefined();
      expect(await t.server.storage.grants.findGrant(user.user.userId, fp.clientId)).toBeDefined();
    });

    it('consent denied: access_denied at the redirect URI with state and iss, nothing recorded', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const started = await authorizeAs(agent, pub, user, { scope: 'openid', state: TRICKY_STATE }, 'deny');
      expect(started.out.pages).toEqual(['login', 'consent']);
      expectRedirectError(started.out, 'access_denied', TRICKY_STATE);
      expect(await t.server.storage.grants.findGrant(user.user.userId, pub.clientId)).toBeUndefined();
    });

    it('prompt=none: a code with a session and consent; login_required without a session; consent_required without consent', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      await authorizeAs(agent, pub, user, { scope: 'openid profile' });

      const silent = await authorizeAs(agent, pub, undefined, { scope: 'openid profile', prompt: 'none' });
      expect(silent.out.pages).toEqual([]);
      expect(silent.out.response.url.pathname).toBe('/authorize');
      const result = await redeem(pub, silent);
      expect(oauth.getValidatedIdTokenClaims(result)?.sub).toBe(user.user.userId);

      const stranger = await authorizeAs(new BrowserAgent(t.issuer), pub, undefined, { scope: 'openid', prompt: 'none' });
      expectRedirectError(stranger.out, 'login_required', stranger.state);
      expect(stranger.out.response.url.pathname).toBe('/authorize');

      const notConsented = await authorizeAs(agent, conf, undefined, { scope: 'openid', prompt: 'none' });
      expectRedirectError(notConsented.out, 'consent_required', notConsented.state);

      // prompt=none with another value is refused (OIDC Core §3.1.2.1).
      const mixed = await authorizeAs(agent, pub, undefined, { scope: 'openid', prompt: 'none login' });
      expectRedirectError(mixed.out, 'invalid_request', mixed.state);
    });

    it('prompt=login shows the login page although a session exists, and the new sign-in is the ID token auth_time', async () => {
      const user = await newUser();
      const first = await tokens(pub, { scope: 'openid' }, user);
      const firstClaims = oauth.getValidatedIdTokenClaims(first.result);
      const oldSession = need(first.agent.cookies.get('gh_session'), 'session cookie');
      await withClock(async (advance) => {
        advance(5);
        const again = await authorizeAs(first.agent, pub, user, { scope: 'openid', prompt: 'login' });
        expect(again.out.pages).toEqual(['login']);
        const result = await redeem(pub, again);
        const claims = oauth.getValidatedIdTokenClaims(result);
        expect(claims?.auth_time).toBe((firstClaims?.auth_time ?? 0) + 5);
        expect(claims?.sid).not.toBe(firstClaims?.sid);
      });
      // Signing in again replaced the session: the old cookie value no longer signs anyone in.
      expect(first.agent.cookies.get('gh_session')).not.toBe(oldSession);
      const replay = new BrowserAgent(t.issuer);
      replay.cookies.set('gh_session', oldSession);
      const replayed = await authorizeAs(replay, pub, undefined, { scope: 'openid', prompt: 'none' });
      expectRedirectError(replayed.out, 'login_required', replayed.state);
    });

    it('max_age=0 forces the login page; a recent enough sign-in satisfies a larger max_age', async () => {
      const { agent, user } = await tokens(pub, { scope: 'openid' });
      const fresh = await authorizeAs(agent, pub, user, { scope: 'openid', max_age: '0' });
      expect(fresh.out.pages).toEqual(['login']);
      const result = await redeem(pub, fresh, { maxAge: 0 });
      expect(oauth.getValidatedIdTokenClaims(result)?.auth_time).toBe(t.clock.now());

      const silent = await authorizeAs(agent, pub, undefined, { scope: 'openid', max_age: '0', prompt: 'none' });
      expectRedirectError(silent.out, 'login_required', silent.state);

      const recent = await authorizeAs(agent, pub, user, { scope: 'openid', max_age: '3600' });
      expect(recent.out.pages).toEqual([]);
      await redeem(pub, recent, { maxAge: 3600 });

      await withClock(async (advance) => {
        advance(61);
        const stale = await authorizeAs(agent, pub, user, { scope: 'openid', max_age: '60' });
        expect(stale.out.pages).toEqual(['login']);
        expect(stale.out.code).toBeDefined();
      });
    });

    it('response_mode=form_post returns an HTML form posting the response, with every value escaped', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const state = `"><script>alert(1)</script>&amp;${TRICKY_STATE}`;
      const started = await authorizeAs(agent, pub, user, { scope: 'openid', response_mode: 'form_post', state });
      const { out } = started;
      expect(out.kind).toBe('form_post');
      expect(out.response.status).toBe(200);
      expectPageHeaders(out.response);
      expect(out.response.headers.get('content-security-policy')).toContain("form-action 'self' https://client.example.com");
      expect(out.response.text).not.toContain('<script>alert(1)</script>');
      expect(out.response.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;');
      expect(out.target).toBe(CB);
      expect(out.state).toBe(state);
      expect(out.iss).toBe(t.issuer);
      const result = await redeem(pub, started);
      expect(result.id_token).toBeDefined();
    });

    it('response_mode=form_post also carries errors (prompt=none without a session)', async () => {
      const started = await request(pub, { scope: 'openid', response_mode: 'form_post', prompt: 'none', state: TRICKY_STATE });
      const out = await new BrowserAgent(t.issuer).authorize(started.params);
      expect(out.kind).toBe('form_post');
      expectPageHeaders(out.response);
      expect(out.target).toBe(CB);
      expect(out.error).toBe('login_required');
      expect(out.state).toBe(TRICKY_STATE);
      expect(out.iss).toBe(t.issuer);
      expect(out.code).toBeUndefined();
    });

    it('one decision per interaction: the consent form posted twice issues one code', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const login = await agent.startAuthorization((await request(pub, { scope: 'openid' })).params);
      const consent = await agent.submitLogin(login, user);
      const first = await agent.submitConsent(consent, 'approve');
      expect(first.location?.searchParams.get('code')).toBeTruthy();
      expectErrorPage(await agent.submitConsent(consent, 'approve'));
      expectErrorPage(await agent.submitConsent(consent, 'deny'));
    });

    it('an interaction expires after authorization.interactionTtl', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const login = await agent.startAuthorization((await request(pub, { scope: 'openid' })).params);
      await withClock(async (advance) => {
        advance(t.server.config.authorization.interactionTtl + 1);
        expectErrorPage(await agent.get(login.url));
        expectErrorPage(await agent.submitLogin(login, user));
      });
      expect(agent.cookies.has('gh_session')).toBe(false);
    });

    it('RFC 8707 resource: the code is bound to the named resource; another one at the token endpoint is invalid_target', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const started = await authorizeAs(agent, conf, user, { scope: 'openid orders:read', resource: API });
      expect(started.out.pages).toEqual(['login', 'consent']);
      const code = need(started.out.code, 'code');
      expectTokenError(await redeemRaw(conf, code, started.verifier, { resource: OTHER_API }), 'invalid_target');
      const ok = expectTokens(await redeemRaw(conf, code, started.verifier, { resource: API }));
      expect((await verifyAccessToken(ok.access_token, API)).payload.aud).toEqual([API, t.issuer]);
      const unknown = await authorizeAs(agent, conf, undefined, { scope: 'openid orders:read', resource: 'https://unknown.example.com' });
      expectRedirectError(unknown.out, 'invalid_target', unknown.state);
    });

    it('the authorization endpoint also accepts POST (form)', async () => {
      const agent = new BrowserAgent(t.issuer);
      const started = await request(pub, { scope: 'openid' });
      const res = await agent.post('/authorize', started.params);
      expect(res.status).toBe(303);
      expect(res.location?.pathname).toMatch(/^\/interaction\/[A-Za-z0-9_-]{43}$/);
    });
  });

  describe('authorization endpoint refuses', () => {
    it('an unknown client_id with an error page (400, HTML, no redirect)', async () => {
      const started = await request(pub, { client_id: 'no-such-client' });
      expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization(started.params));
      const missing = await request(pub, { client_id: undefined });
      expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization(missing.params));
    });

    it.each([
      ['a trailing slash', `${CB}/`],
      ['the path case', 'https://client.example.com/CB'],
      ['the host case', 'https://CLIENT.example.com/cb'],
      ['a query', `${CB}?x=1`],
      ['http instead of https', 'http://client.example.com/cb'],
      ['a fragment', `${CB}#x`],
      ['another host', 'https://evil.example.com/cb'],
    ])('a redirect_uri differing by %s with an error page and no Location', async (_what, redirectUri) => {
      const started = await request(pub, { redirect_uri: redirectUri, state: 'x' });
      expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization(started.params));
    });

    it('a loopback redirect URI on any port, but not another path, host or localhost', async () => {
      const lb = await createCodeClient(t, { redirectUris: ['http://127.0.0.1/cb'], scope: 'openid' });
      for (const uri of ['http://127.0.0.1:53123/cb', 'http://127.0.0.1/cb', 'http://127.0.0.1:8080/cb']) {
        const started = await request(lb, { scope: 'openid', prompt: 'none', redirect_uri: uri });
        const out = await new BrowserAgent(t.issuer).authorize(started.params);
        expectRedirectError(out, 'login_required', started.state, uri);
      }
      for (const uri of ['http://127.0.0.1:53123/other', 'http://localhost:53123/cb', 'http://localhost/cb', 'http://127.0.0.2:53123/cb', 'http://127.0.0.1:53123/cb?x=1']) {
        const started = await request(lb, { scope: 'openid', prompt: 'none', redirect_uri: uri });
        expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization(started.params));
      }
    });

    it('a missing redirect_uri with the openid scope (error page); without openid the one registered URI is used', async () => {
      const withOpenId = await request(pub, { redirect_uri: undefined, scope: 'openid' });
      expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization(withOpenId.params));
      const plain = await request(pub, { redirect_uri: undefined, scope: 'profile', prompt: 'none' });
      expectRedirectError(await new BrowserAgent(t.issuer).authorize(plain.params), 'login_required', plain.state);
    });

    it.each([
      ['no code_challenge', { code_challenge: undefined, code_challenge_method: undefined }],
      ['code_challenge_method=plain', { code_challenge_method: 'plain' }],
      ['no code_challenge_method', { code_challenge_method: undefined }],
      ['a short code_challenge', { code_challenge: 'abc' }],
      ['a code_challenge with padding', { code_challenge: `${'a'.repeat(42)}=` }],
      ['a code_challenge with non-base64url characters', { code_challenge: `${'a'.repeat(42)}+` }],
    ])('PKCE problems (%s) with invalid_request at the redirect URI', async (_what, extra: Record<string, string | undefined>) => {
      const started = await request(pub, { ...extra, state: TRICKY_STATE });
      expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), 'invalid_request', TRICKY_STATE);
    });

    it.each(['token', 'id_token', 'code id_token', 'code token', 'id_token token'])('response_type=%s with unsupported_response_type', async (responseType) => {
      const started = await request(pub, { response_type: responseType });
      expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), 'unsupported_response_type', started.state);
    });

    it('an unsupported response_mode with invalid_request (sent in the query)', async () => {
      const started = await request(pub, { response_mode: 'fragment' });
      expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), 'invalid_request', started.state);
    });

    it('a missing response_type with invalid_request', async () => {
      const started = await request(pub, { response_type: undefined });
      expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), 'invalid_request', started.state);
    });

    it('a scope the client may not have with invalid_scope', async () => {
      const limited = await createCodeClient(t, { scope: 'openid profile' });
      for (const scope of ['openid admin', 'openid orders:read']) {
        const started = await request(limited, { scope });
        expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), 'invalid_scope', started.state);
      }
    });

    it('request and request_uri (request_not_supported, request_uri_not_supported) and claims (invalid_request)', async () => {
      const cases: Array<[Record<string, string>, string]> = [
        [{ request: 'eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.' }, 'request_not_supported'],
        [{ request_uri: 'https://client.example.com/request.jwt' }, 'request_uri_not_supported'],
        [{ claims: JSON.stringify({ userinfo: { email: null } }) }, 'invalid_request'],
      ];
      for (const [extra, error] of cases) {
        const started = await request(pub, extra);
        expectRedirectError(await new BrowserAgent(t.issuer).authorize(started.params), error, started.state);
      }
    });

    it('a disabled client: error page at the authorization endpoint and the interaction; its codes and tokens stop working', async () => {
      const c = await createCodeClient(t, { name: 'Soon Disabled', scope: 'openid offline_access' });
      const { code, verifier, agent } = await freshCode(c, { scope: 'openid offline_access' });
      const pending = await agent.startAuthorization((await request(c, { scope: 'openid', prompt: 'consent' })).params);
      expect(pageKind(pending.text)).toBe('consent');
      const issued = await tokens(c, { scope: 'openid offline_access' });
      await t.server.storage.clients.setClientDisabled(c.clientId, true, t.clock.now());
      expectErrorPage(await new BrowserAgent(t.issuer).startAuthorization((await request(c, { scope: 'openid' })).params));
      expectErrorPage(await agent.get(pending.url));
      expectTokenError(await redeemRaw(c, code, verifier), 'invalid_client', 401);
      expectTokenError(await refreshRaw(c, need(issued.result.refresh_token, 'refresh_token')), 'invalid_client', 401);
      expect(await isActive(issued.result.access_token)).toBe(false);
    });

    it('login_hint prefills the username, escaped', async () => {
      const hint = '"><script>alert(1)</script>';
      const page = await new BrowserAgent(t.issuer).startAuthorization((await request(pub, { login_hint: hint })).params);
      expect(pageKind(page.text)).toBe('login');
      expect(page.text).not.toContain('<script>alert(1)</script>');
      expect(readForm(page).fields.username).toBe(hint);
    });

    it('duplicate parameters with an error page', async () => {
      const started = await request(pub);
      const query = `${new URLSearchParams(started.params).toString()}&client_id=${encodeURIComponent(pub.clientId)}`;
      expectErrorPage(await new BrowserAgent(t.issuer).open(`/authorize?${query}`));
      const twoStates = `${new URLSearchParams(started.params).toString()}&state=other`;
      expectErrorPage(await new BrowserAgent(t.issuer).open(`/authorize?${twoStates}`));
    });
  });

  describe('token endpoint refuses', () => {
    it('a wrong code_verifier (invalid_grant), and the code stays redeemable by the rightful client', async () => {
      const { code, verifier } = await freshCode();
      const wrong = (await pkcePair()).verifier;
      expectTokenError(await redeemRaw(pub, code, wrong), 'invalid_grant');
      const right = expectTokens(await redeemRaw(pub, code, verifier));
      expect(await isActive(right.access_token)).toBe(true);
    });

    it('a missing code_verifier (invalid_request)', async () => {
      const { code, verifier } = await freshCode();
      expectTokenError(await tokenRequest(pub, { grant_type: 'authorization_code', code, redirect_uri: CB }), 'invalid_request');
      expectTokens(await redeemRaw(pub, code, verifier));
    });

    it("client A's code redeemed by client B (invalid_grant); A can still redeem it", async () => {
      const { code, verifier } = await freshCode(pub);
      expectTokenError(await redeemRaw(conf, code, verifier), 'invalid_grant');
      expectTokens(await redeemRaw(pub, code, verifier));
    });

    it('a redirect_uri that differs from the authorization request (invalid_grant)', async () => {
      const { code, verifier } = await freshCode();
      expectTokenError(await redeemRaw(pub, code, verifier, { redirect_uri: `${CB}/` }), 'invalid_grant');
      expectTokenError(await redeemRaw(pub, code, verifier, { redirect_uri: 'https://client.example.com/other' }), 'invalid_grant');
      expectTokens(await redeemRaw(pub, code, verifier));
    });

    it('redirect_uri sent at authorization must be sent at the token endpoint (RFC 6749 §4.1.3)', async () => {
      const { code, verifier } = await freshCode();
      expectTokenError(await tokenRequest(pub, { grant_type: 'authorization_code', code, code_verifier: verifier }), 'invalid_grant');
      expectTokens(await redeemRaw(pub, code, verifier));
    });

    it('an expired code (invalid_grant)', async () => {
      const { code, verifier } = await freshCode();
      await withClock(async (advance) => {
        advance(t.server.config.authorization.codeTtl + 1);
        expectTokenError(await redeemRaw(pub, code, verifier), 'invalid_grant');
      });
    });

    it('a replayed code (invalid_grant), and what the first redemption issued is revoked', async () => {
      const { code, verifier } = await freshCode();
      const first = expectTokens(await redeemRaw(pub, code, verifier));
      const refreshToken = need(first.refresh_token, 'refresh_token');
      expect(await isActive(first.access_token)).toBe(true);
      expectTokenError(await redeemRaw(pub, code, verifier), 'invalid_grant');
      expect(await isActive(first.access_token)).toBe(false);
      expectTokenError(await refreshRaw(pub, refreshToken), 'invalid_grant');
      expect((await userinfo(first.access_token)).status).toBe(401);
    });

    it('a replayed code also ends opaque access tokens (a resource with opaque tokens)', async () => {
      const reports = 'https://reports.example.com';
      await t.createResource(reports, ['reports:read'], { format: 'opaque' });
      const c = await createCodeClient(t, { confidential: true, scope: 'openid offline_access reports:read' });
      const { code, verifier } = await freshCode(c, { scope: 'openid offline_access reports:read' });
      const first = expectTokens(await redeemRaw(c, code, verifier));
      expect(first.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const introspected = await postForm(`${t.issuer}/introspect`, { token: first.access_token }, { authorization: introspector });
      expect(introspected.body).toMatchObject({ active: true, aud: [reports, t.issuer], scope: 'openid reports:read', client_id: c.clientId });
      expect((await userinfo(first.access_token)).status).toBe(200);
      expectTokenError(await redeemRaw(c, code, verifier), 'invalid_grant');
      expect(await isActive(first.access_token)).toBe(false);
      expect((await userinfo(first.access_token)).status).toBe(401);
      expectTokenError(await refreshRaw(c, need(first.refresh_token, 'refresh_token')), 'invalid_grant');
    });

    it('a replay that fails PKCE revokes nothing', async () => {
      const { code, verifier } = await freshCode();
      const first = expectTokens(await redeemRaw(pub, code, verifier));
      expectTokenError(await redeemRaw(pub, code, (await pkcePair()).verifier), 'invalid_grant');
      expectTokenError(await redeemRaw(conf, code, verifier), 'invalid_grant');
      expect(await isActive(first.access_token)).toBe(true);
      const refreshed = expectTokens(await refreshRaw(pub, need(first.refresh_token, 'refresh_token')));
      expect(await isActive(refreshed.access_token)).toBe(true);
    });
  });

  describe('refresh tokens', () => {
    it('rotate on every use (oauth4webapi); the successor ID token keeps auth_time and sid; the old token then fails', async () => {
      const { result } = await tokens(pub, { scope: 'openid offline_access orders:read' });
      const rt1 = need(result.refresh_token, 'refresh_token');
      const original = oauth.getValidatedIdTokenClaims(result);
      const response = await oauth.refreshTokenGrantRequest(as, pub.client, pub.auth, rt1, insecure);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const next = await oauth.processRefreshTokenResponse(as, pub.client, response);
      const rt2 = need(next.refresh_token, 'refresh_token');
      expect(rt2).not.toBe(rt1);
      expect(next.scope).toBe('openid orders:read');
      const claims = oauth.getValidatedIdTokenClaims(next);
      expect(claims?.sub).toBe(original?.sub);
      expect(claims?.auth_time).toBe(original?.auth_time);
      expect(claims?.sid).toBe(original?.sid);
      expect(claims?.nonce).toBeUndefined();
      expect(claims?.at_hash).toBe(atHash(next.access_token));
      expect(decodeJwt(next.access_token).fid).toBe(decodeJwt(result.access_token).fid);
      expectTokenError(await refreshRaw(pub, rt1), 'invalid_grant');
    });

    it("records the grant's last use behind the token path: at the redemption, and at a refresh a minute later", async () => {
      await withClock(async (advance) => {
        const { result, user } = await tokens(pub);
        const [grant] = await t.server.storage.grants.listGrants({ userId: user.user.userId });
        const grantId = need(grant?.grantId, 'grant');
        const lastUse = async () => (await t.server.storage.grants.findGrantById(grantId))?.lastUsedAt;
        // Written behind the answer, within about a second.
        const redeemedAt = t.clock.now();
        await vi.waitFor(async () => expect(await lastUse()).toBe(redeemedAt), { timeout: 5000, interval: 100 });
        advance(61);
        expectTokens(await refreshRaw(pub, need(result.refresh_token, 'refresh_token')));
        await vi.waitFor(async () => expect(await lastUse()).toBe(redeemedAt + 61), { timeout: 5000, interval: 100 });
      });
    });

    it('reuse of a rotated token revokes the whole family: the newest refresh token and every access token', async () => {
      const { result } = await tokens(pub);
      const rt1 = need(result.refresh_token, 'refresh_token');
      const second = expectTokens(await refreshRaw(pub, rt1));
      const rt2 = need(second.refresh_token, 'refresh_token');
      expect(await isActive(second.access_token)).toBe(true);
      expectTokenError(await refreshRaw(pub, rt1), 'invalid_grant');
      expectTokenError(await refreshRaw(pub, rt2), 'invalid_grant');
      expect(await isActive(result.access_token)).toBe(false);
      expect(await isActive(second.access_token)).toBe(false);
    });

    it('a narrower scope narrows the access token only; a wider one is invalid_scope', async () => {
      const { result } = await tokens(pub, { scope: 'openid offline_access orders:read orders:write' });
      const narrow = expectTokens(await refreshRaw(pub, need(result.refresh_token, 'refresh_token'), { scope: 'openid orders:read' }));
      expect(narrow.scope).toBe('openid orders:read');
      expect((await verifyAccessToken(narrow.access_token, API)).payload.scope).toBe('openid orders:read');
      const full = expectTokens(await refreshRaw(pub, need(narrow.refresh_token, 'refresh_token')));
      expect(scopeSet(full.scope)).toEqual(new Set(['openid', 'orders:read', 'orders:write']));
      const rt = need(full.refresh_token, 'refresh_token');
      for (const scope of ['openid orders:read billing', 'openid profile', 'orders']) {
        expectTokenError(await refreshRaw(pub, rt, { scope }), 'invalid_scope');
      }
      // Refused requests consume nothing.
      expectTokens(await refreshRaw(pub, rt));
    });

    it('a grant bound to one resource (RFC 8707) may be narrowed to identity scopes: a token for userinfo only', async () => {
      const { result, user } = await tokens(conf, { scope: 'openid offline_access orders:read', resource: API });
      expect((await verifyAccessToken(result.access_token, API)).payload.aud).toEqual([API, t.issuer]);
      const narrowed = expectTokens(await refreshRaw(conf, need(result.refresh_token, 'refresh_token'), { scope: 'openid' }));
      expect(narrowed.scope).toBe('openid');
      expect((await verifyAccessToken(narrowed.access_token, t.issuer)).payload.aud).toBe(t.issuer);
      expect((await userinfo(narrowed.access_token)).body).toEqual({ sub: user.user.userId });
      // Without scope, the successor carries the whole grant again, for the resource.
      const full = expectTokens(await refreshRaw(conf, need(narrowed.refresh_token, 'refresh_token')));
      expect(full.scope).toBe('openid orders:read');
      expect((await verifyAccessToken(full.access_token, API)).payload.aud).toEqual([API, t.issuer]);
      // Naming the resource while asking for none of its scopes stays invalid_target.
      expectTokenError(await refreshRaw(conf, need(full.refresh_token, 'refresh_token'), { scope: 'openid', resource: API }), 'invalid_target');
      // A code for identity scopes only, requested with a resource, is redeemable (for userinfo).
      const identityOnly = await tokens(conf, { scope: 'openid', resource: API });
      expect(identityOnly.result.scope).toBe('openid');
      expect((await verifyAccessToken(identityOnly.result.access_token, t.issuer)).payload.aud).toBe(t.issuer);
    });

    it("client A's refresh token used by client B is invalid_grant and revokes nothing", async () => {
      const { result } = await tokens(pub);
      const rt = need(result.refresh_token, 'refresh_token');
      expectTokenError(await refreshRaw(conf, rt), 'invalid_grant');
      expect(await isActive(result.access_token)).toBe(true);
      expectTokens(await refreshRaw(pub, rt));
    });

    it('idle expiry', async () => {
      const { result } = await tokens(pub);
      const idle = t.server.config.authorization.refreshTokenIdleTtl;
      await withClock(async (advance) => {
        advance(idle - 1);
        const next = expectTokens(await refreshRaw(pub, need(result.refresh_token, 'refresh_token')));
        advance(idle);
        expectTokenError(await refreshRaw(pub, need(next.refresh_token, 'refresh_token')), 'invalid_grant');
      });
    });

    it('absolute expiry, however often the token is used; the family’s access tokens end with it', async () => {
      const { result } = await tokens(pub);
      const { refreshTokenTtl } = t.server.config.authorization;
      await withClock(async (advance) => {
        let rt = need(result.refresh_token, 'refresh_token');
        let elapsed = 0;
        const use = async () => {
          const next = expectTokens(await refreshRaw(pub, rt));
          rt = need(next.refresh_token, 'refresh_token');
          return next.access_token;
        };
        while (elapsed + 300 < refreshTokenTtl) {
          advance(300);
          elapsed += 300;
          await use();
        }
        advance(refreshTokenTtl - 1 - elapsed);
        const last = await use();
        expect(await isActive(last)).toBe(true);
        // Two seconds after the last use: not idle, but past the lineage's absolute end.
        advance(2);
        expectTokenError(await refreshRaw(pub, rt), 'invalid_grant');
        expect(await isActive(last)).toBe(false);
      });
    });

    it('a disabled user cannot refresh or redeem a code, and their access tokens stop working', async () => {
      const { result, user, agent } = await tokens(pub);
      const pending = await authorizeAs(agent, pub, undefined, { prompt: 'none' });
      const code = need(pending.out.code, 'code');
      await t.server.storage.users.setUserDisabled(user.user.userId, true, t.clock.now());
      expectTokenError(await redeemRaw(pub, code, pending.verifier), 'invalid_grant');
      expectTokenError(await refreshRaw(pub, need(result.refresh_token, 'refresh_token')), 'invalid_grant');
      expect((await userinfo(result.access_token)).status).toBe(401);
      expect(await isActive(result.access_token)).toBe(false);
    });

    it('a revoked grant (as `gatehouse grants revoke` does): refresh is invalid_grant, access tokens introspect inactive', async () => {
      const { result, user, agent } = await tokens(pub);
      const pending = await authorizeAs(agent, pub, undefined, { prompt: 'none' });
      const grant = need(await t.server.storage.grants.findGrant(user.user.userId, pub.clientId), 'grant');
      expect(await t.server.storage.grants.revokeGrant(grant.grantId, t.clock.now())).toBe(true);
      expectTokenError(await redeemRaw(pub, need(pending.out.code, 'code'), pending.verifier), 'invalid_grant');
      expectTokenError(await refreshRaw(pub, need(result.refresh_token, 'refresh_token')), 'invalid_grant');
      expect(await isActive(result.access_token)).toBe(false);
      expect((await userinfo(result.access_token)).status).toBe(401);
    });

    it('RFC 7009 revocation of a refresh token revokes its family; another client cannot revoke it', async () => {
      const { result } = await tokens(pub);
      const rt = need(result.refresh_token, 'refresh_token');
      const foreign = await postForm(`${t.issuer}/revoke`, { token: rt, token_type_hint: 'refresh_token' }, { authorization: need(conf.basic, 'basic') });
      expect(foreign.status).toBe(200);
      expect(await isActive(result.access_token)).toBe(true);
      const revoked = await postForm(`${t.issuer}/revoke`, { token: rt, token_type_hint: 'refresh_token', client_id: pub.clientId });
      expect(revoked.status).toBe(200);
      expectTokenError(await refreshRaw(pub, rt), 'invalid_grant');
      expect(await isActive(result.access_token)).toBe(false);
    });
  });

  describe('pages', () => {
    it('the login POST without, or with a wrong, CSRF token is 403 and starts no session', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const page = await agent.startAuthorization((await request(pub)).params);
      expect(pageKind(page.text)).toBe('login');
      const form = readForm(page);
      const { csrf_token: token, ...rest } = form.fields;
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // A token for another interaction of the same browser is bound to that interaction.
      const otherPage = await agent.startAuthorization((await request(pub)).params);
      const otherToken = need(readForm(otherPage).fields.csrf_token, 'csrf_token');
      const credentials = { username: user.username, password: user.password };
      for (const csrf of [undefined, 'A'.repeat(43), otherToken, `${need(token, 'csrf')}x`]) {
        const res = await agent.post(form.action, { ...rest, ...credentials, ...(csrf === undefined ? {} : { csrf_token: csrf }) });
        expectErrorPage(res, 403);
        expect(res.setCookies.some((c) => c.startsWith('gh_session='))).toBe(false);
        expect(agent.cookies.has('gh_session')).toBe(false);
      }
      expect(pageKind((await agent.open(page.url)).text)).toBe('login');
      const ok = await agent.submitLogin(page, user);
      expect(pageKind(ok.text)).toBe('consent');
    });

    it('the consent POST without, or with a wrong, CSRF token is 403 and issues no code', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const login = await agent.startAuthorization((await request(pub, { scope: 'openid' })).params);
      const loginToken = need(readForm(login).fields.csrf_token, 'csrf_token');
      const consent = await agent.submitLogin(login, user);
      expect(pageKind(consent.text)).toBe('consent');
      const form = readForm(consent);
      for (const csrf of [undefined, 'A'.repeat(43), loginToken]) {
        const res = await agent.post(form.action, { decision: 'approve', ...(csrf === undefined ? {} : { csrf_token: csrf }) });
        expectErrorPage(res, 403);
      }
      expect(await t.server.storage.grants.findGrant(user.user.userId, pub.clientId)).toBeUndefined();
      const out = await agent.submitConsent(consent, 'approve');
      expect(out.status).toBe(303);
      expect(out.location?.searchParams.get('code')).toBeTruthy();
    });

    it('an interaction opened in another browser (no binding cookie) is an error page', async () => {
      const alice = new BrowserAgent(t.issuer);
      const user = await newUser();
      const page = await alice.startAuthorization((await request(pub)).params);
      expect(pageKind(page.text)).toBe('login');
      const form = readForm(page);

      const mallory = new BrowserAgent(t.issuer);
      expectErrorPage(await mallory.get(page.url));
      const loginPost = await mallory.post(form.action, { ...form.fields, username: user.username, password: user.password });
      expectErrorPage(loginPost);
      expect(mallory.cookies.has('gh_session')).toBe(false);
      // With a binding cookie of its own (another authorization request), still not this one.
      await mallory.startAuthorization((await request(pub)).params);
      expect(mallory.cookies.has('gh_binding')).toBe(true);
      expectErrorPage(await mallory.get(page.url));

      // The rightful browser carries on.
      const consent = await alice.submitLogin(page, user);
      expect(pageKind(consent.text)).toBe('consent');
    });

    it('security headers on every page', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const seen: Array<[string, AgentResponse]> = [];
      const login = await agent.startAuthorization((await request(pub, { scope: 'openid' })).params);
      seen.push(['login', login]);
      seen.push(['failed login', await agent.post(readForm(login).action, { ...readForm(login).fields, username: user.username, password: 'wrong password!' })]);
      const consent = await agent.submitLogin(login, user);
      seen.push(['consent', consent]);
      seen.push(['form_post', (await authorizeAs(agent, pub, undefined, { scope: 'openid', response_mode: 'form_post', prompt: 'consent' })).out.response]);
      seen.push(['error', await agent.startAuthorization({ client_id: 'unknown' })]);
      seen.push(['account', await agent.open('/account')]);
      const confirm = await agent.open('/logout');
      seen.push(['logout confirmation', confirm]);
      const form = readForm(confirm);
      seen.push(['logged out', await agent.submit(form, { decision: 'logout' })]);
      seen.push(['account login', await agent.open('/account')]);
      const kinds = seen.map(([name, res]) => [name, pageKind(res.text)]);
      expect(kinds).toEqual([
        ['login', 'login'],
        ['failed login', 'login'],
        ['consent', 'consent'],
        ['form_post', 'form-post'],
        ['error', 'error'],
        ['account', 'account'],
        ['logout confirmation', 'logout-confirm'],
        ['logged out', 'logged-out'],
        ['account login', 'login'],
      ]);
      for (const [, res] of seen) expectPageHeaders(res);
    });

    it('cookies are HttpOnly and SameSite=Lax, without Secure on a loopback http issuer', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const first = await agent.get(`/authorize?${new URLSearchParams((await request(pub)).params).toString()}`);
      const page = await agent.follow(first);
      const login = await agent.post(readForm(page).action, { ...readForm(page).fields, username: user.username, password: user.password });
      expect(login.status).toBe(303);
      const cookies = [...first.setCookies, ...page.setCookies, ...login.setCookies];
      const byName = (name: string) => need(cookies.find((c) => c.startsWith(`${name}=`)), `${name} cookie`);
      for (const name of ['gh_binding', 'gh_csrf', 'gh_session']) {
        const attrs = byName(name).split(';').map((a) => a.trim().toLowerCase());
        expect(attrs).toContain('httponly');
        expect(attrs).toContain('samesite=lax');
        expect(attrs).toContain('path=/');
        expect(attrs).not.toContain('secure');
      }
      expect(byName('gh_session')).toMatch(/^gh_session=[A-Za-z0-9_-]{43};/);
      expect(byName('gh_session').toLowerCase()).toContain(`max-age=${t.server.config.sessions.absoluteLifetime}`);
    });

    it('a wrong password and an unknown user give the same status and page', async () => {
      const agent = new BrowserAgent(t.issuer);
      const user = await newUser();
      const page = await agent.startAuthorization((await request(pub)).params);
      const form = readForm(page);
      const attempt = async (username: string, password: string) => {
        const res = await agent.post(form.action, { ...form.fields, username, password });
        return { status: res.status, kind: pageKind(res.text), html: res.text.replace(`value="${username}"`, 'value="…"'), session: agent.cookies.has('gh_session') };
      };
      const unknownName = `nobody${user.username.slice(4)}`;
      const wrongPassword = await attempt(user.username, 'not the password');
      const unknownUser = await attempt(unknownName, 'not the password');
      expect(wrongPassword).toEqual(unknownUser);
      // The form again with 200: a 401 would need a WWW-Authenticate challenge (RFC 9110 §15.5.2).
      expect(wrongPassword.status).toBe(200);
      expect(wrongPassword.kind).toBe('login');
      expect(wrongPassword.session).toBe(false);
      expect(wrongPassword.html).toContain('The username or password is not correct.');
    });
  });

  describe('account page and logout', () => {
    it('/account lists the grant with the client name and scopes; revoking it (with CSRF) revokes its tokens', async () => {
      const { agent, result, user } = await tokens(pub, { scope: 'openid profile offline_access orders:read' });
      const page = await agent.open('/account');
      expect(pageKind(page.text)).toBe('account');
      expect(page.text).toContain('<h3>Public App</h3>');
      for (const scope of ['openid', 'profile', 'offline_access', 'orders:read']) expect(page.text).toContain(`<code class="scope-name">${scope}</code>`);
      const revoke = need(
        readForms(page.text, page.url).find((f) => f.action.includes('/grants/')),
        'revoke form',
      );

      expectErrorPage(await agent.post(revoke.action, {}), 403);
      expectErrorPage(await agent.post(revoke.action, { csrf_token: 'A'.repeat(43) }), 403);
      // Another signed-in user posting (with their own valid token) cannot revoke someone else's grant.
      const other = await tokens(conf, { scope: 'openid' });
      const otherPage = await other.agent.open('/account');
      const otherToken = need(readForms(otherPage.text, otherPage.url)[0]?.fields.csrf_token, 'csrf_token');
      expect((await other.agent.post(revoke.action, { csrf_token: otherToken })).status).toBe(303);
      expect(await isActive(result.access_token)).toBe(true);
      expect(await t.server.storage.grants.findGrant(user.user.userId, pub.clientId)).toBeDefined();

      const res = await agent.post(revoke.action, revoke.fields);
      expect(res.status).toBe(303);
      expect(res.location?.pathname).toBe('/account');
      expectTokenError(await refreshRaw(pub, need(result.refresh_token, 'refresh_token')), 'invalid_grant');
      expect(await isActive(result.access_token)).toBe(false);
      const after = await agent.open('/account');
      expect(after.text).toContain('No application has access to your account.');
    });

    it('RP-initiated logout with id_token_hint and a registered post_logout_redirect_uri; afterwards prompt=none is login_required', async () => {
      const { agent, result } = await tokens(pub, { scope: 'openid' });
      const idToken = need(result.id_token, 'id_token');
      const oldSession = need(agent.cookies.get('gh_session'), 'session cookie');
      const query = new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: LOGOUT_CB, state: TRICKY_STATE });
      const page = await agent.open(`/logout?${query.toString()}`);
      expect(page.status).toBe(200);
      expect(pageKind(page.text)).toBe('logout-confirm');
      expectPageHeaders(page);
      expect(page.text).toContain('Public App');
      expect(page.headers.get('content-security-policy')).toContain('https://client.example.com');
      const form = readForm(page);

      expectErrorPage(await agent.post(form.action, { decision: 'logout' }), 403);
      const stillIn = await authorizeAs(agent, pub, undefined, { scope: 'openid', prompt: 'none' });
      expect(stillIn.out.code).toBeDefined();

      const res = await agent.post(form.action, { ...form.fields, decision: 'logout' });
      expect(res.status).toBe(303);
      expect(res.location?.toString().startsWith(`${LOGOUT_CB}?`)).toBe(true);
      expect(res.location?.searchParams.get('state')).toBe(TRICKY_STATE);
      expect([...(res.location?.searchParams.keys() ?? [])]).toEqual(['state']);
      expect(res.setCookies.some((c) => /^gh_session=;/.test(c))).toBe(true);
      expect(agent.cookies.has('gh_session')).toBe(false);

      const after = await authorizeAs(agent, pub, undefined, { scope: 'openid', prompt: 'none' });
      expectRedirectError(after.out, 'login_required', after.state);
      // The session ended on the server too: the old cookie value is worthless.
      const replay = new BrowserAgent(t.issuer);
      replay.cookies.set('gh_session', oldSession);
      const replayed = await authorizeAs(replay, pub, undefined, { scope: 'openid', prompt: 'none' });
      expectRedirectError(replayed.out, 'login_required', replayed.state);
    });

    it('an unregistered post_logout_redirect_uri is an error page', async () => {
      const { agent, result } = await tokens(pub, { scope: 'openid' });
      const idToken = need(result.id_token, 'id_token');
      const cases: Params[] = [
        { id_token_hint: idToken, post_logout_redirect_uri: 'https://evil.example.com/' },
        { id_token_hint: idToken, post_logout_redirect_uri: `${LOGOUT_CB}/` },
        { client_id: conf.clientId, post_logout_redirect_uri: LOGOUT_CB },
        { post_logout_redirect_uri: LOGOUT_CB },
        { id_token_hint: idToken, client_id: conf.clientId, post_logout_redirect_uri: LOGOUT_CB },
      ];
      for (const params of cases) {
        expectErrorPage(await agent.open(`/logout?${new URLSearchParams(params).toString()}`));
      }
      // The session is untouched.
      const silent = await authorizeAs(agent, pub, undefined, { scope: 'openid', prompt: 'none' });
      expect(silent.out.code).toBeDefined();
    });
  });

  describe('sign-in throttling', () => {
    let throttled: TestServer;

    beforeAll(async () => {
      throttled = await startTestServer({ dialect, config: { login: { freeAttempts: 2 } } });
    });

    afterAll(async () => {
      await throttled.close();
    });

    it('after freeAttempts failures: 429 with Retry-After, then the right password works once the delay has passed', async () => {
      const c = await createCodeClient(throttled, { scope: 'openid' });
      const user = await createUser(throttled, { username: 'throttled-user' });
      const agent = new BrowserAgent(throttled.issuer);
      const { challenge } = await pkcePair();
      const page = await agent.startAuthorization({ response_type: 'code', client_id: c.clientId, redirect_uri: CB, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
      const form = readForm(page);
      const attempt = (password: string) => agent.post(form.action, { ...form.fields, username: user.username, password });
      expect((await attempt('wrong password 1')).status).toBe(200);
      expect((await attempt('wrong password 2')).status).toBe(200);
      const blocked = await attempt(user.password);
      expect(blocked.status).toBe(429);
      const retryAfter = Number(blocked.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
      expect(pageKind(blocked.text)).toBe('login');
      expect(blocked.text).toContain('Too many attempts');
      expectPageHeaders(blocked);
      expect(agent.cookies.has('gh_session')).toBe(false);

      throttled.clock.advance(retryAfter);
      const ok = await agent.follow(await attempt(user.password));
      expect(pageKind(ok.text)).toBe('consent');
    });
  });
});
