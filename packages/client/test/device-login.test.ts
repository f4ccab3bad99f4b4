import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../../server/test/helpers/browser-agent.js';
import { DEVICE_GRANT } from '../../server/test/helpers/device.js';
import { postForm, type TestServer } from '../../server/test/helpers/server.js';
import { deviceLogin, OAuthResponseError, SessionStore, type DevicePrompt, type FetchLike, type LoginResult } from '../src/index.js';
import { API, introspect, runCli, signInAndConsent, startLoginFixture, type LoginFixture } from './helpers/harness.js';

/**
 * The device flow end to end: @gatehouse/client's deviceLogin polls a real Gatehouse while
 * headless Chromium, as the user on another screen, signs in on the real pages, enters (or
 * follows) the code and approves or denies. Time is the server's TestClock: the client's sleeps
 * advance it, so intervals, slow_down and expiry are exercised without waiting.
 */

const SCOPE = 'openid offline_access orders:read';

/** A wrong code with the same first half as `code` (it counts against that pending request). */
function sameSelector(code: string, n: number): string {
  const alphabet = 'BCDFGHJKLMNPQRSTVWXZ';
  const verifier = [...code.slice(5)].map((c, k) => alphabet[(alphabet.indexOf(c) + 1 + n + k) % 20]).join('');
  return `${code.slice(0, 4)}-${verifier}`;
}

