import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { BrowserAgent, createCodeClient, createUser, type CodeClient, type TestUser } from '../../../server/test/helpers/browser-agent.js';
import { basicAuth, postForm, startTestServer, type TestServer } from '../../../server/test/helpers/server.js';
import { login, type FetchLike, type LoginOptions, type LoginOutcome } from '../../src/index.js';

/**
 * Test plumbing for @gatehouse/client against a real Gatehouse: a counting `fetch` (it only
 * observes: every request goes to the real server), headless Chromium on Debian's binary, the
 * real sign-in and consent pages, and the `gatehouse-client` binary as a child process.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const PASSWORD = 'correct horse battery staple';

/** One request seen by {@link countingFetch}. */
export interface SeenRequest {
  method: string;
  url: URL;
  /** The response status, or 'error' when fetch threw. */
  outcome: number | 'error';
}

/**
 * A `fetch` that records every request and delegates to the global fetch; `onResponse` lets a
 * test act between two attempts (e.g. bring a server back after the first failure).
 */
export function countingFetch(onResponse?: (seen: SeenRequest) => void | Promise<void>): { fetch: FetchLike; seen: SeenRequest[]; count(pathname: string): number } {
  const seen: SeenRequest[] = [];
  const counted: FetchLike = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const entry: SeenRequest = { method: init?.method ?? (input instanceof Request ? input.method : 'GET'), url, outcome: 'error' };
    seen.push(entry);
    try {
      const response = await fetch(input, init);
      entry.outcome = response.status;
      return response;
    } finally {
      await onResponse?.(entry);
    }
  };
  return { fetch: counted, seen, count: (pathname) => seen.filter((s) => s.url.pathname === pathname).length };
}

/** RFC 7662 introspection with a client that may see the token (e.g. the resource's own client). */
export async function introspect(t: TestServer, token: string, as: { clientId: string; clientSecret: string }): Promise<Record<string, unknown>> {
  const answer = await postForm(`${t.issuer}/introspect`, { token }, { authorization: basicAuth(as.clientId, as.clientSecret) });
  expect(answer.status).toBe(200);
  return answer.body as Record<string, unknown>;
}

/** Confidential client credentials from `t.createClient`. */
export async function confidentialClient(t: TestServer, metadata: Record<string, unknown>): Promise<{ clientId: string; clientSecret: string }> {
  const created = await t.createClient(metadata);
  if (created.clientSecret === undefined) throw new Error('no client secret');
  return { clientId: created.clientId, clientSecret: created.clientSecret };
}

/** Headless Chromium (Debian's build, driven by playwright-core; nothing is downloaded). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Goes to `url` and signs in and consents on Gatehouse's real pages, as a person would
 * (`decision: 'none'` when the user consented to this client before: no consent page).
 */
export async function signInAndConsent(page: Page, url: string, user: { username: string; password?: string }, decision: 'Allow' | 'Deny' | 'none' = 'Allow'): Promise<void> {
  await page.goto(url);
  await page.getByRole('heading', { name: 'Sign in', level: 1 }).waitFor();
  await page.getByRole('textbox', { name: 'Username' }).fill(user.username);
  await page.getByLabel('Password').fill(user.password ?? PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (decision !== 'none') await page.getByRole('button', { name: decision }).click();
}

export const API = 'https://orders.example.com';
export const SCOPE = 'openid profile email offline_access orders:read';

/** What the user-login suites share: a Gatehouse, an API, a user, a native app and a browser. */
export interface LoginFixture {
  t: TestServer;
  /** The API's own client: it may introspect the API's tokens. */
  api: { clientId: string; clientSecret: string };
  user: TestUser;
  /** A public client registered with `http://127.0.0.1/callback` (RFC 8252 §7.3: any port at request time). */
  app: CodeClient;
  /** A page in a fresh browser profile. */
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export async function startLoginFixture(serverOptions?: Parameters<typeof startTestServer>[0]): Promise<LoginFixture> {
  const t = await startTestServer(serverOptions);
  const contexts: BrowserContext[] = [];
  let browser: Browser | undefined;
  try {
    const api = await confidentialClient(t, { client_name: 'orders api', scope: '' });
    await t.createResource(API, ['orders:read'], { clientId: api.clientId });
    const user = await createUser(t, { username: 'alice', name: 'Alice Example', email: 'alice@example.com', emailVerified: true });
    const app = await createCodeClient(t, { name: 'Orders CLI', redirectUris: ['http://127.0.0.1/callback'], scope: SCOPE });
    const chromiumBrowser = await launchChromium();
    browser = chromiumBrowser;
    return {
      t,
      api,
      user,
      app,
      async newPage() {
        const context = await chromiumBrowser.newContext();
        context.setDefaultTimeout(10_000);
        contexts.push(context);
        return context.newPage();
      },
      async close() {
        for (const context of contexts) await context.close().catch(() => undefined);
        await chromiumBrowser.close();
        await t.close();
      },
    };
  } catch (err) {
    await browser?.close();
    await t.close();
    throw err;
  }
}

const BIN = fileURLToPath(new URL('../../bin/gatehouse-client.js', import.meta.url));

/** A running `gatehouse-client` process. */
export interface CliRun {
  child: ChildProcess;
  /** Resolves with the first match of `pattern` in standard error (rejects after `timeout` ms). */
  waitForStderr(pattern: RegExp, timeout?: number): Promise<RegExpMatchArray>;
  /** Resolves when the process exits (killed after `timeout` ms). */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/**
 * Spawns `node bin/gatehouse-client.js …args` with `env` added to a clean environment (no
 * GATEHOUSE_* variables leak in from the test run). The process is killed after `timeout` ms.
 */
export function runCli(args: string[], env: Record<string, string>, timeout = 20_000): CliRun {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')));
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeout);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout: out, stderr: err });
    });
  });
  return {
    child,
    waitForStderr(pattern, wait = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(err);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${String(pattern)} on stderr within ${wait} ms; stderr so far:\n${err}`));
        }, wait);
        const onExit = () => {
          cleanup();
          reject(new Error(`the process exited before printing ${String(pattern)}; stderr:\n${err}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          child.stderr?.off('data', check);
          child.off('close', onExit);
        };
        child.stderr?.on('data', check);
        child.once('close', onExit);
        check();
      });
    },
    done,
  };
}

