import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, pkcePair } from '../helpers/browser-agent.js';
import { startGatehouseCluster, stopAllGatehouseProcesses, type GatehouseCluster, type GatehouseInstance } from '../helpers/cluster.js';
import { TEST_DATABASE_URL } from '../helpers/postgres.js';
import { basicAuth, postForm } from '../helpers/server.js';

/**
 * Three real `gatehouse start` processes on one PostgreSQL schema, one issuer and one
 * key-encryption key, as behind a load balancer: every flow here starts at one instance and
 * continues at another, so anything an instance kept to itself would show.
 */

const API = 'https://api.example.com';
const REDIRECT_URI = 'https://client.example.com/cb';
const PASSWORD = 'correct horse battery staple';

interface TokenBody {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  error?: string;
}

describe.skipIf(TEST_DATABASE_URL === undefined)('three instances on one PostgreSQL database', { timeout: 60_000 }, () => {
  let cluster: GatehouseCluster;
  let a: GatehouseInstance;
  let b: GatehouseInstance;
  let c: GatehouseInstance;
  /** A public code-flow client (authorization_code + refresh_token). */
  let appId: string;
  /** The API's own client: may introspect the API's tokens (introspection.restrictToOwnResources). */
  let apiAuth: string;
  /** A private_key_jwt client and its key. */
  let jwtClientId: string;
  let jwtKey: CryptoKey;
  /** One browser, signed in once (at a), consent given once. */
  let browser: BrowserAgent;

  beforeAll(async () => {
    cluster = await startGatehouseCluster({ size: 3 });
    [a, b, c] = cluster.instances as [GatehouseInstance, GatehouseInstance, GatehouseInstance];
    // Everything is created with the CLI against the shared database while the instances run.
    const api = await cluster.cliJson<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'orders api']);
    apiAuth = basicAuth(api.client_id, api.client_secret);
    await cluster.cliJson(['resources', 'create', '--identifier', API, '--name', 'API', '--scope', 'api:read', '--client', api.client_id]);
    const app = await cluster.cliJson<{ client_id: string }>([
      'clients', 'create', '--name', 'app', '--auth-method', 'none', '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
      '--redirect-uri', REDIRECT_URI, '--scope', 'openid offline_access api:read',
    ]);
    appId = app.client_id;
    await cluster.cliJson(['users', 'create', '--username', 'alice'], `${PASSWORD}\n`);
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey;
    const jwksFile = join(cluster.dataDir, '..', 'client-jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'svc-1', alg: 'ES256', use: 'sig' }] }));
    const svc = await cluster.cliJson<{ client_id: string }>(['clients', 'create', '--name', 'svc', '--auth-method', 'private_key_jwt', '--jwks-file', jwksFile, '--scope', 'api:read']);
    jwtClientId = svc.client_id;

    // Sign in and consent once, at a; later authorizations go straight back with a code.
    browser = new BrowserAgent(a.url);
    const { challenge } = await pkcePair();
    const first = await browser.authorize(authorizeParams(challenge), { credentials: { username: 'alice', password: PASSWORD } });
    expect(first.pages).toEqual(['login', 'consent']);
    expect(first.code).toBeDefined();
  });

  afterAll(async () => {
    try {
      await cluster?.close();
    } finally {
      stopAllGatehouseProcesses();
    }
  });

  function authorizeParams(challenge: string): Record<string, string> {
    return {
      response_type: 'code', client_id: appId, redirect_uri: REDIRECT_URI, scope: 'openid offline_access api:read',
      state: 'st', nonce: 'n-0S6', code_challenge: challenge, code_challenge_method: 'S256',
    };
  }

  /** A fresh code from `at`, with the browser's session (the same cookies, whichever instance set them). */
  async function codeFrom(at: GatehouseInstance): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = await pkcePair();
    const agent = new BrowserAgent(at.url);
    for (const [name, value] of browser.cookies) agent.cookies.set(name, value);
    const out = await agent.authorize(authorizeParams(challenge));
    expect(out.pages).toEqual([]);
    expect(out.iss).toBe(cluster.issuer);
    if (out.code === undefined) throw new Error(`no code from ${at.name}: ${out.error ?? out.response.status}`);
    return { code: out.code, verifier };
  }

  const redeem = (at: GatehouseInstance, code: string, verifier: string) =>
    postForm(`${at.url}/token`, { grant_type: 'authorization_code', client_id: appId, code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
  const refresh = (at: GatehouseInstance, refreshToken: string) => postForm(`${at.url}/token`, { grant_type: 'refresh_token', client_id: appId, refresh_token: refreshToken });
  const jwks = async (at: GatehouseInstance) => (await (await fetch(`${at.url}/jwks`)).json()) as JSONWebKeySet;
  const kids = async (at: GatehouseInstance) => (await jwks(at)).keys.map((k) => k.kid ?? '').sort();
  async function introspect(at: GatehouseInstance, token: string): Promise<{ active: boolean } & Record<string, unknown>> {
    const res = await postForm(`${at.url}/introspect`, { token }, { authorization: apiAuth });
    expect(res.status).toBe(200);
    return res.body as { active: boolean };
  }
  async function tokensFrom(issuedAt: GatehouseInstance, redeemedAt: GatehouseInstance): Promise<Required<Pick<TokenBody, 'access_token' | 'refresh_token' | 'id_token'>>> {
    const { code, verifier } = await codeFrom(issuedAt);
    const res = await redeem(redeemedAt, code, verifier);
    expect(res.status).toBe(200);
    const body = res.body as TokenBody;
    if (body.access_token === undefined || body.refresh_token === undefined || body.id_token === undefined) throw new Error(`incomplete token response: ${res.text}`);
    return { access_token: body.access_token, refresh_token: body.refresh_token, id_token: body.id_token };
  }

  it('started at once on an empty database, the instances share one schema and one key set', async () => {
    const sets = await Promise.all(cluster.instances.map(kids));
    expect(sets[0]).toHaveLength(2); // access_token and id_token keys
    expect(sets[1]).toEqual(sets[0]);
    expect(sets[2]).toEqual(sets[0]);
    for (const instance of cluster.instances) expect(instance.starts).toBe(1);
  });

  it('a browser session and consent recorded through one instance are honoured by the others', async () => {
    // codeFrom checks that no page was shown: the session cookie a set works at b and c.
    for (const at of [b, c]) expect((await codeFrom(at)).code).toMatch(/^\S{40,}$/);
  });

  it('a code issued by one instance is redeemed at a second and refreshed at a third', async () => {
    const { code, verifier } = await codeFrom(a);
    const redeemed = await redeem(b, code, verifier);
    expect(redeemed.status).toBe(200);
    const first = redeemed.body as Required<TokenBody>;
    // The ID token verifies against the third instance's key set, with the nonce of the request.
    const idToken = await jwtVerify(first.id_token, createLocalJWKSet(await jwks(c)), { issuer: cluster.issuer, audience: appId });
    expect(idToken.payload.nonce).toBe('n-0S6');
    const access = await jwtVerify(first.access_token, createLocalJWKSet(await jwks(c)), { issuer: cluster.issuer, audience: API, typ: 'at+jwt' });
    expect(access.payload.client_id).toBe(appId);

    const refreshed = await refresh(c, first.refresh_token);
    expect(refreshed.status).toBe(200);
    const second = refreshed.body as Required<TokenBody>;
    expect(second.refresh_token).not.toBe(first.refresh_token);
    for (const at of [a, b, c]) {
      // With openid the token is also for the issuer (userinfo).
      expect(await introspect(at, first.access_token)).toMatchObject({ active: true, client_id: appId, aud: [API, cluster.issuer] });
      expect(await introspect(at, second.access_token)).toMatchObject({ active: true, client_id: appId });
    }
    // Userinfo at the first instance answers for the access token a third one issued.
    const userinfo = await fetch(`${a.url}/userinfo`, { headers: { authorization: `Bearer ${second.access_token}` } });
    expect(userinfo.status).toBe(200);
    expect(((await userinfo.json()) as { sub: string }).sub).toBe(idToken.payload.sub);
    // The rotated refresh token is spent everywhere (and its reuse ends the lineage).
    const reused = await refresh(a, first.refresh_token);
    expect({ status: reused.status, error: (reused.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await refresh(b, second.refresh_token)).status).toBe(400);
    expect(await introspect(c, second.access_token)).toEqual({ active: false });
  });

  it('a key rotated with the CLI is in every JWKS and signs at every instance within 3 s (keys.refreshInterval 1 s)', async () => {
    const token = async (at: GatehouseInstance) => {
      const res = await postForm(`${at.url}/token`, { grant_type: 'client_credentials' }, { authorization: apiAuth });
      expect(res.status).toBe(200);
      return (res.body as { access_token: string }).access_token;
    };
    const before = await token(a);
    const oldKid = decodeProtectedHeader(before).kid;
    const { rotated } = await cluster.cliJson<{ rotated: Array<{ purpose: string; kid: string }> }>(['keys', 'rotate', '--purpose', 'access_token', '--immediate']);
    // The new key is committed once the command has exited.
    const started = Date.now();
    const newKid = rotated[0]?.kid;
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);
    // Each instance re-reads the key set every second: it publishes and signs with the new key
    // within that interval, plus a poll (50 ms) and a request. Bound: 3 intervals, for a busy machine.
    const BOUND_MS = 3000;
    const seenAfter = await Promise.all(
      cluster.instances.map(async (at) => {
        for (;;) {
          const elapsed = Date.now() - started;
          if ((await kids(at)).includes(newKid ?? '') && decodeProtectedHeader(await token(at)).kid === newKid) return elapsed;
          if (elapsed > BOUND_MS) throw new Error(`${at.name} did not switch to ${String(newKid)} within ${BOUND_MS} ms`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    for (const ms of seenAfter) expect(ms).toBeLessThanOrEqual(BOUND_MS);
    // The token signed before the rotation still verifies at every instance: the old key stays published.
    for (const at of cluster.instances) {
      const set = createLocalJWKSet(await jwks(at));
      await expect(jwtVerify(before, set, { issuer: cluster.issuer, typ: 'at+jwt' })).resolves.toBeDefined();
      expect(await kids(at)).toContain(oldKid);
    }
  });

  it('a revocation at one instance is honoured by all of them at once', async () => {
    const first = await tokensFrom(a, b);
    for (const at of [a, b, c]) expect((await introspect(at, first.access_token)).active).toBe(true);
    // The client revokes its access token at a: b and c say inactive on the very next request.
    expect((await postForm(`${a.url}/revoke`, { token: first.access_token, client_id: appId })).status).toBe(200);
    expect(await introspect(b, first.access_token)).toEqual({ active: false });
    expect(await introspect(c, first.access_token)).toEqual({ active: false });
    expect((await fetch(`${c.url}/userinfo`, { headers: { authorization: `Bearer ${first.access_token}` } })).status).toBe(401);

    // Revoking the refresh token at c ends the lineage: refresh at a and b refused, access tokens inactive.
    const refreshed = await refresh(b, first.refresh_token);
    expect(refreshed.status).toBe(200);
    const second = refreshed.body as Required<TokenBody>;
    expect((await introspect(a, second.access_token)).active).toBe(true);
    expect((await postForm(`${c.url}/revoke`, { token: second.refresh_token, client_id: appId })).status).toBe(200);
    const refused = await refresh(a, second.refresh_token);
    expect({ status: refused.status, error: (refused.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await introspect(a, second.access_token)).toEqual({ active: false });
    expect(await introspect(b, second.access_token)).toEqual({ active: false });
  });

  describe('private_key_jwt', () => {
    const assertion = async () => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: jwtClientId, sub: jwtClientId, aud: cluster.issuer, iat: now, exp: now + 60, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'svc-1' })
        .sign(jwtKey);
    };
    const send = (at: GatehouseInstance, jwt: string) =>
      postForm(`${at.url}/token`, {
        grant_type: 'client_credentials',
        scope: 'api:read',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwt,
      });

    it('an assertion used at one instance is refused at the others (jti replay)', async () => {
      const jwt = await assertion();
      expect((await send(a, jwt)).status).toBe(200);
      for (const at of [b, c, a]) {
        const replay = await send(at, jwt);
        expect({ status: replay.status, error: (replay.body as TokenBody).error }).toEqual({ status: 401, error: 'invalid_client' });
      }
    });

    it('one assertion sent 15 times at once over the three instances: exactly one token', async () => {
      const jwt = await assertion();
      const results = await Promise.all(Array.from({ length: 15 }, (_, i) => send(cluster.instances[i % 3] as GatehouseInstance, jwt)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) expect({ status: r.status, error: (r.body as TokenBody).error }).toEqual({ status: 401, error: 'invalid_client' });
    });
  });

  it.each([0, 1, 2])('50 concurrent redemptions of one code (issued by instance %i) over the three instances: exactly one succeeds, no 5xx', async (issuer) => {
    const { code, verifier } = await codeFrom(cluster.instances[issuer] as GatehouseInstance);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => redeem(cluster.instances[i % 3] as GatehouseInstance, code, verifier)));
    expect(results.filter((r) => r.status >= 500).map((r) => `${r.status} ${r.text}`)).toEqual([]);
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expect({ status: r.status, error: (r.body as TokenBody).error }).toEqual({ status: 400, error: 'invalid_grant' });
    // Spent for good, at every instance.
    for (const at of cluster.instances) expect((await redeem(at, code, verifier)).status).toBe(400);
  });
});
