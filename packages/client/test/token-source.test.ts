import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, startTestServer, type Dialect, type TestServer } from '../../server/test/helpers/server.js';
import { createTokenSource, GatehouseClientError, OAuthResponseError, type TokenSourceOptions } from '../src/index.js';
import { confidentialClient, countingFetch } from './helpers/harness.js';

const ORDERS = 'https://orders.example.com';
const SHORT = 'https://short.example.com';

/** Awaits a promise that must reject; returns the error. */
async function failure(promise: Promise<unknown>): Promise<GatehouseClientError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatehouseClientError);
  return err as GatehouseClientError;
}

describe.each(DIALECTS)('service token source against a real Gatehouse on %s', (dialect: Dialect) => {
  let t: TestServer;
  let creds: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    t = await startTestServer({ dialect });
    await t.createResource(ORDERS, ['orders:read', 'orders:write']);
    await t.createResource(SHORT, ['short:read'], { ttl: 3 });
    creds = await confidentialClient(t, { client_name: 'orders worker', scope: 'orders:read short:read' });
  });

  afterAll(async () => {
    await t?.close();
  });

  const source = (extra: Partial<TokenSourceOptions> = {}) => createTokenSource({ issuer: t.issuer, ...creds, scope: 'orders:read', resource: ORDERS, ...extra });

  it('100 concurrent callers cause one discovery and one token request, and share the token', async () => {
    const counter = countingFetch();
    const tokens = source({ fetch: counter.fetch });
    const results = await Promise.all(Array.from({ length: 100 }, () => tokens.getToken()));
    expect(new Set(results).size).toBe(1);
    expect(counter.count('/token')).toBe(1);
    expect(counter.count('/.well-known/openid-configuration')).toBe(1);
    // Cached: more callers, no more requests.
    await Promise.all(Array.from({ length: 20 }, () => tokens.getToken()));
    expect(counter.count('/token')).toBe(1);

    const [token] = results as [string];
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), { issuer: t.issuer, audience: ORDERS, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ client_id: creds.clientId, scope: 'orders:read' });
    const cached = tokens.peek();
    expect(cached).toMatchObject({ access_token: token, token_type: 'bearer', scope: 'orders:read' });
    tokens.close();
  });

  it('renews before expiry: not before the renewal time, once after it, then the new token is cached', async () => {
    let offset = 0;
    const now = () => Date.now() + offset;
    const counter = countingFetch();
    // The server's tokens live 600 s: renewal is due 60 s before expiry, minus the jitter (random 0.5 → 15 s).
    const tokens = source({ fetch: counter.fetch, now, random: () => 0.5 });
    const first = await tokens.getToken();
    const cached = tokens.peek();
    if (cached === undefined) throw new Error('nothing cached');
    expect(cached.expiresAt - now()).toBeGreaterThan(599_000);
    expect(cached.expiresAt - cached.renewAt).toBe(60_000 + 15_000);

    offset = cached.renewAt - Date.now() - 1_000;
    expect(await tokens.getToken()).toBe(first);
    expect(counter.count('/token')).toBe(1);

    offset = cached.renewAt - Date.now() + 1;
    const renewed = await Promise.all(Array.from({ length: 10 }, () => tokens.getToken()));
    expect(new Set(renewed).size).toBe(1);
    expect(renewed[0]).not.toBe(first);
    expect(counter.count('/token')).toBe(2);
    expect(await tokens.getToken()).toBe(renewed[0]);
    expect(counter.count('/token')).toBe(2);
    tokens.close();
  });

  it('spreads renewals: the jitter moves the renewal time by up to 30 s', async () => {
    const early = source({ random: () => 0.999 });
    const late = source({ random: () => 0 });
    await Promise.all([early.getToken(), late.getToken()]);
    const a = early.peek();
    const b = late.peek();
    if (a === undefined || b === undefined) throw new Error('nothing cached');
    expect(b.expiresAt - b.renewAt).toBe(60_000);
    expect(a.expiresAt - a.renewAt).toBeGreaterThan(89_000);
    early.close();
    late.close();
  });

  it('renews in the background before a short-lived token expires, without a caller waiting', async () => {
    const counter = countingFetch();
    // 3 s tokens, renewed 2 s before expiry, no jitter: a new token about 1 s after the first.
    const tokens = source({ fetch: counter.fetch, scope: 'short:read', resource: SHORT, refreshBefore: 2, backgroundRefresh: true, random: () => 0 });
    const first = await tokens.getToken();
    expect(tokens.peek()?.expiresAt).toBeLessThanOrEqual(Date.now() + 3_000);
    const deadline = Date.now() + 5_000;
    while (tokens.peek()?.access_token === first && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(counter.count('/token')).toBe(2);
    const second = tokens.peek()?.access_token;
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(await tokens.getToken()).toBe(second);
    tokens.close();
  });

  it('invalid_client (wrong secret): exactly one token request, never retried, no secret in the message', async () => {
    const counter = countingFetch();
    const wrongSecret = `${creds.clientSecret.slice(0, -4)}AAAA`;
    const tokens = source({ fetch: counter.fetch, clientSecret: wrongSecret, retry: { attempts: 5, baseDelay: 1 } });
    const err = await failure(tokens.getToken());
    expect(err).toBeInstanceOf(OAuthResponseError);
    expect({ code: err.code, status: err.status, retryable: err.retryable }).toEqual({ code: 'invalid_client', status: 401, retryable: false });
    expect(counter.count('/token')).toBe(1);
    expect(err.message).not.toContain(wrongSecret);
    expect(err.message).not.toContain(creds.clientSecret);
    // A later call tries again (once): nothing bad was cached.
    await failure(tokens.getToken());
    expect(counter.count('/token')).toBe(2);
    tokens.close();
  });

  it('invalid_scope and unknown resources are refused once, not retried', async () => {
    const counter = countingFetch();
    const scope = source({ fetch: counter.fetch, scope: 'orders:write', retry: { attempts: 5, baseDelay: 1 } });
    expect((await failure(scope.getToken())).code).toBe('invalid_scope');
    expect(counter.count('/token')).toBe(1);
    const target = source({ fetch: counter.fetch, resource: 'https://unknown.example.com', retry: { attempts: 5, baseDelay: 1 } });
    expect((await failure(target.getToken())).code).toBe('invalid_target');
    expect(counter.count('/token')).toBe(2);
  });

  it('authenticates with private_key_jwt (RFC 7523)', async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'worker-key-1', alg: 'ES256', use: 'sig' };
    const jwtClient = await t.createClient({ scope: 'orders:read', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } });
    const tokens = createTokenSource({ issuer: t.issuer, clientId: jwtClient.clientId, privateKey: pair.privateKey, privateKeyId: 'worker-key-1', scope: 'orders:read', resource: ORDERS });
    const token = await tokens.getToken();
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), { issuer: t.issuer, audience: ORDERS });
    expect(payload.sub).toBe(jwtClient.clientId);
    tokens.close();
  });

  it('client_secret_post when asked', async () => {
    const post = await confidentialClient(t, { scope: 'orders:read', token_endpoint_auth_method: 'client_secret_post' });
    const tokens = createTokenSource({ issuer: t.issuer, ...post, tokenEndpointAuthMethod: 'client_secret_post', scope: 'orders:read' });
    expect(typeof (await tokens.getToken())).toBe('string');
    // The same client with HTTP Basic is refused: Gatehouse holds clients to their registered method.
    const basic = createTokenSource({ issuer: t.issuer, ...post, scope: 'orders:read' });
    expect((await failure(basic.getToken())).code).toBe('invalid_client');
  });

  it('close() stops the source: later calls fail with aborted', async () => {
    const tokens = source();
    await tokens.getToken();
    tokens.close();
    expect((await failure(tokens.getToken())).code).toBe('aborted');
  });
});

describe('token source configuration', () => {
  it('refuses an http issuer that is not loopback, unless dangerously allowed', () => {
    expect(() => createTokenSource({ issuer: 'http://id.example.com', clientId: 'x', clientSecret: 'y' })).toThrow(/https/);
    expect(() => createTokenSource({ issuer: 'http://id.example.com', clientId: 'x', clientSecret: 'y', dangerouslyAllowInsecureHttp: true })).not.toThrow();
  });

  it('a discovery failure (nothing listening) is a retryable network_error after the configured attempts', async () => {
    const counter = countingFetch();
    const sleeps: number[] = [];
    const tokens = createTokenSource({
      issuer: 'http://127.0.0.1:9',
      clientId: 'x',
      clientSecret: 'y',
      fetch: counter.fetch,
      retry: { attempts: 3, baseDelay: 10 },
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    const err = await failure(tokens.getToken());
    expect({ code: err.code, retryable: err.retryable }).toEqual({ code: 'network_error', retryable: true });
    expect(counter.seen).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    // Full jitter: random in [0, 10] then [0, 20].
    expect(sleeps[0]).toBeLessThanOrEqual(10);
    expect(sleeps[1]).toBeLessThanOrEqual(20);
  });
});
