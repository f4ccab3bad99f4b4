import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FORM_FIELDS } from '../../src/interaction/pages.js';
import { sha256 } from '../../src/tokens/random.js';
import { expectOAuthError, type Answer } from '../helpers/answers.js';
import { BrowserAgent, createUser, pageKind, pageTitle, readForm, type PageKind, type TestUser } from '../helpers/browser-agent.js';
import {
  DEVICE_GRANT,
  decideOnPages,
  enterUserCode,
  openVerification,
  pollToken,
  requestDeviceAuthorization,
  startDeviceAuthorization,
  type DeviceClient,
} from '../helpers/device.js';
import { basicAuth, DIALECTS, postForm, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';

const TV_API = 'https://tv.example.com';
const OTHER_API = 'https://billing.example.com';
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
const insecure = { [oauth.allowInsecureRequests]: true } as const;

const errorOf = (answer: Answer) => (answer.json as { error?: string } | undefined)?.error;
const tokensOf = (answer: Answer) => answer.json as { access_token: string; refresh_token?: string; id_token?: string; scope?: string; expires_in: number; token_type: string };

/** Another code of the alphabet with the same first half (so it hits the same pending request). */
function sameSelectorWrongVerifier(code: string, n = 0): string {
  const alphabet = 'BCDFGHJKLMNPQRSTVWXZ';
  const verifier = code.slice(5);
  let wrong = '';
  for (let i = 0; wrong === '' || wrong === verifier; i++) wrong = [0, 1, 2, 3].map((k) => alphabet[(alphabet.indexOf(verifier[k] ?? 'B') + 1 + n + i + k) % 20]).join('');
  return `${code.slice(0, 4)}-${wrong}`;
}

describe.each(DIALECTS)('device authorization grant (RFC 8628) on %s', (dialect: Dialect) => {
  let t: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  /** Public (token_endpoint_auth_method none), device_code + refresh_token. */
  let tv: DeviceClient;
  /** Confidential (client_secret_basic). */
  let console_: DeviceClient & { secret: string };
  /** Registered for client_credentials only. */
  let service: DeviceClient;

  beforeAll(async () => {
    // Behind a trusted proxy (loopback), so a test can speak from other addresses with X-Forwarded-For.
    t = await startTestServer({ dialect, config: { device: { userCodeAttempts: 3 }, trustedProxies: ['127.0.0.1'] } });
    await t.createResource(TV_API, ['tv:watch', 'tv:record']);
    await t.createResource(OTHER_API, ['billing']);
    alice = await createUser(t, { username: 'alice', name: 'Alice Liddell' });
    bob = await createUser(t, { username: 'bob' });
    const tvClient = await t.createClient({
      client_name: 'Living Room TV',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      token_endpoint_auth_method: 'none',
      scope: 'openid profile offline_access tv:watch tv:record billing',
    });
    tv = { clientId: tvClient.clientId, form: { client_id: tvClient.clientId }, headers: {} };
    const consoleClient = await t.createClient({ client_name: 'Game Console', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'client_secret_basic', scope: 'tv:watch' });
    const secret = consoleClient.clientSecret ?? '';
    console_ = { clientId: consoleClient.clientId, secret, form: {}, headers: { authorization: basicAuth(consoleClient.clientId, secret) } };
    const serviceClient = await t.createClient({ grant_types: ['client_credentials'], scope: 'tv:watch' });
    service = { clientId: serviceClient.clientId, form: {}, headers: { authorization: basicAuth(serviceClient.clientId, serviceClient.clientSecret ?? '') } };
  });
  afterAll(async () => {
    await t?.close();
  });
  // Every test starts after earlier sign-in and code-entry counters were forgotten (window 1 h).
  beforeEach(() => t.clock.advance(2 * 3600));

  describe('device authorization endpoint (§3.1, §3.2)', () => {
    it('is advertised in discovery, with the grant type', async () => {
      const as = (await (await fetch(`${t.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
      expect(as.device_authorization_endpoint).toBe(`${t.issuer}/device_authorization`);
      expect(as.grant_types_supported).toContain(DEVICE_GRANT);
    });

    it('answers a public client with a 256-bit device code, an XXXX-XXXX user code, the URIs, expires_in and interval; stores neither in clear', async () => {
      const answer = await requestDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(answer.headers.get('pragma')).toBe('no-cache');
      const body = answer.json as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['device_code', 'expires_in', 'interval', 'user_code', 'verification_uri', 'verification_uri_complete']);
      expect(body.device_code).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(body.user_code).toMatch(USER_CODE);
      expect(body.verification_uri).toBe(`${t.issuer}/device`);
      expect(body.verification_uri_complete).toBe(`${t.issuer}/device?user_code=${String(body.user_code)}`);
      expect(body.expires_in).toBe(600);
      expect(body.interval).toBe(5);

      const rows = await t.server.storage.handle.db.selectFrom('device_codes').selectAll().execute();
      const row = rows.find((r) => r.device_code_hash === sha256(String(body.device_code)));
      expect(row).toBeDefined();
      const userCode = String(body.user_code);
      const plain = [String(body.device_code), userCode, userCode.replace('-', ''), userCode.slice(0, 4), userCode.slice(5)];
      for (const value of Object.values(row ?? {})) for (const secret of plain) expect(String(value)).not.toContain(secret);
    });

    it('works with oauth4webapi, discovery-driven, for a confidential client', async () => {
      const as = await oauth.processDiscoveryResponse(new URL(t.issuer), await oauth.discoveryRequest(new URL(t.issuer), { algorithm: 'oauth2', ...insecure }));
      const client = { client_id: console_.clientId };
      const response = await oauth.deviceAuthorizationRequest(as, client, oauth.ClientSecretBasic(console_.secret), new URLSearchParams({ scope: 'tv:watch' }), insecure);
      const started = await oauth.processDeviceAuthorizationResponse(as, client, response);
      expect(started.user_code).toMatch(USER_CODE);
      const pending = await oauth.deviceCodeGrantRequest(as, client, oauth.ClientSecretBasic(console_.secret), started.device_code, insecure);
      await expect(oauth.processDeviceCodeResponse(as, client, pending)).rejects.toMatchObject({ error: 'authorization_pending' });
      const done = await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      expect(pageKind(done.text)).toBe<PageKind>('device-done');
      const tokens = await oauth.processDeviceCodeResponse(as, client, await oauth.deviceCodeGrantRequest(as, client, oauth.ClientSecretBasic(console_.secret), started.device_code, insecure));
      expect(tokens.token_type).toBe('bearer');
      expect(tokens.refresh_token).toBeUndefined();
      const claims = decodeJwt(tokens.access_token);
      expect(claims).toMatchObject({ sub: alice.user.userId, client_id: console_.clientId, aud: TV_API, scope: 'tv:watch' });
    });

    it('defaults the scope to what the client is registered for, and validates what it asks', async () => {
      const started = await startDeviceAuthorization(t, console_);
      const done = await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      expect(pageKind(done.text)).toBe<PageKind>('device-done');
      expect(tokensOf(await pollToken(t, console_, started.device_code)).scope).toBe('tv:watch');

      expectOAuthError(await requestDeviceAuthorization(t, console_, { scope: 'tv:record' }), 400, 'invalid_scope');
      expectOAuthError(await requestDeviceAuthorization(t, console_, { scope: 'tv:watch  tv:watch' }), 400, 'invalid_scope');
    });

    it('checks resources (RFC 8707): unknown → invalid_target, scopes of two APIs without resource → invalid_target, a scope outside the named resource → invalid_scope', async () => {
      expectOAuthError(await requestDeviceAuthorization(t, tv, { scope: 'tv:watch', resource: 'https://unknown.example.com' }), 400, 'invalid_target');
      expectOAuthError(await requestDeviceAuthorization(t, tv, { scope: 'tv:watch', resource: 'not a uri' }), 400, 'invalid_target');
      expectOAuthError(await requestDeviceAuthorization(t, tv, { scope: 'tv:watch billing' }), 400, 'invalid_target');
      expectOAuthError(await requestDeviceAuthorization(t, tv, { scope: 'tv:watch billing', resource: TV_API }), 400, 'invalid_scope');
      const both = await requestDeviceAuthorization(t, tv, { scope: 'tv:watch billing', resource: [TV_API, OTHER_API] });
      expect(both.status).toBe(200);
    });

    it('authenticates clients as the token endpoint does, and refuses clients without the grant', async () => {
      expectOAuthError(await requestDeviceAuthorization(t, { ...console_, headers: { authorization: basicAuth(console_.clientId, 'wrong') } }), 401, 'invalid_client');
      // A confidential client cannot pass as public by naming itself.
      expectOAuthError(await requestDeviceAuthorization(t, { clientId: console_.clientId, form: { client_id: console_.clientId }, headers: {} }), 401, 'invalid_client');
      expectOAuthError(await requestDeviceAuthorization(t, { clientId: 'nobody', form: { client_id: 'nobody' }, headers: {} }), 401, 'invalid_client');
      expectOAuthError(await requestDeviceAuthorization(t, { clientId: '', form: {}, headers: {} }), 401, 'invalid_client');
      expectOAuthError(await requestDeviceAuthorization(t, service), 400, 'unauthorized_client');
      // A client_id no client can have (a control character; PostgreSQL refuses NUL in text).
      for (const odd of ['abc\u0000', '\u0000', 'a\nb', 'x'.repeat(300)]) {
        expectOAuthError(await requestDeviceAuthorization(t, { clientId: odd, form: { client_id: odd }, headers: {} }), 401, 'invalid_client');
        expectOAuthError(await pollToken(t, { clientId: odd, form: { client_id: odd }, headers: {} }, 'x'), 401, 'invalid_client');
        expectOAuthError(await requestDeviceAuthorization(t, { clientId: odd, form: {}, headers: { authorization: basicAuth(odd, 'secret') } }), 401, 'invalid_client');
      }
    });

    it('refuses malformed requests precisely: wrong method, content type, repeated parameters', async () => {
      const get = await fetch(`${t.issuer}/device_authorization`);
      expect(get.status).toBe(405);
      expect(get.headers.get('allow')).toBe('POST');
      const json = await fetch(`${t.issuer}/device_authorization`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: tv.clientId }) });
      expect(json.status).toBe(400);
      expect(((await json.json()) as { error: string }).error).toBe('invalid_request');
      const twice = await postForm(`${t.issuer}/device_authorization`, `client_id=${tv.clientId}&scope=tv:watch&scope=tv:record`);
      expect(twice.status).toBe(400);
      expect((twice.body as { error: string }).error).toBe('invalid_request');
    });
  });

  describe('user side: sign in, enter the code, confirm (§3.3)', () => {
    it('asks for sign-in first, then the code; the confirmation names the client, the scopes and the code; pages are locked down', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'openid tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const login = await agent.open('/device');
      expect(pageKind(login.text)).toBe<PageKind>('login');
      for (const page of [login]) {
        expect(page.headers.get('cache-control')).toBe('no-store');
        expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
        expect(page.headers.get('x-frame-options')).toBe('DENY');
      }
      const entry = await agent.submitLogin(login, alice);
      expect(pageKind(entry.text)).toBe<PageKind>('device-code');
      expect(entry.url.pathname).toBe('/device');
      // Case, spaces and dashes are ignored.
      const typed = ` ${started.user_code.toLowerCase().replace('-', ' - ')} `;
      const confirm = await enterUserCode(agent, entry, typed);
      expect(pageKind(confirm.text)).toBe<PageKind>('device-confirm');
      expect(confirm.headers.get('cache-control')).toBe('no-store');
      expect(confirm.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(pageTitle(confirm.text)).toBe('Connect Living Room TV?');
      expect(confirm.text).toContain(started.user_code);
      expect(confirm.text).toContain('tv:watch');
      expect(confirm.text).toContain('Sign you in with your account');
      expect(confirm.text).toContain('Alice Liddell');
      // Nothing is decided until the user answers.
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
      const done = await agent.submit(readForm(confirm), { [FORM_FIELDS.decision]: 'approve' });
      expect(pageKind(done.text)).toBe<PageKind>('device-done');
      expect(pageTitle(done.text)).toBe('Device connected');
    });

    it('keeps a prefilled code (verification_uri_complete) through sign-in, and still asks for both steps', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const login = await agent.open(started.verification_uri_complete.replace(t.issuer, ''));
      expect(pageKind(login.text)).toBe<PageKind>('login');
      const entry = await agent.submitLogin(login, alice);
      expect(pageKind(entry.text)).toBe<PageKind>('device-code');
      expect(readForm(entry).fields[FORM_FIELDS.userCode]).toBe(started.user_code);
      // Opening the complete URI again, signed in: the code is shown, not looked up or approved.
      const again = await agent.open(started.verification_uri_complete.replace(t.issuer, ''));
      expect(pageKind(again.text)).toBe<PageKind>('device-code');
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
      const confirm = await agent.submit(readForm(entry));
      expect(pageKind(confirm.text)).toBe<PageKind>('device-confirm');
      // Polled again in the same second: too fast.
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'slow_down');
      const done = await agent.submit(readForm(confirm), { [FORM_FIELDS.decision]: 'approve' });
      expect(pageTitle(done.text)).toBe('Device connected');
      t.clock.advance(20);
      expect((await pollToken(t, tv, started.device_code)).status).toBe(200);
    });

    it('ignores a malformed prefilled code instead of echoing it', async () => {
      const agent = new BrowserAgent(t.issuer);
      const entry = await openVerification(agent, alice, '/device?user_code=%3Cscript%3E');
      expect(readForm(entry).fields[FORM_FIELDS.userCode] ?? '').toBe('');
      expect(entry.text).not.toContain('<script>');
    });

    it('refuses forms without the CSRF token, and a confirmation posted by another session', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const entry = await openVerification(agent, alice);
      const noToken = await agent.post('/device', { [FORM_FIELDS.userCode]: started.user_code });
      expect(noToken.status).toBe(403);
      const confirm = await enterUserCode(agent, entry, started.user_code);
      const form = readForm(confirm);
      const mallory = new BrowserAgent(t.issuer);
      await openVerification(mallory, bob);
      const stolen = await mallory.post(form.action, { ...form.fields, [FORM_FIELDS.decision]: 'approve' });
      expect(stolen.status).toBe(403);
      // A token bound to another code does not confirm this one.
      const other = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const swapped = await agent.post(form.action, { ...form.fields, [FORM_FIELDS.userCode]: other.user_code, [FORM_FIELDS.decision]: 'approve' });
      expect(swapped.status).toBe(403);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
      expectOAuthError(await pollToken(t, tv, other.device_code), 400, 'authorization_pending');
    });

    it('errors on the pages are pages: an oversized form is a 413 page, not JSON', async () => {
      const agent = new BrowserAgent(t.issuer);
      const entry = await openVerification(agent, alice);
      const big = await agent.post(readForm(entry).action, { ...readForm(entry).fields, [FORM_FIELDS.userCode]: 'B'.repeat(100_000) });
      expect(big.status).toBe(413);
      expect(big.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(pageTitle(big.text)).toBe('Invalid request');
      // The protocol endpoint next door still answers JSON.
      const json = await postForm(`${t.issuer}/device_authorization`, { client_id: tv.clientId, scope: 'B'.repeat(100_000) });
      expect(json.status).toBe(413);
      expect((json.body as { error: string }).error).toBe('invalid_request');
    });

    it('a decided code cannot be entered again', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      await decideOnPages(agent, alice, started.user_code, 'approve');
      const entry = await openVerification(agent, alice);
      const again = await enterUserCode(agent, entry, started.user_code);
      expect(pageKind(again.text)).toBe<PageKind>('device-code');
      expect(again.text).toContain('That code is not valid or has expired');
    });
  });

  describe('token endpoint (§3.4, §3.5)', () => {
    it('authorization_pending, then tokens once approved: access token, refresh token (offline_access), ID token; consent recorded as a grant', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'openid profile offline_access tv:watch' });
      const pending = await pollToken(t, tv, started.device_code);
      expectOAuthError(pending, 400, 'authorization_pending');
      await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      t.clock.advance(5);
      const answer = await pollToken(t, tv, started.device_code);
      expect(answer.status, answer.text).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      const tokens = tokensOf(answer);
      expect(tokens.token_type).toBe('Bearer');
      expect(tokens.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const jwks = createRemoteJWKSet(new URL(`${t.issuer}/jwks`));
      const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: t.issuer, typ: 'at+jwt', currentDate: new Date(t.clock.now() * 1000) });
      expect(payload).toMatchObject({ sub: alice.user.userId, client_id: tv.clientId, scope: 'openid profile tv:watch' });
      expect(payload.aud).toEqual([TV_API, t.issuer]);
      const id = await jwtVerify(tokens.id_token ?? '', jwks, { issuer: t.issuer, audience: tv.clientId, currentDate: new Date(t.clock.now() * 1000) });
      expect(id.payload.sub).toBe(alice.user.userId);
      expect(id.payload.nonce).toBeUndefined();

      const grant = await t.server.storage.grants.findGrant(alice.user.userId, tv.clientId);
      expect(grant?.scope).toEqual(expect.arrayContaining(['openid', 'profile', 'offline_access', 'tv:watch']));
      // The refresh token works like one from the code flow (and rotates).
      const refreshed = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '', client_id: tv.clientId });
      expect(refreshed.status).toBe(200);
      // userinfo with the device's access token.
      const info = await fetch(`${t.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(info.status).toBe(200);
      expect(((await info.json()) as { sub: string }).sub).toBe(alice.user.userId);
    });

    it('slow_down when polled sooner than the interval, which then grows by 5 seconds', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'slow_down', /10 seconds/);
      t.clock.advance(5);
      // 5 s is now too soon: the interval is 10.
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'slow_down', /15 seconds/);
      t.clock.advance(15);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
      const stored = await t.server.storage.deviceCodes.findDeviceAuthorization(sha256(started.device_code));
      expect(stored?.pollInterval).toBe(15);
    });

    it('a client that waits the interval is never told slow_down', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      for (let i = 0; i < 4; i++) {
        expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'authorization_pending');
        t.clock.advance(started.interval);
      }
    });

    it('access_denied when the user denies, for every later poll too; the code cannot then be approved', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const done = await decideOnPages(agent, alice, started.user_code, 'deny');
      expect(pageTitle(done.text)).toBe('Access denied');
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'access_denied');
      t.clock.advance(5);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'access_denied');
      expect(await t.server.storage.grants.findGrant(alice.user.userId, tv.clientId).then((g) => g?.scope.includes('tv:record') ?? false)).toBe(false);
    });

    it('expired_token after expires_in; the code can no longer be entered', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const entry = await openVerification(agent, alice);
      t.clock.advance(started.expires_in);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'expired_token');
      const late = await enterUserCode(agent, entry, started.user_code);
      expect(pageKind(late.text)).toBe<PageKind>('device-code');
      expect(late.text).toContain('That code is not valid or has expired');
    });

    it('an approval that arrives after expiry is refused, and the device is told expired_token', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      const entry = await openVerification(agent, alice);
      const confirm = await enterUserCode(agent, entry, started.user_code);
      t.clock.advance(started.expires_in);
      const done = await agent.submit(readForm(confirm), { [FORM_FIELDS.decision]: 'approve' });
      expect(done.status).toBe(400);
      expect(pageTitle(done.text)).toBe('This code can no longer be used');
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'expired_token');
    });

    it('single use: a replayed device code is invalid_grant; the tokens of the device stay valid (a retry is not a theft)', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'offline_access tv:watch' });
      await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      const first = tokensOf(await pollToken(t, tv, started.device_code));
      t.clock.advance(5);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'invalid_grant', 'the device code was already used');
      t.clock.advance(5);
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'invalid_grant', 'the device code was already used');
      const refresh = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: first.refresh_token ?? '', client_id: tv.clientId });
      expect(refresh.status).toBe(200);
    });

    it('overlapping polls of an approved code: exactly one gets tokens, and they stay valid', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'offline_access tv:watch' });
      await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      const answers = await Promise.all(Array.from({ length: 2 }, () => pollToken(t, tv, started.device_code)));
      const ok = answers.filter((a) => a.status === 200);
      expect(ok).toHaveLength(1);
      for (const a of answers.filter((x) => x.status !== 200)) expect(errorOf(a)).toBe('invalid_grant');
      const winner = tokensOf(ok[0] as Answer);
      const refreshed = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: winner.refresh_token ?? '', client_id: tv.clientId });
      expect(refreshed.status).toBe(200);
    });

    it('many concurrent polls of an approved code: exactly one 200, no 5xx', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      const answers = await Promise.all(Array.from({ length: 20 }, () => pollToken(t, tv, started.device_code)));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      for (const a of answers.filter((x) => x.status !== 200)) expect(errorOf(a)).toBe('invalid_grant');
    });

    it('bound to its client: another client gets invalid_grant and leaves the code usable', async () => {
      const started = await startDeviceAuthorization(t, console_);
      await decideOnPages(new BrowserAgent(t.issuer), alice, started.user_code, 'approve');
      const other = await t.createClient({ grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'tv:watch' });
      expectOAuthError(await pollToken(t, { clientId: other.clientId, form: { client_id: other.clientId }, headers: {} }, started.device_code), 400, 'invalid_grant');
      // The confidential client must authenticate to redeem its own code.
      expectOAuthError(await pollToken(t, { ...console_, headers: {} }, started.device_code, { client_id: console_.clientId }), 401, 'invalid_client');
      expect((await pollToken(t, console_, started.device_code)).status).toBe(200);
    });

    it('precise errors: no device_code, an unknown one, a client without the grant', async () => {
      expectOAuthError(await postForm(`${t.issuer}/token`, { grant_type: DEVICE_GRANT, client_id: tv.clientId }).then((r) => ({ ...r, json: r.body })), 400, 'invalid_request', 'device_code is required');
      expectOAuthError(await pollToken(t, tv, 'not-a-device-code'), 400, 'invalid_grant');
      expectOAuthError(await pollToken(t, service, 'whatever'), 400, 'unauthorized_client');
    });

    it('a disabled user or a revoked grant ends an approved request: invalid_grant, nothing issued', async () => {
      const carol = await createUser(t, { username: `carol-${dialect}` });
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      await decideOnPages(new BrowserAgent(t.issuer), carol, started.user_code, 'approve');
      await t.server.storage.users.setUserDisabled(carol.user.userId, true, t.clock.now());
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'invalid_grant', 'the user can no longer sign in');

      const second = await startDeviceAuthorization(t, tv, { scope: 'tv:record' });
      await decideOnPages(new BrowserAgent(t.issuer), bob, second.user_code, 'approve');
      const grant = await t.server.storage.grants.findGrant(bob.user.userId, tv.clientId);
      await t.server.storage.grants.revokeGrant(grant?.grantId ?? '', t.clock.now());
      const answer = await pollToken(t, tv, second.device_code);
      expect(answer.status).toBe(400);
      expect(errorOf(answer)).toBe('invalid_grant');
    });
  });

  describe('wrong user codes (§5.1)', () => {
    it('a wrong code shows the form again; per session, typing is throttled after the free attempts (429, Retry-After), whatever the address', async () => {
      const agent = new BrowserAgent(t.issuer);
      let page = await openVerification(agent, alice);
      for (let i = 0; i < 5; i++) {
        page = await enterUserCode(agent, page, `BBBB-BBB${'CDFGH'[i] ?? 'C'}`);
        expect(page.status).toBe(200);
        expect(page.text).toContain('That code is not valid or has expired');
      }
      const blocked = await enterUserCode(agent, page, 'BBBB-BBBB');
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(pageKind(blocked.text)).toBe<PageKind>('device-code');
      // A right code is refused too while blocked, and so is the same session from another address.
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      expect((await enterUserCode(agent, blocked, started.user_code)).status).toBe(429);
      const form = readForm(blocked);
      const elsewhere = await agent.post(form.action, { ...form.fields, [FORM_FIELDS.userCode]: started.user_code }, { 'x-forwarded-for': '203.0.113.9' });
      expect(elsewhere.status).toBe(429);
      // Another session from another address is not affected.
      const other = new BrowserAgent(t.issuer);
      const otherEntry = await other.open('/device');
      const otherForm = readForm(otherEntry);
      const signedIn = await other.post(otherForm.action, { ...otherForm.fields, [FORM_FIELDS.username]: bob.username, [FORM_FIELDS.password]: bob.password }, { 'x-forwarded-for': '198.51.100.7' });
      const otherCode = await other.follow(signedIn);
      const codeForm = readForm(otherCode);
      const wrongElsewhere = await other.post(codeForm.action, { ...codeForm.fields, [FORM_FIELDS.userCode]: 'DDDD-DDDD' }, { 'x-forwarded-for': '198.51.100.7' });
      expect(wrongElsewhere.status).toBe(200);
      // The wait passes.
      t.clock.advance(Number(blocked.headers.get('retry-after')) + 1);
      const page2 = await openVerification(agent, alice);
      expect(pageKind((await enterUserCode(agent, page2, started.user_code)).text)).toBe<PageKind>('device-confirm');
    });

    it('per address: a new session from the same address inherits its failures', async () => {
      const first = new BrowserAgent(t.issuer);
      let page = await openVerification(first, alice);
      for (let i = 0; i < 6; i++) page = await enterUserCode(first, page, 'CCCC-CCCC');
      const second = new BrowserAgent(t.issuer);
      const fresh = await openVerification(second, bob);
      const answer = await enterUserCode(second, fresh, 'CCCC-CCCC');
      expect(answer.status).toBe(429);
    });

    it('a request is locked after a few wrong codes against it: the right code is then refused and the device told access_denied', async () => {
      const started = await startDeviceAuthorization(t, tv, { scope: 'tv:watch' });
      const agent = new BrowserAgent(t.issuer);
      let page = await openVerification(agent, alice);
      for (let i = 0; i < 3; i++) {
        page = await enterUserCode(agent, page, sameSelectorWrongVerifier(started.user_code, i));
        expect(page.text).toContain('That code is not valid or has expired');
      }
      const right = await enterUserCode(agent, page, started.user_code);
      expect(pageKind(right.text)).toBe<PageKind>('device-code');
      expect(right.text).toContain('That code is not valid or has expired');
      expectOAuthError(await pollToken(t, tv, started.device_code), 400, 'access_denied', /locked/);
    });
  });
});