describe('device login (RFC 8628) with @gatehouse/client and headless Chromium', () => {
  let fixture: LoginFixture;
  let t: TestServer;
  let user: TestUser;
  let clientId: string;
  let api: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    fixture = await startLoginFixture({ config: { device: { userCodeAttempts: 3 } } });
    ({ t, user, api } = fixture);
    const created = await t.createClient({ client_name: 'Orders CLI', grant_types: [DEVICE_GRANT, 'refresh_token'], token_endpoint_auth_method: 'none', scope: SCOPE });
    clientId = created.clientId;
  });
  afterAll(async () => {
    await fixture?.close();
  });

  const newPage = () => fixture.newPage();

  /** Types a code on the code-entry page and continues. */
  async function typeCode(page: Page, code: string): Promise<void> {
    await page.getByRole('textbox', { name: 'Code' }).fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
  }

  /** The user follows verification_uri_complete and signs in; the prefilled code still needs Continue. */
  async function followCompleteUri(page: Page, prompt: DevicePrompt): Promise<void> {
    await signInAndConsent(page, prompt.verification_uri_complete ?? '', user, 'none');
    await page.getByRole('button', { name: 'Continue' }).click();
  }

  /**
   * The device's side: deviceLogin with the server's clock, and the user's side, `onPrompt`, run
   * in the browser while it polls (`browsing` settles when the user is done). `sleep` advances the
   * server clock by what the client asks for (except the polls listed in `tooSoon`, which come
   * back at once) and lets the browser run in between.
   */
  function startDevice(options: { onPrompt: (prompt: DevicePrompt) => Promise<void> | void; tooSoon?: number[]; fetch?: FetchLike }): {
    result: Promise<LoginResult>;
    sleeps: number[];
    browsing: () => Promise<void>;
  } {
    const sleeps: number[] = [];
    let browsing: Promise<void> = Promise.resolve();
    const result = deviceLogin({
      issuer: t.issuer,
      clientId,
      scope: SCOPE,
      resource: API,
      openBrowser: false,
      onPrompt: (prompt) => {
        browsing = Promise.resolve(options.onPrompt(prompt));
        // Reported where a test awaits it, not as an unhandled rejection while the device polls on.
        browsing.catch(() => undefined);
      },
      now: () => t.clock.now() * 1000,
      sleep: async (ms) => {
        sleeps.push(ms);
        if (!(options.tooSoon ?? []).includes(sleeps.length)) t.clock.advance(Math.ceil(ms / 1000));
        await new Promise((resolve) => setTimeout(resolve, 20));
      },
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    return { result, sleeps, browsing: () => browsing };
  }

  it('the user follows verification_uri_complete, signs in, checks the code and allows: the client gets tokens', async () => {
    let shown: DevicePrompt | undefined;
    const page = await newPage();
    const device = startDevice({
      onPrompt: async (prompt) => {
        shown = prompt;
        // The code is prefilled, but nothing happens until the user continues and allows.
        await followCompleteUri(page, prompt);
        await page.getByRole('heading', { name: 'Connect Orders CLI?' }).waitFor();
        expect(await page.locator('code.user-code').textContent()).toBe(prompt.user_code);
        await page.getByRole('button', { name: 'Allow' }).click();
        await page.getByRole('heading', { name: 'Device connected' }).waitFor();
      },
    });
    const login = await device.result;
    await device.browsing();
    expect(shown?.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(shown?.verification_uri).toBe(`${t.issuer}/device`);
    const { payload } = await jwtVerify(login.tokens.access_token, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), {
      issuer: t.issuer,
      typ: 'at+jwt',
      currentDate: new Date(t.clock.now() * 1000),
    });
    expect(payload).toMatchObject({ sub: user.user.userId, client_id: clientId });
    expect(payload.aud).toEqual([API, t.issuer]);
    expect(login.tokens.refresh_token).toBeDefined();
    expect(login.idTokenClaims?.sub).toBe(user.user.userId);
    expect(await introspect(t, login.tokens.access_token, api)).toMatchObject({ active: true, sub: user.user.userId });
    // Consent is a grant, listed for the user like one from the code flow.
    expect((await t.server.storage.grants.findGrant(user.user.userId, clientId))?.scope).toEqual(expect.arrayContaining(['openid', 'offline_access', 'orders:read']));
  });

  it('the user types the code (lower case, spaces) after one typo; a poll that comes too soon gets slow_down and the client slows down by 5 s', async () => {
    const page = await newPage();
    const device = startDevice({
      tooSoon: [2],
      onPrompt: async (prompt) => {
        await signInAndConsent(page, prompt.verification_uri, user, 'none');
        await typeCode(page, sameSelector(prompt.user_code, 0));
        await page.getByRole('alert').filter({ hasText: 'That code is not valid or has expired' }).waitFor();
        await typeCode(page, ` ${prompt.user_code.toLowerCase().replace('-', ' ')} `);
        await page.getByRole('button', { name: 'Allow' }).click();
        await page.getByRole('heading', { name: 'Device connected' }).waitFor();
      },
    });
    const login = await device.result;
    await device.browsing();
    expect(login.tokens.access_token).toBeTruthy();
    // The wait before the second poll was cut short: the server answered slow_down, and every
    // later wait is 10 s.
    expect(device.sleeps.slice(0, 2)).toEqual([5000, 5000]);
    expect(device.sleeps.length).toBeGreaterThan(2);
    expect(device.sleeps.slice(2).every((ms) => ms === 10_000)).toBe(true);
  });

  it('the user denies: the client fails with access_denied', async () => {
    const page = await newPage();
    const device = startDevice({
      onPrompt: async (prompt) => {
        await followCompleteUri(page, prompt);
        await page.getByRole('button', { name: 'Deny' }).click();
        await page.getByRole('heading', { name: 'Access denied' }).waitFor();
      },
    });
    await expect(device.result).rejects.toSatisfy((err: unknown) => err instanceof OAuthResponseError && err.code === 'access_denied');
    await device.browsing();
  });

  it('nobody approves: the client fails with expired_token once expires_in has passed', async () => {
    const device = startDevice({ onPrompt: () => undefined });
    await expect(device.result).rejects.toSatisfy((err: unknown) => err instanceof OAuthResponseError && err.code === 'expired_token');
    expect(device.sleeps.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(600_000);
  });

  it('wrong codes against a pending request lock it: the right code is refused and the client gets access_denied', async () => {
    const page = await newPage();
    const device = startDevice({
      onPrompt: async (prompt) => {
        await signInAndConsent(page, prompt.verification_uri, user, 'none');
        for (let i = 0; i < 3; i++) {
          await typeCode(page, sameSelector(prompt.user_code, i));
          await page.getByRole('alert').waitFor();
        }
        await typeCode(page, prompt.user_code);
        await page.getByRole('alert').filter({ hasText: 'That code is not valid or has expired' }).waitFor();
        expect(await page.getByRole('button', { name: 'Allow' }).count()).toBe(0);
      },
    });
    await expect(device.result).rejects.toSatisfy((err: unknown) => err instanceof OAuthResponseError && err.code === 'access_denied');
    await device.browsing();
  });

  it('a used device code replayed is invalid_grant; the tokens already issued keep working', async () => {
    let deviceCode: string | undefined;
    const watching: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      const url = new URL(input instanceof Request ? input.url : input);
      if (url.pathname === '/device_authorization' && response.ok) deviceCode = ((await response.clone().json()) as { device_code: string }).device_code;
      return response;
    };
    const page = await newPage();
    const device = startDevice({
      fetch: watching,
      onPrompt: async (prompt) => {
        await followCompleteUri(page, prompt);
        await page.getByRole('button', { name: 'Allow' }).click();
        await page.getByRole('heading', { name: 'Device connected' }).waitFor();
      },
    });
    const login = await device.result;
    await device.browsing();
    expect(deviceCode).toBeDefined();
    const replay = await postForm(`${t.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: deviceCode ?? '', client_id: clientId });
    expect(replay.status).toBe(400);
    expect(replay.body).toMatchObject({ error: 'invalid_grant' });
    expect(await introspect(t, login.tokens.access_token, api)).toMatchObject({ active: true });
    const refresh = await postForm(`${t.issuer}/token`, { grant_type: 'refresh_token', refresh_token: login.tokens.refresh_token ?? '', client_id: clientId });
    expect(refresh.status).toBe(200);
  });

  it('gatehouse-client login --device, run as a user would: prints the URI and code, waits, stores the session 0600; token prints a live token', async () => {
    const configDir = join(mkdtempSync(join(tmpdir(), 'gatehouse-device-cli-')), 'config');
    try {
      const env = { GATEHOUSE_CLIENT_CONFIG_DIR: configDir, GATEHOUSE_ISSUER: t.issuer, GATEHOUSE_CLIENT_ID: clientId };
      const run = runCli(['login', '--device', '--no-browser', '--scope', SCOPE, '--resource', API], env, 60_000);
      const [, uri] = await run.waitForStderr(/To sign in, visit (\S+)/);
      const [, code] = await run.waitForStderr(/enter the code: ([A-Z]{4}-[A-Z]{4})/);
      expect(uri).toBe(`${t.issuer}/device`);
      const page = await newPage();
      await signInAndConsent(page, uri ?? '', user, 'none');
      await typeCode(page, code ?? '');
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.getByRole('heading', { name: 'Device connected' }).waitFor();
      // The process polls on real time (its own clock); the server clock moves with it.
      const ticker = setInterval(() => t.clock.advance(1), 1000);
      const done = await run.done.finally(() => clearInterval(ticker));
      expect(done.code, done.stderr).toBe(0);
      const file = new SessionStore(configDir).pathFor(t.issuer, clientId);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const token = await runCli(['token'], env).done;
      expect(token.code, token.stderr).toBe(0);
      expect(await introspect(t, token.stdout.trim(), api)).toMatchObject({ active: true, sub: user.user.userId, client_id: clientId });
    } finally {
      rmSync(join(configDir, '..'), { recursive: true, force: true });
    }
  });
});
