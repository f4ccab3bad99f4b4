import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, createCodeClient, createUser, outcome, pageKind, pkcePair, readForm, type CodeClient, type TestUser } from '../helpers/browser-agent.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Findings of the security review of the browser flows, each proven fixed. */
describe('code flow hardening', () => {
  let t: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let admin: CodeClient;

  beforeAll(async () => {
    t = await startTestServer({ config: { login: { freeAttempts: 100 } } });
    alice = await createUser(t, { username: 'alice', email: 'alice@example.com', emailVerified: true });
    bob = await createUser(t, { username: 'bob', email: 'bob@example.com', emailVerified: true });
    admin = await createCodeClient(t, { name: 'Admin App', confidential: true });
  });

  afterAll(async () => {
    await t.close();
  });

  const baseParams = async (c: { clientId: string; redirectUri: string }, extra: Record<string, string> = {}) => {
    const { challenge } = await pkcePair();
    return { response_type: 'code', client_id: c.clientId, redirect_uri: c.redirectUri, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256', state: 'st', ...extra };
  };

  async function registerSelf(extra: Record<string, unknown> = {}): Promise<{ clientId: string; redirectUri: string }> {
    const iat = await t.createInitialAccessToken(['openid', 'email']);
    const response = await fetch(`${t.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify({ client_name: 'Totally Legit Bank', redirect_uris: ['https://phish.example.com/cb'], token_endpoint_auth_method: 'none', scope: 'openid email', ...extra }),
    });
    const body = (await response.json()) as { client_id: string };
    expect(response.status).toBe(201);
    return { clientId: body.client_id, redirectUri: 'https://phish.example.com/cb' };
  }

  it('a self-registered client cannot use the server as an open redirector before anyone signs in (RFC 9700 §4.11.2)', async () => {
    const self = await registerSelf();
    const bad = await new BrowserAgent(t.issuer).startAuthorization({ ...(await baseParams(self)), response_type: 'token', state: 'attacker-chosen' });
    expect(bad.status).toBe(400);
    expect(bad.location).toBeUndefined();
    expect(pageKind(bad.text)).toBe('error');
    // Silent authentication is the exception: prompt=none still answers at the redirect URI.
    const silent = outcome(await new BrowserAgent(t.issuer).startAuthorization({ ...(await baseParams(self)), prompt: 'none' }));
    expect(silent.error).toBe('login_required');
    // An administrator's client keeps RFC 6749 §4.1.2.1 behaviour: errors go to its redirect URI.
    const adminBad = outcome(await new BrowserAgent(t.issuer).startAuthorization({ ...(await baseParams(admin)), response_type: 'token' }));
    expect(adminBad.error).toBe('unsupported_response_type');
  });

  it('the sign-in page marks a self-registered client as unverified', async () => {
    const self = await registerSelf();
    const page = await new BrowserAgent(t.issuer).startAuthorization(await baseParams(self));
    expect(pageKind(page.text)).toBe('login');
    expect(page.text).toContain('Unverified');
    const adminPage = await new BrowserAgent(t.issuer).startAuthorization(await baseParams(admin));
    expect(adminPage.text).not.toContain('Unverified');
  });

  it('consent shown to one user cannot be given by another who signed in meanwhile', async () => {
    const agent = new BrowserAgent(t.issuer);
    const login = await agent.startAuthorization(await baseParams(admin));
    const aliceConsent = await agent.follow(await agent.submitLogin(login, alice));
    expect(pageKind(aliceConsent.text)).toBe('consent');
    // In another tab of the same browser, bob signs in.
    const relogin = await agent.startAuthorization(await baseParams(admin, { prompt: 'login' }));
    const bobConsent = await agent.follow(await agent.submitLogin(relogin, bob));
    expect(pageKind(bobConsent.text)).toBe('consent');
    // Alice's page is posted: refused, nothing recorded for bob.
    const posted = await agent.submit(readForm(aliceConsent), { decision: 'approve' });
    expect(posted.status).toBe(403);
    expect(await t.server.storage.grants.findGrant(bob.user.userId, admin.clientId)).toBeUndefined();
  });

  it('identity scopes must be registered for the client (openid excepted)', async () => {
    const narrow = await createCodeClient(t, { name: 'Narrow', scope: 'openid' });
    const agent = new BrowserAgent(t.issuer);
    const asked = outcome(await agent.startAuthorization(await baseParams(narrow, { scope: 'openid email' })));
    expect(asked.error).toBe('invalid_scope');
    const phone = outcome(await agent.startAuthorization(await baseParams(admin, { scope: 'openid phone' })));
    expect(phone.error).toBe('invalid_scope');
  });

  it('userinfo stops honouring the tokens of a disabled client', async () => {
    const c = await createCodeClient(t, { name: 'Soon Off', confidential: true });
    const agent = new BrowserAgent(t.issuer);
    const params = await baseParams(c);
    const { verifier, challenge } = await pkcePair();
    const done = await agent.authorize({ ...params, code_challenge: challenge }, { credentials: alice });
    const token = (await (
      await fetch(`${t.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: c.basic ?? '' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: done.code ?? '', redirect_uri: c.redirectUri, code_verifier: verifier }),
      })
    ).json()) as { access_token: string };
    const userinfo = () => fetch(`${t.issuer}/userinfo`, { headers: { authorization: `Bearer ${token.access_token}` } });
    expect((await userinfo()).status).toBe(200);
    await t.server.storage.clients.setClientDisabled(c.clientId, true, t.clock.now());
    expect((await userinfo()).status).toBe(401);
  });

  it('response_mode=form_post to a private-use scheme is refused at the redirect URI, never a 500', async () => {
    const native = await createCodeClient(t, { name: 'Native', redirectUris: ['com.example.app:/cb'] });
    const answer = await new BrowserAgent(t.issuer).startAuthorization({ ...(await baseParams(native)), response_mode: 'form_post' });
    expect(answer.status).toBe(303);
    const result = outcome(answer);
    expect(result.error).toBe('invalid_request');
    expect(answer.location?.href.startsWith('com.example.app:/cb?')).toBe(true);
  });

  it('an out-of-range loopback port is a redirect mismatch (error page), never a 500', async () => {
    const loop = await createCodeClient(t, { name: 'Loopback', redirectUris: ['http://127.0.0.1/cb'] });
    for (const port of ['99999', '65536', '0']) {
      const answer = await new BrowserAgent(t.issuer).startAuthorization({ ...(await baseParams(loop)), redirect_uri: `http://127.0.0.1:${port}/cb` });
      expect(answer.status).toBe(400);
      expect(answer.location).toBeUndefined();
    }
  });
});
