import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../../src/users/passwords.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The browser flows end to end: headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core; Playwright never downloads a browser) clicks through Gatehouse's real pages,
 * and a small relying party built on openid-client completes each flow (PKCE S256, state, nonce,
 * RFC 9207 iss, ID-token validation, userinfo).
 */

const CHROMIUM = '/usr/bin/chromium';
const API = 'https://api.example.com';
const USERNAME = 'alice';
const PASSWORD = 'correct horse battery staple';
const FULL_SCOPE = 'openid profile email offline_access orders:read';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

type Tokens = Awaited<ReturnType<typeof client.authorizationCodeGrant>>;

/** One completed sign-in as the relying party saw it. */
interface SignIn {
  tokens: Tokens;
  claims: client.IDToken;
  userinfo: client.UserInfoResponse;
  nonce: string;
  /** How the authorization response arrived: GET (query) or POST (form_post). */
  method: string;
}

interface RelyingParty {
  origin: string;
  clientId: string;
  clientName: string;
  redirectUri: string;
  postLogoutRedirectUri: string;
  config: client.Configuration;
  signIns: SignIn[];
  /** Authorization error responses (RFC 6749 §4.1.2.1), after openid-client checked state and iss. */
  authErrors: { error: string; state: string }[];
  /** The `state` each post-logout redirect carried. */
  logouts: (string | null)[];
  /** Anything that went wrong inside the relying party itself (must stay empty). */
  failures: string[];
  close(): Promise<void>;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><link rel="icon" href="data:,"></head><body>${body}</body></html>`;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * The client application: a node:http server on 127.0.0.1 registered with Gatehouse.
 * `/login` starts a flow (query parameters `prompt` and `response_mode` pass through), `/cb`
 * completes it (GET or form_post) and shows the userinfo JSON, `/logout` starts RP-initiated
 * logout with the last ID token, `/logged-out` is the post_logout_redirect_uri.
 */
async function startRelyingParty(t: TestServer, options: { name: string; auth: 'none' | 'client_secret_basic'; scope: string }): Promise<RelyingParty> {
  const transactions = new Map<string, { verifier: string; nonce: string }>();
  let rp: RelyingParty | undefined;

  const send = (res: ServerResponse, status: number, html: string) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  };
  const redirect = (res: ServerResponse, location: string) => {
    res.writeHead(302, { location, 'cache-control': 'no-store' });
    res.end();
  };

  async function callback(self: RelyingParty, req: IncomingMessage, res: ServerResponse, url: URL) {
    let current: URL | Request = url;
    let params = url.searchParams;
    if (req.method === 'POST') {
      const body = await readBody(req);
      params = new URLSearchParams(body);
      current = new Request(url, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? '' }, body });
    }
    const state = params.get('state') ?? '';
    const txn = transactions.get(state);
    if (txn === undefined) return send(res, 400, page('Unknown state', '<h1>Unknown state</h1>'));
    transactions.delete(state);
    let tokens: Tokens;
    try {
      tokens = await client.authorizationCodeGrant(self.config, current, {
        pkceCodeVerifier: txn.verifier,
        expectedState: state,
        expectedNonce: txn.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      if (!(err instanceof client.AuthorizationResponseError)) throw err;
      self.authErrors.push({ error: err.error, state });
      return send(res, 200, page('Sign-in failed', `<h1>Sign-in failed</h1><p id="error">${escapeHtml(err.error)}</p>`));
    }
    const claims = tokens.claims();
    if (claims === undefined) throw new Error('no ID token');
    const userinfo = await client.fetchUserInfo(self.config, tokens.access_token, claims.sub);
    self.signIns.push({ tokens, claims, userinfo, nonce: txn.nonce, method: req.method ?? '' });
    return send(res, 200, page('Signed in', `<h1>Signed in</h1><pre id="userinfo">${escapeHtml(JSON.stringify(userinfo))}</pre>`));
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const self = rp;
    if (self === undefined) return send(res, 503, page('Starting', 'starting'));
    const url = new URL(req.url ?? '/', self.origin);
    if (url.pathname === '/login' && req.method === 'GET') {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      transactions.set(state, { verifier, nonce });
      const params: Record<string, string> = {
        redirect_uri: self.redirectUri,
        scope: options.scope,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      };
      for (const name of ['prompt', 'response_mode']) {
        const value = url.searchParams.get(name);
        if (value !== null) params[name] = value;
      }
      return redirect(res, client.buildAuthorizationUrl(self.config, params).href);
    }
    if (url.pathname === '/cb' && (req.method === 'GET' || req.method === 'POST')) return callback(self, req, res, url);
    if (url.pathname === '/logout' && req.method === 'GET') {
      const last = self.signIns.at(-1);
      if (last?.tokens.id_token === undefined) return send(res, 400, page('Not signed in', 'not signed in'));
      const endSession = client.buildEndSessionUrl(self.config, {
        id_token_hint: last.tokens.id_token,
        post_logout_redirect_uri: self.postLogoutRedirectUri,
        state: url.searchParams.get('state') ?? '',
      });
      return redirect(res, endSession.href);
    }
    if (url.pathname === '/logged-out' && req.method === 'GET') {
      const state = url.searchParams.get('state');
      self.logouts.push(state);
      return send(res, 200, page('Signed out', `<h1>Signed out</h1><p id="state">${escapeHtml(state ?? '')}</p>`));
    }
    return send(res, 404, page('Not found', 'not found'));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      rp?.failures.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
      if (!res.headersSent) send(res, 500, page('Relying party error', '<h1>Relying party error</h1>'));
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const redirectUri = `${origin}/cb`;
  const postLogoutRedirectUri = `${origin}/logged-out`;
  try {
    const created = await t.createClient({
      client_name: options.name,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutRedirectUri],
      token_endpoint_auth_method: options.auth,
      scope: options.scope,
    });
    let auth: client.ClientAuth;
    if (options.auth === 'none') {
      auth = client.None();
    } else {
      if (created.clientSecret === undefined) throw new Error('a confidential client without a secret');
      auth = client.ClientSecretBasic(created.clientSecret);
    }
    const config = await client.discovery(new URL(t.issuer), created.clientId, undefined, auth, { execute: [client.allowInsecureRequests] });
    rp = {
      origin,
      clientId: created.clientId,
      clientName: options.name,
      redirectUri,
      postLogoutRedirectUri,
      config,
      signIns: [],
      authErrors: [],
      logouts: [],
      failures: [],
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
    return rp;
  } catch (err) {
    server.close();
    throw err;
  }
}

/** A fresh browser profile (no cookies, no storage) with one page whose errors are collected. */
interface Tab {
  context: BrowserContext;
  page: Page;
  /** Console errors (CSP violations included) and uncaught page errors, on any origin. */
  problems: string[];
  /** Every response the page received: method, status, URL and content type. */
  responses: { method: string; status: number; url: string; contentType: string }[];
}

describe('browser flows end to end (headless Chromium, openid-client relying party) on sqlite', () => {
  let t: TestServer;
  let browser: Browser;
  let userId: string;
  let screenshots: string;
  const parties: RelyingParty[] = [];
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    screenshots = mkdtempSync(join(tmpdir(), 'gatehouse-screens-'));
    t = await startTestServer({ dialect: 'sqlite' });
    await t.createResource(API, ['orders:read']);
    const user = await t.server.storage.users.createUser(
      { username: USERNAME, email: 'alice@example.com', emailVerified: true, name: 'Alice Example' },
      await hashPassword(PASSWORD),
      t.clock.now(),
    );
    userId = user.userId;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    for (const rp of parties) await rp.close();
    await t?.close();
    if (screenshots) rmSync(screenshots, { recursive: true, force: true });
  });

  async function relyingParty(name: string, auth: 'none' | 'client_secret_basic' = 'none', scope = FULL_SCOPE): Promise<RelyingParty> {
    const rp = await startRelyingParty(t, { name, auth, scope });
    parties.push(rp);
    return rp;
  }

  async function newTab(): Promise<Tab> {
    const context = await browser.newContext();
    contexts.push(context);
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const tab: Tab = { context, page, problems: [], responses: [] };
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const where = message.location().url;
      tab.problems.push(`console: ${message.text()} (${where})`);
    });
    page.on('pageerror', (err) => tab.problems.push(`page error: ${err.message}`));
    page.on('response', (response) => {
      tab.responses.push({ method: response.request().method(), status: response.status(), url: response.url(), contentType: response.headers()['content-type'] ?? '' });
    });
    return tab;
  }

  /** Ends a test: nothing went wrong in the browser or in the relying party. */
  async function finish(tab: Tab, ...rps: RelyingParty[]) {
    await tab.context.close();
    expect(tab.problems).toEqual([]);
    for (const rp of rps) expect(rp.failures).toEqual([]);
  }

  /** Fills the real sign-in form by its labels and submits it with its button. */
  async function signIn(p: Page, password = PASSWORD) {
    await p.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
    await p.getByRole('textbox', { name: 'Username' }).fill(USERNAME);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
  }

  async function allow(p: Page, rp: RelyingParty) {
    await p.getByRole('heading', { name: `Allow ${rp.clientName} to access your account?` }).waitFor();
    await p.getByRole('button', { name: 'Allow' }).click();
  }

  async function userinfoShown(p: Page, rp: RelyingParty): Promise<Record<string, unknown>> {
    await p.waitForURL((u) => u.href.startsWith(`${rp.redirectUri}`));
    await p.getByRole('heading', { name: 'Signed in' }).waitFor();
    return JSON.parse((await p.locator('#userinfo').textContent()) ?? '') as Record<string, unknown>;
  }

  /** Signs in through the relying party with login and (first time) consent. */
  async function interactiveSignIn(tab: Tab, rp: RelyingParty, consent = true): Promise<SignIn> {
    const before = rp.signIns.length;
    await tab.page.goto(`${rp.origin}/login`);
    await signIn(tab.page);
    if (consent) await allow(tab.page, rp);
    await userinfoShown(tab.page, rp);
    expect(rp.signIns).toHaveLength(before + 1);
    return rp.signIns[before] as SignIn;
  }

  function expectPng(file: string) {
    expect(statSync(file).size).toBeGreaterThan(1000);
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    // IHDR: width and height, big-endian, right after the signature and the chunk header.
    expect(bytes.readUInt32BE(16)).toBeGreaterThan(0);
    expect(bytes.readUInt32BE(20)).toBeGreaterThan(0);
  }

  const isOAuthError = (err: unknown, code: string) => err instanceof client.ResponseBodyError && err.error === code;

  it('public client: real sign-in form and consent page, code exchange, ID token, userinfo, refresh rotation', async () => {
    const rp = await relyingParty('Public Demo App');
    const tab = await newTab();
    const p = tab.page;

    await p.goto(`${rp.origin}/login`);
    await p.waitForURL((u) => u.href.startsWith(`${t.issuer}/interaction/`));
    await expect(p.title()).resolves.toBe('Sign in · Gatehouse');
    await p.getByText('to continue to Public Demo App').waitFor();
    await p.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
    const loginShot = join(screenshots, 'login.png');
    await p.screenshot({ path: loginShot, fullPage: true });
    expectPng(loginShot);
    await signIn(p);

    await p.getByRole('heading', { name: 'Allow Public Demo App to access your account?' }).waitFor();
    await p.getByText('Signed in as Alice Example.').waitFor();
    const scopes = await p.locator('ul.scopes li code').allTextContents();
    expect(scopes).toEqual(['openid', 'profile', 'email', 'offline_access', 'orders:read']);
    const consentShot = join(screenshots, 'consent.png');
    await p.screenshot({ path: consentShot, fullPage: true });
    expectPng(consentShot);
    await p.getByRole('button', { name: 'Allow' }).click();

    const shown = await userinfoShown(p, rp);
    expect(shown).toEqual({ sub: userId, preferred_username: 'alice', name: 'Alice Example', email: 'alice@example.com', email_verified: true });
    expect(rp.signIns).toHaveLength(1);
    const first = rp.signIns[0] as SignIn;
    expect(first.method).toBe('GET');
    expect(first.userinfo).toEqual(shown);

    // The ID token openid-client validated (signature, iss, aud, exp, iat, nonce).
    const claims = first.claims;
    expect(claims.iss).toBe(t.issuer);
    expect(claims.aud).toBe(rp.clientId);
    expect(claims.sub).toBe(userId);
    expect(claims.nonce).toBe(first.nonce);
    expect(claims.auth_time).toBe(t.clock.now());
    expect(claims.amr).toEqual(['pwd']);
    expect(typeof claims.sid).toBe('string');
    expect(typeof claims.at_hash).toBe('string');
    expect(claims.exp).toBeGreaterThan(claims.iat);

    const tokens = first.tokens;
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'openid', 'orders:read', 'profile']);
    const access = decodeJwt(tokens.access_token);
    expect(access.aud).toEqual([API, t.issuer]);
    expect(access.sub).toBe(userId);
    expect(access.client_id).toBe(rp.clientId);
    expect(typeof tokens.refresh_token).toBe('string');

    // Refresh: a new access token and a rotated refresh token; the old refresh token is spent.
    const refreshed = await client.refreshTokenGrant(rp.config, tokens.refresh_token as string);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(typeof refreshed.refresh_token).toBe('string');
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.claims()?.sub).toBe(userId);
    expect(refreshed.claims()?.sid).toBe(claims.sid);
    await expect(client.fetchUserInfo(rp.config, refreshed.access_token, userId)).resolves.toMatchObject({ sub: userId, email: 'alice@example.com' });
    // RFC 9700 §4.14.2: replaying the rotated token is refused and ends the whole lineage.
    const replay = await client.refreshTokenGrant(rp.config, tokens.refresh_token as string).catch((err: unknown) => err);
    expect(isOAuthError(replay, 'invalid_grant')).toBe(true);
    const successor = await client.refreshTokenGrant(rp.config, refreshed.refresh_token as string).catch((err: unknown) => err);
    expect(isOAuthError(successor, 'invalid_grant')).toBe(true);

    await finish(tab, rp);
  });

  it('confidential client (client_secret_basic) full flow; a second sign-in skips consent', async () => {
    const rp = await relyingParty('Confidential Demo App', 'client_secret_basic');
    const tab = await newTab();
    const first = await interactiveSignIn(tab, rp);
    expect(first.tokens.scope?.split(' ').sort()).toEqual(['email', 'openid', 'orders:read', 'profile']);
    expect(first.claims.aud).toBe(rp.clientId);
    expect(first.claims.nonce).toBe(first.nonce);
    expect(first.userinfo).toEqual({ sub: userId, preferred_username: 'alice', name: 'Alice Example', email: 'alice@example.com', email_verified: true });
    const refreshed = await client.refreshTokenGrant(rp.config, first.tokens.refresh_token as string);
    expect(refreshed.access_token).not.toBe(first.tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(first.tokens.refresh_token);
    await finish(tab, rp);

    // A new browser: sign in again; the grant exists, so no consent page comes between.
    const again = await newTab();
    await again.page.goto(`${rp.origin}/login`);
    await signIn(again.page);
    await userinfoShown(again.page, rp);
    const pages = again.responses.filter((r) => r.url.startsWith(t.issuer) && r.contentType.startsWith('text/html'));
    expect(pages.map((r) => `${r.method} ${r.status}`)).toEqual(['GET 200']);
    expect(rp.signIns).toHaveLength(2);
    const second = rp.signIns[1] as SignIn;
    expect(second.claims.sub).toBe(userId);
    expect(second.claims.sid).not.toBe(first.claims.sid);
    await finish(again, rp);
  });

  it('prompt=none returns a code silently with a session and login_required without one', async () => {
    const rp = await relyingParty('Silent App');
    const tab = await newTab();
    const first = await interactiveSignIn(tab, rp);

    tab.responses.length = 0;
    await tab.page.goto(`${rp.origin}/login?prompt=none`);
    await userinfoShown(tab.page, rp);
    // No Gatehouse page was shown: only redirects on the way to the client.
    const fromIssuer = tab.responses.filter((r) => r.url.startsWith(t.issuer));
    expect(fromIssuer.map((r) => r.status)).toEqual([303]);
    expect(rp.signIns).toHaveLength(2);
    expect((rp.signIns[1] as SignIn).claims.sid).toBe(first.claims.sid);
    await finish(tab, rp);

    const fresh = await newTab();
    await fresh.page.goto(`${rp.origin}/login?prompt=none`);
    await fresh.page.waitForURL((u) => u.href.startsWith(rp.redirectUri));
    await expect(fresh.page.locator('#error').textContent()).resolves.toBe('login_required');
    expect(new URL(fresh.page.url()).searchParams.get('iss')).toBe(t.issuer);
    expect(rp.authErrors).toEqual([{ error: 'login_required', state: expect.any(String) as unknown }]);
    expect(rp.signIns).toHaveLength(2);
    await finish(fresh, rp);
  });

  it('the account page shows the grant and revokes it; its refresh token then fails with invalid_grant', async () => {
    const rp = await relyingParty('Revocable App');
    const tab = await newTab();
    const p = tab.page;
    const signed = await interactiveSignIn(tab, rp);
    expect(await t.server.storage.grants.findGrant(userId, rp.clientId)).toBeDefined();
    // The code exchange marks the grant as used, written behind its answer (the refresh at the same
    // moment is within the minute in which a use is noted once).
    const refreshed = await client.refreshTokenGrant(rp.config, signed.tokens.refresh_token as string);
    const now = new Date(t.clock.now() * 1000).toISOString();
    await vi.waitFor(async () => expect((await t.server.storage.grants.findGrant(userId, rp.clientId))?.lastUsedAt).toBe(t.clock.now()), { timeout: 5000, interval: 100 });

    await p.goto(`${t.issuer}/account`);
    await p.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
    await p.getByText('Signed in as Alice Example.').waitFor();
    const entry = p.getByRole('listitem').filter({ has: p.getByRole('heading', { name: rp.clientName, level: 3 }) });
    await expect(entry.count()).resolves.toBe(1);
    await expect(entry.locator('code').allTextContents()).resolves.toEqual(['openid', 'profile', 'email', 'offline_access', 'orders:read']);
    await expect(entry.locator('time').evaluateAll((times) => times.map((e) => e.getAttribute('datetime')))).resolves.toEqual([now, now]);
    await entry.getByRole('button', { name: `Revoke access for ${rp.clientName}` }).click();
    await p.waitForURL(`${t.issuer}/account`);
    await p.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
    await expect(p.getByRole('heading', { name: rp.clientName, level: 3 }).count()).resolves.toBe(0);
    expect(await t.server.storage.grants.findGrant(userId, rp.clientId)).toBeUndefined();

    const refresh = await client.refreshTokenGrant(rp.config, refreshed.refresh_token as string).catch((err: unknown) => err);
    expect(isOAuthError(refresh, 'invalid_grant')).toBe(true);
    // The access tokens of the grant stop working at userinfo too.
    for (const token of [signed.tokens.access_token, refreshed.access_token]) {
      const userinfo = await client.fetchUserInfo(rp.config, token, userId).catch((err: unknown) => err);
      expect(userinfo).toBeInstanceOf(client.WWWAuthenticateChallengeError);
    }

    // The next sign-in asks for consent again.
    await p.goto(`${rp.origin}/login`);
    await allow(p, rp);
    await userinfoShown(p, rp);
    await finish(tab, rp);
  });

  it('RP-initiated logout: confirmation page, sign out, back at the client with its state; the session is gone', async () => {
    const rp = await relyingParty('Logout App');
    const tab = await newTab();
    const p = tab.page;
    await interactiveSignIn(tab, rp);
    const sessionCookies = async () => (await tab.context.cookies(t.issuer)).filter((c) => c.name.endsWith('session'));
    expect(await sessionCookies()).toHaveLength(1);

    const state = 'logout-state-7f3a';
    await p.goto(`${rp.origin}/logout?state=${state}`);
    await p.waitForURL((u) => u.href.startsWith(`${t.issuer}/logout?`));
    const request = new URL(p.url());
    expect(request.searchParams.get('id_token_hint')).toBe(rp.signIns[0]?.tokens.id_token);
    expect(request.searchParams.get('post_logout_redirect_uri')).toBe(rp.postLogoutRedirectUri);
    await p.getByRole('heading', { name: 'Sign out?', level: 1 }).waitFor();
    await p.getByText(`${rp.clientName} asked to sign you out of Gatehouse.`).waitFor();
    await p.getByText('You are signed in as Alice Example.').waitFor();
    await p.getByRole('button', { name: 'Sign out', exact: true }).click();

    await p.waitForURL((u) => u.href.startsWith(rp.postLogoutRedirectUri));
    expect(new URL(p.url()).searchParams.get('state')).toBe(state);
    await expect(p.locator('#state').textContent()).resolves.toBe(state);
    expect(rp.logouts).toEqual([state]);
    expect(await sessionCookies()).toEqual([]);

    // The session is gone on the server too: prompt=none now answers login_required.
    await p.goto(`${rp.origin}/login?prompt=none`);
    await p.waitForURL((u) => u.href.startsWith(rp.redirectUri));
    await expect(p.locator('#error').textContent()).resolves.toBe('login_required');
    expect(rp.authErrors.map((e) => e.error)).toEqual(['login_required']);
    await finish(tab, rp);
  });

  it('a wrong password shows an accessible error on the sign-in page, and the right one then works', async () => {
    const rp = await relyingParty('Typo App');
    const tab = await newTab();
    const p = tab.page;
    await p.goto(`${rp.origin}/login`);
    await signIn(p, 'not the password');

    const alert = p.getByRole('alert');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toBe('The username or password is not correct.');
    // Still the sign-in page on the server, with the username kept: nothing navigated away.
    expect(p.url().startsWith(`${t.issuer}/interaction/`)).toBe(true);
    await p.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
    await expect(p.getByRole('textbox', { name: 'Username' }).inputValue()).resolves.toBe(USERNAME);
    await expect(p.getByLabel('Password').inputValue()).resolves.toBe('');
    for (const field of [p.getByRole('textbox', { name: 'Username' }), p.getByLabel('Password')]) {
      await expect(field.getAttribute('aria-invalid')).resolves.toBe('true');
      const describedBy = (await field.getAttribute('aria-describedby'))?.split(' ') ?? [];
      expect(describedBy).toContain('login-error');
      await expect(p.locator('#login-error').textContent()).resolves.toBe('The username or password is not correct.');
    }
    const tree = await p.locator('main').ariaSnapshot();
    expect(tree).toContain('alert: The username or password is not correct.');
    expect(rp.signIns).toHaveLength(0);
    expect(rp.authErrors).toHaveLength(0);

    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await allow(p, rp);
    await userinfoShown(p, rp);
    // The failed attempt re-rendered the form (200, no console error); the rest redirected.
    const statuses = tab.responses.filter((r) => r.url.startsWith(t.issuer) && r.method === 'POST').map((r) => r.status);
    expect(statuses).toEqual([200, 303, 303]);
    await finish(tab, rp);
  });

  it('response_mode=form_post: the CSP lets the auto-submit script post the code to the client', async () => {
    const rp = await relyingParty('Form Post App', 'client_secret_basic');
    const tab = await newTab();
    const p = tab.page;
    await p.goto(`${rp.origin}/login?response_mode=form_post`);
    await signIn(p);
    await p.getByRole('heading', { name: `Allow ${rp.clientName} to access your account?` }).waitFor();
    const posted = p.waitForRequest((r) => r.url() === rp.redirectUri && r.method() === 'POST');
    const formPostPage = p.waitForResponse((r) => r.url().startsWith(`${t.issuer}/interaction/`) && r.url().endsWith('/consent') && r.request().method() === 'POST');
    // Awaited below; when an assertion fails first, closing the context rejects them: not unhandled.
    posted.catch(() => undefined);
    formPostPage.catch(() => undefined);
    await p.getByRole('button', { name: 'Allow' }).click();

    const response = await formPostPage;
    expect(response.status()).toBe(200);
    const csp = response.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toMatch(new RegExp(`form-action 'self' ${rp.origin.replace(/[.:/]/g, '\\$&')}(;|$)`));
    expect(response.headers()['content-type']).toBe('text/html; charset=utf-8');
    // Nobody clicked Continue: the page's script submitted the form.
    const request = await posted;
    expect(new URLSearchParams(request.postData() ?? '').get('iss')).toBe(t.issuer);
    const shown = await userinfoShown(p, rp);
    expect(shown.sub).toBe(userId);
    expect(rp.signIns.map((s) => s.method)).toEqual(['POST']);
    expect((rp.signIns[0] as SignIn).claims.nonce).toBe((rp.signIns[0] as SignIn).nonce);

    // prompt=none with form_post: the page comes straight from GET /authorize and submits itself.
    tab.responses.length = 0;
    await p.goto(`${rp.origin}/login?response_mode=form_post&prompt=none`, { waitUntil: 'commit' });
    await userinfoShown(p, rp);
    const documents = tab.responses.filter((r) => r.url.startsWith(t.issuer) && !r.url.startsWith(`${t.issuer}/assets/`));
    expect(documents.map((r) => `${r.method} ${r.status} ${new URL(r.url).pathname}`)).toEqual(['GET 200 /authorize']);
    expect(rp.signIns.map((s) => s.method)).toEqual(['POST', 'POST']);
    await finish(tab, rp);
  });
});