/** Runs the binary to its end. */
export function cli(args: string[], env: Record<string, string>, timeout?: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args, env, timeout).done;
}

/**
 * `login()` (loopback) with Gatehouse's real sign-in and consent pages answered by the HTTP
 * BrowserAgent instead of Chromium: the "browser" follows the authorization URL, signs in,
 * consents, and delivers the redirect to the loopback listener. Fast enough for suites that only
 * need a stored session with a real refresh token.
 */
export function agentLogin(t: TestServer, user: TestUser, options: Omit<LoginOptions, 'issuer'> & { clientId: string }): Promise<LoginOutcome> {
  const agent = new BrowserAgent(t.issuer);
  return login({
    issuer: t.issuer,
    scope: SCOPE,
    method: 'loopback',
    onAuthorizationUrl: () => undefined,
    ...options,
    openBrowser: async (url) => {
      const outcome = await agent.authorize(Object.fromEntries(new URL(url).searchParams), { credentials: user });
      if (outcome.kind !== 'redirect' || outcome.response.location === undefined) throw new Error(`the authorization stopped on a ${outcome.pages.join(', ')} page`);
      // The listener answers once the code is redeemed, after this returns: do not wait for it.
      fetch(outcome.response.location).catch(() => undefined);
    },
  });
}

/**
 * A `fetch` to the real server whose token endpoint answers late: the request reaches Gatehouse
 * (which acts on it at once: a refresh token is rotated) and the answer is then held back `delay`
 * ms, as a slow network would — a fired request signal cuts the wait short, as it would cut a slow
 * download. Records the refresh token each token request presented.
 */
export function slowTokenEndpoint(delay: number): { fetch: FetchLike; presented: string[]; answered: Response[] } {
  const presented: string[] = [];
  const answered: Response[] = [];
  const slow: FetchLike = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.pathname !== '/token') return fetch(input, init);
    const refreshToken = new URLSearchParams(String(init?.body)).get('refresh_token');
    if (refreshToken !== null) presented.push(refreshToken);
    const response = await fetch(input, init);
    answered.push(response.clone());
    await new Promise<void>((resolve, reject) => {
      const signal = init?.signal ?? undefined;
      const timer = setTimeout(resolve, delay);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      });
    });
    return response;
  };
  return { fetch: slow, presented, answered };
}

/**
 * The characters of `text` that must not reach a terminal raw: C0 controls other than newline,
 * DEL, C1 controls, bidirectional overrides and isolates. Compared by code point, independently of
 * the library's own escaping.
 */
export function controlCharsIn(text: string): string[] {
  return [...text].filter((c) => {
    const n = c.codePointAt(0) ?? 0;
    return (n < 0x20 && n !== 0x0a) || (n >= 0x7f && n <= 0x9f) || (n >= 0x202a && n <= 0x202e) || (n >= 0x2066 && n <= 0x2069);
  });
}
