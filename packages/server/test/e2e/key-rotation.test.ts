import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, DIALECTS, postForm, startTestServer, TestClock, type Dialect, type TestServer } from '../helpers/server.js';

const API = 'https://api.example.com';

describe.each(DIALECTS)('signing key rotation on %s', (dialect: Dialect) => {
  const clock = new TestClock();
  let a: TestServer;
  let b: TestServer;
  let creds: { clientId: string; clientSecret: string };
  // Short periods so the test can step through a whole rotation.
  // Instances behind one load balancer share one issuer; each listens on its own port here.
  const config = {
    issuer: 'http://127.0.0.1:4999',
    keys: { rotationInterval: '1d', prePublication: '60s', refreshInterval: '30s' },
    tokens: { maxAccessTokenTtl: '1h' },
  };

  beforeAll(async () => {
    a = await startTestServer({ dialect, clock, config });
    // A second instance on the same database: it learns about rotations by re-reading, not restarting.
    b = await startTestServer({ dialect, clock, config, shareStorageWith: a });
    await a.createResource(API, ['api']);
    const c = await a.createClient({ scope: 'api' });
    creds = { clientId: c.clientId, clientSecret: c.clientSecret ?? '' };
  });

  afterAll(async () => {
    await b.close();
    await a.close();
  });

  const token = async (server: TestServer) => {
    const response = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'api' }, { authorization: basicAuth(creds.clientId, creds.clientSecret) });
    expect(response.status).toBe(200);
    return (response.body as { access_token: string }).access_token;
  };
  const jwks = async (server: TestServer) => (await (await fetch(`${server.url}/jwks`)).json()) as JSONWebKeySet;
  const kidsOf = async (server: TestServer) => (await jwks(server)).keys.map((k) => k.kid);
  const introspect = async (server: TestServer, t: string) =>
    (await postForm(`${server.url}/introspect`, { token: t }, { authorization: basicAuth(creds.clientId, creds.clientSecret) })).body as { active: boolean };
  const refreshBoth = async () => {
    await a.server.keys.refresh(clock.now());
    await b.server.keys.refresh(clock.now());
  };

  it('both instances share one key set from the first start', async () => {
    expect((await kidsOf(a)).sort()).toEqual((await kidsOf(b)).sort());
    expect(await kidsOf(a)).toHaveLength(2);
  });

  it('publishes the next key before it signs, then signs with it; old tokens keep validating', async () => {
    const before = await token(a);
    const oldKid = decodeProtectedHeader(before).kid;
    const newKid = await a.server.keys.rotate('access_token', clock.now());
    expect(newKid).not.toBe(oldKid);

    // Pre-publication: every instance publishes the new key (after its periodic re-read) but keeps signing with the old one.
    await b.server.keys.refresh(clock.now());
    expect(await kidsOf(b)).toContain(newKid);
    expect(await kidsOf(a)).toContain(newKid);
    expect(decodeProtectedHeader(await token(b)).kid).toBe(oldKid);

    clock.advance(61);
    await refreshBoth();
    const after = await token(b);
    expect(decodeProtectedHeader(after).kid).toBe(newKid);
    expect(decodeProtectedHeader(await token(a)).kid).toBe(newKid);

    // The token signed before the rotation still validates against the published set, and introspects as active.
    const set = createLocalJWKSet(await jwks(a));
    await expect(jwtVerify(before, set, { issuer: a.issuer, audience: API, typ: 'at+jwt' })).resolves.toBeDefined();
    await expect(jwtVerify(after, set, { issuer: a.issuer, audience: API, typ: 'at+jwt' })).resolves.toBeDefined();
    expect(await introspect(b, before)).toMatchObject({ active: true });

    // Once every token the old key signed has expired, the old key leaves the JWKS.
    clock.advance(3600 + 30 + 60 + 1);
    await refreshBoth();
    expect(await kidsOf(a)).not.toContain(oldKid);
    expect(await kidsOf(b)).not.toContain(oldKid);
    expect(await kidsOf(a)).toContain(newKid);
  });

  it('rotates on schedule, once, however many instances notice', async () => {
    const current = decodeProtectedHeader(await token(a)).kid;
    clock.advance(86_400);
    const [ra, rb] = await Promise.all([a.server.keys.ensureKeys(clock.now()), b.server.keys.ensureKeys(clock.now())]);
    // Exactly one instance rotated each purpose.
    expect([...ra, ...rb].sort()).toEqual(['access_token', 'id_token']);
    await refreshBoth();
    const published = await kidsOf(a);
    expect(published).toContain(current);
    expect(published.length).toBe(4);
    // Nothing more is due until the next interval.
    expect(await a.server.keys.ensureKeys(clock.now())).toEqual([]);
    clock.advance(61);
    await refreshBoth();
    expect(decodeProtectedHeader(await token(b)).kid).not.toBe(current);
  });

  it('an immediate rotation signs at once (suspected compromise)', async () => {
    const kid = await a.server.keys.rotate('access_token', clock.now(), { immediate: true });
    await b.server.keys.refresh(clock.now());
    expect(decodeProtectedHeader(await token(b)).kid).toBe(kid);
  });
});
