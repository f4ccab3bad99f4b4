import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { expectOAuthError, toAnswer, type Answer } from '../helpers/answers.js';
import { BrowserAgent, createUser, pageKind, readForm } from '../helpers/browser-agent.js';
import { DEVICE_GRANT } from '../helpers/device.js';
import { basicAuth, DIALECTS, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';

const API = 'https://api.example.com';
const TEST_REDIS_URL = process.env.TEST_REDIS_URL;

/** Small limits, counted per minute, shared every 20 ms; loopback is a trusted proxy so tests can speak from other addresses. */
const LIMITS: ConfigInput = {
  trustedProxies: ['127.0.0.1'],
  rateLimits: {
    enabled: true,
    syncInterval: 20,
    token: { perClient: 5, perAddress: 8 },
    introspection: { perClient: 3, perAddress: 100 },
    deviceAuthorization: { perClient: 2, perAddress: 3 },
    registration: { perAddress: 2 },
    pages: { perAddress: 3 },
  },
};

async function post(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
  return toAnswer(response.status, response.headers, await response.text());
}

const from = (address: string) => ({ 'x-forwarded-for': address });

/**
 * One client's token budget (5) spent across two instances: 3 requests at the first, then 2 at
 * the second, which learns the shared count when it reports its own first hit; the next request
 * is refused at either.
 */
async function expectOneClientBudget<S>(first: S, second: S, at: (server: S) => Promise<Answer>): Promise<void> {
  for (let i = 0; i < 3; i++) expect((await at(first)).status).toBe(200);
  await delay(150);
  expect((await at(second)).status).toBe(200);
  await delay(150);
  expect((await at(second)).status).toBe(200);
  expectRateLimited(await at(second));
  await delay(150);
  expectRateLimited(await at(first));
}

function expectRateLimited(answer: Answer): void {
  expectOAuthError(answer, 429, 'temporarily_unavailable', 'too many requests; try again later');
  const retryAfter = Number(answer.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

describe.each(DIALECTS)('rate limits on %s', (dialect: Dialect) => {
  let t: TestServer;
  let n = 0;
  /** A fresh confidential client (its own budget). */
  const newClient = async (grantTypes = ['client_credentials']) => {
    const c = await t.createClient({ client_name: `rl ${++n}`, grant_types: grantTypes, scope: 'read' });
    return { clientId: c.clientId, auth: basicAuth(c.clientId, c.clientSecret ?? '') };
  };
  /** A fresh address (its own budget). */
  const newAddress = () => `198.51.100.${++n % 250}`;
  const token = (auth: string, address: string) => post(`${t.issuer}/token`, { grant_type: 'client_credentials', scope: 'read' }, { authorization: auth, ...from(address) });

  beforeAll(async () => {
    t = await startTestServer({ dialect, config: LIMITS });
    await t.createResource(API, ['read']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('per client: over the limit → 429 temporarily_unavailable with Retry-After; other clients are not slowed; the next window admits again', async () => {
    const abusive = await newClient();
    const other = await newClient();
    for (let i = 0; i < 5; i++) expect((await token(abusive.auth, newAddress())).status).toBe(200);
    expectRateLimited(await token(abusive.auth, newAddress()));
    expectRateLimited(await token(abusive.auth, newAddress()));
    expect((await token(other.auth, newAddress())).status).toBe(200);
    t.clock.advance(60);
    expect((await token(abusive.auth, newAddress())).status).toBe(200);
  });

  it('per address: over the limit → 429 whichever clients it uses; other addresses are not slowed', async () => {
    const address = newAddress();
    for (let i = 0; i < 8; i++) expect((await token((await newClient()).auth, address)).status).toBe(200);
    expectRateLimited(await token((await newClient()).auth, address));
    expect((await token((await newClient()).auth, newAddress())).status).toBe(200);
    t.clock.advance(60);
  });

  it('failed authentication spends only the address budget: nobody can use up a client budget without its secret', async () => {
    const victim = await newClient();
    const attacker = newAddress();
    for (let i = 0; i < 8; i++) expectOAuthError(await token(basicAuth(victim.clientId, 'wrong'), attacker), 401, 'invalid_client');
    expectRateLimited(await token(basicAuth(victim.clientId, 'wrong'), attacker));
    for (let i = 0; i < 5; i++) expect((await token(victim.auth, newAddress())).status).toBe(200);
    t.clock.advance(60);
  });

  it('introspection and device authorization have budgets of their own; public clients are limited by address only', async () => {
    const resourceServer = await newClient();
    const issued = (await token((await newClient()).auth, newAddress())).json as { access_token: string };
    const introspect = () => post(`${t.issuer}/introspect`, { token: issued.access_token }, { authorization: resourceServer.auth, ...from(newAddress()) });
    for (let i = 0; i < 3; i++) expect((await introspect()).status).toBe(200);
    expectRateLimited(await introspect());
    // Its token budget is untouched.
    expect((await token(resourceServer.auth, newAddress())).status).toBe(200);

    const device = await newClient([DEVICE_GRANT]);
    for (let i = 0; i < 2; i++) expect((await post(`${t.issuer}/device_authorization`, {}, { authorization: device.auth, ...from(newAddress()) })).status).toBe(200);
    expectRateLimited(await post(`${t.issuer}/device_authorization`, {}, { authorization: device.auth, ...from(newAddress()) }));
    const publicTv = await t.createClient({ grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'read' });
    for (let i = 0; i < 5; i++) expect((await post(`${t.issuer}/device_authorization`, { client_id: publicTv.clientId }, from(newAddress()))).status).toBe(200);
    const address = newAddress();
    for (let i = 0; i < 3; i++) expect((await post(`${t.issuer}/device_authorization`, { client_id: publicTv.clientId }, from(address))).status).toBe(200);
    expectRateLimited(await post(`${t.issuer}/device_authorization`, { client_id: publicTv.clientId }, from(address)));
    t.clock.advance(60);
  });

  it('registration, by address', async () => {
    const iat = await t.createInitialAccessToken([]);
    const address = newAddress();
    const register = () =>
      fetch(`${t.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}`, ...from(address) },
        body: JSON.stringify({ grant_types: ['client_credentials'], client_name: 'self' }),
      });
    for (let i = 0; i < 2; i++) expect((await register()).status).toBe(201);
    const refused = await register();
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: string }).error).toBe('temporarily_unavailable');
    t.clock.advance(60);
  });

  it('sign-in and verification forms, by address: a 429 page with Retry-After', async () => {
    const user = await createUser(t, { username: `rl-user-${dialect}` });
    const address = newAddress();
    const agent = new BrowserAgent(t.issuer);
    const page = await agent.open('/device');
    const form = readForm(page);
    const attempt = () => agent.post(form.action, { ...form.fields, username: user.username, password: 'wrong password' }, from(address));
    for (let i = 0; i < 3; i++) expect((await attempt()).status).toBe(200);
    const refused = await attempt();
    expect(refused.status).toBe(429);
    expect(pageKind(refused.text)).toBe('error');
    expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    t.clock.advance(60);
  });

  it('two instances share the counters (through the database)', async () => {
    const second = await startTestServer({ dialect, config: LIMITS, shareStorageWith: t, clock: t.clock });
    try {
      const client = await newClient();
      const at = (server: TestServer) => post(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'read' }, { authorization: client.auth, ...from(newAddress()) });
      await expectOneClientBudget(t, second, at);
    } finally {
      await second.close();
      t.clock.advance(60);
    }
  });
});

describe.skipIf(TEST_REDIS_URL === undefined)('rate limits shared through Redis (REDIS_URL)', () => {
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    const config: ConfigInput = { ...LIMITS, rateLimits: { ...LIMITS.rateLimits, redisUrl: TEST_REDIS_URL } };
    a = await startTestServer({ config });
    b = await startTestServer({ config, shareStorageWith: a, clock: a.clock });
    await a.createResource(API, ['read']);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('two instances share one budget per client', async () => {
    const created = await a.createClient({ grant_types: ['client_credentials'], scope: 'read' });
    const auth = basicAuth(created.clientId, created.clientSecret ?? '');
    let n = 0;
    const at = (server: TestServer) => post(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'read' }, { authorization: auth, ...from(`203.0.113.${++n}`) });
    await expectOneClientBudget(a, b, at);
    // The database holds no rate-limit counter: Redis does.
    expect(await a.server.storage.handle.db.selectFrom('rate_limit_counters').selectAll().execute()).toEqual([]);
  });
});
