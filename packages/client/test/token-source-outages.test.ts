import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizationServer } from '../../server/src/server.js';
import { proxiedPostgres, type CuttableProxy } from '../../server/test/helpers/cuttable-proxy.js';
import { TEST_DATABASE_URL, type PostgresSchema } from '../../server/test/helpers/postgres.js';
import { freePort, startTestServer, type TestServer } from '../../server/test/helpers/server.js';
import { createTokenSource, GatehouseClientError } from '../src/index.js';
import { confidentialClient, countingFetch } from './helpers/harness.js';
import { startInstanceAt } from './helpers/outages.js';

/** Every wait the retry loop asked for, and the real wait. */
function recordingSleep(): { sleeps: number[]; sleep: (ms: number, signal?: AbortSignal) => Promise<void> } {
  const sleeps: number[] = [];
  return {
    sleeps,
    sleep: async (ms, signal) => {
      sleeps.push(ms);
      await delay(ms, undefined, { signal });
    },
  };
}

describe('token source retries when the server is down (connection refused), then succeeds', () => {
  let storage: TestServer;
  let creds: { clientId: string; clientSecret: string };
  const instances: AuthorizationServer[] = [];

  beforeAll(async () => {
    storage = await startTestServer();
    creds = await confidentialClient(storage, { scope: 'jobs' });
  });

  afterAll(async () => {
    for (const instance of instances) await instance.close().catch(() => undefined);
    await storage?.close();
  });

  it('keeps retrying with backoff while the instance restarts on the same port', async () => {
    const port = await freePort();
    instances.push(await startInstanceAt(storage, port));
    let restart: Promise<void> | undefined;
    const counter = countingFetch((seen) => {
      // The first refused connection: bring an instance back on the same port, while the client backs off.
      if (seen.outcome === 'error' && restart === undefined) {
        restart = startInstanceAt(storage, port).then((instance) => {
          instances.push(instance);
        });
      }
    });
    const recorder = recordingSleep();
    const tokens = createTokenSource({
      issuer: `http://127.0.0.1:${port}`,
      ...creds,
      scope: 'jobs',
      fetch: counter.fetch,
      sleep: recorder.sleep,
      retry: { attempts: 30, baseDelay: 100, maxDelay: 400 },
    });
    const first = await tokens.getToken();
    expect(counter.count('/token')).toBe(1);

    tokens.invalidate(first);
    await instances[0]?.close();
    const second = await tokens.getToken();
    await restart;
    expect(second).not.toBe(first);
    const outcomes = counter.seen.filter((s) => s.url.pathname === '/token').map((s) => s.outcome);
    expect(outcomes[0]).toBe(200);
    expect(outcomes.at(-1)).toBe(200);
    const failed = outcomes.slice(1, -1);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(new Set(failed)).toEqual(new Set(['error']));
    // One backoff per failed attempt, each within its full-jitter bound.
    expect(recorder.sleeps).toHaveLength(failed.length);
    recorder.sleeps.forEach((ms, i) => expect(ms).toBeLessThanOrEqual(Math.min(400, 100 * 2 ** i)));
    tokens.close();
  });
});

describe.skipIf(TEST_DATABASE_URL === undefined)('token source during a real database outage (503 temporarily_unavailable)', () => {
  let schema: PostgresSchema;
  let proxy: CuttableProxy;
  let t: TestServer;
  let creds: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    let url: string;
    ({ schema, proxy, url } = await proxiedPostgres());
    // cache.refreshInterval 0: every token request reads the client from the database, so a cut
    // database means 503 at once (with the default, the in-memory client copy keeps serving for up to a second).
    t = await startTestServer({ dialect: 'sqlite', config: { databaseUrl: url, cache: { refreshInterval: 0 } } });
    creds = await confidentialClient(t, { scope: 'jobs' });
  });

  afterAll(async () => {
    await proxy?.cut();
    await t?.close();
    await schema?.drop();
  });

  it('honours Retry-After and gets a token once the database is back', async () => {
    const counter = countingFetch(async (seen) => {
      if (seen.outcome === 503 && !proxy.up) await proxy.start();
    });
    const recorder = recordingSleep();
    const tokens = createTokenSource({ issuer: t.issuer, ...creds, scope: 'jobs', fetch: counter.fetch, sleep: recorder.sleep });
    await tokens.getToken(); // discovery and a first token while all is well
    tokens.invalidate();
    await proxy.cut();
    const token = await tokens.getToken();
    expect(typeof token).toBe('string');
    expect(counter.seen.filter((s) => s.url.pathname === '/token').map((s) => s.outcome)).toEqual([200, 503, 200]);
    // Gatehouse says Retry-After: 5; the backoff (at most 250 ms) is longer only if the server asks for less.
    expect(recorder.sleeps).toEqual([5000]);
    tokens.close();
  }, 20_000);

  it('gives up after the configured attempts with temporarily_unavailable (503), retryable', async () => {
    const counter = countingFetch();
    const recorder = recordingSleep();
    const tokens = createTokenSource({ issuer: t.issuer, ...creds, scope: 'jobs', fetch: counter.fetch, sleep: recorder.sleep, retry: { attempts: 3, maxDelay: 50 } });
    await tokens.getToken();
    tokens.invalidate();
    await proxy.cut();
    try {
      const err = await tokens.getToken().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatehouseClientError);
      const failure = err as GatehouseClientError;
      expect({ code: failure.code, status: failure.status, retryable: failure.retryable, retryAfter: failure.retryAfter }).toEqual({
        code: 'temporarily_unavailable',
        status: 503,
        retryable: true,
        retryAfter: 5,
      });
      expect(counter.count('/token')).toBe(1 + 3);
      // Retry-After (5 s) is capped by maxDelay.
      expect(recorder.sleeps).toEqual([50, 50]);
    } finally {
      await proxy.start();
    }
    tokens.close();
  });

  it('hands out the cached token while renewal fails and the token is still valid', async () => {
    let offset = 0;
    const counter = countingFetch();
    const tokens = createTokenSource({
      issuer: t.issuer,
      ...creds,
      scope: 'jobs',
      fetch: counter.fetch,
      now: () => Date.now() + offset,
      retry: { attempts: 2, maxDelay: 10 },
    });
    const first = await tokens.getToken();
    const cached = tokens.peek();
    if (cached === undefined) throw new Error('nothing cached');
    offset = cached.renewAt - Date.now() + 1; // due for renewal, still valid for about a minute
    await proxy.cut();
    try {
      expect(await tokens.getToken()).toBe(first);
      expect(counter.seen.filter((s) => s.url.pathname === '/token').map((s) => s.outcome)).toEqual([200, 503, 503]);
    } finally {
      await proxy.start();
    }
    // Once the database is back, the next call renews.
    const renewed = await tokens.getToken();
    expect(renewed).not.toBe(first);
    tokens.close();
  });
});
