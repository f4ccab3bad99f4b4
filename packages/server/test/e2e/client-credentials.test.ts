import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { basicAuth, DIALECTS, postForm, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';

const ORDERS = 'https://orders.example.com';
const BILLING = 'https://billing.example.com';
const OPAQUE_API = 'https://opaque.example.com';

describe.each(DIALECTS)('client credentials end to end on %s', (dialect: Dialect) => {
  let t: TestServer;
  let as: oauth.AuthorizationServer;
  let basic: { clientId: string; clientSecret: string };
  let post: { clientId: string; clientSecret: string };
  let jwtClient: { clientId: string };
  let jwtKey: CryptoKey;
  let other: { clientId: string; clientSecret: string };
  const insecure = { [oauth.allowInsecureRequests]: true };

  const secretOf = (c: { clientSecret?: string }) => {
    if (c.clientSecret === undefined) throw new Error('no secret');
    return c.clientSecret;
  };

  beforeAll(async () => {
    // Cross-client introspection below needs the permissive mode; the default (restricted) has its own test.
    t = await startTestServer({ dialect, config: { introspection: { restrictToOwnResources: false } } });
    await t.createResource(ORDERS, ['orders:read', 'orders:write']);
    await t.createResource(BILLING, ['billing']);
    await t.createResource(OPAQUE_API, ['opaque:read'], { format: 'opaque', ttl: 120 });
    const b = await t.createClient({ client_name: 'basic', scope: 'orders:read orders:write billing opaque:read', owner: 'team-a' });
    basic = { clientId: b.clientId, clientSecret: secretOf(b) };
    const p = await t.createClient({ scope: 'orders:read', token_endpoint_auth_method: 'client_secret_post' });
    post = { clientId: p.clientId, clientSecret: secretOf(p) };
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'client-key-1', alg: 'ES256', use: 'sig' };
    jwtClient = await t.createClient({ scope: 'orders:read', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } });
    const o = await t.createClient({ scope: 'billing' });
    other = { clientId: o.clientId, clientSecret: secretOf(o) };
    as = await oauth.processDiscoveryResponse(new URL(t.issuer), await oauth.discoveryRequest(new URL(t.issuer), insecure));
  });

  afterAll(async () => {
    await t.close();
  });

  async function tokenWith(c: { clientId: string }, auth: oauth.ClientAuth, params: Record<string, string> = {}) {
    const response = await oauth.clientCredentialsGrantRequest(as, { client_id: c.clientId }, auth, new URLSearchParams(params), insecure);
    return oauth.processClientCredentialsResponse(as, { client_id: c.clientId }, response);
  }

  async function verifyWithJwks(token: string, audience: string) {
    const jwks = createRemoteJWKSet(new URL(`${t.issuer}/jwks`));
    return jwtVerify(token, jwks, { issuer: t.issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] });
  }

  it('publishes RFC 8414 metadata that names only what is enabled', () => {
    expect(as.issuer).toBe(t.issuer);
    expect(as.token_endpoint).toBe(`${t.issuer}/token`);
    expect(as.grant_types_supported).toEqual(['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'client_credentials']);
    expect(as.device_authorization_endpoint).toBe(`${t.issuer}/device_authorization`);
    expect(as.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']);
    expect(as.response_types_supported).toEqual(['code']);
    expect(as.authorization_endpoint).toBe(`${t.issuer}/authorize`);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.response_modes_supported).toEqual(['query', 'form_post']);
    expect(as.userinfo_endpoint).toBe(`${t.issuer}/userinfo`);
    expect(as.end_session_endpoint).toBe(`${t.issuer}/logout`);
    expect(as.id_token_signing_alg_values_supported).toEqual(['RS256']);
    expect(as.subject_types_supported).toEqual(['public']);
    // Nothing unimplemented is advertised.
    expect(as.request_parameter_supported).toBe(false);
    expect(as.claims_parameter_supported).toBe(false);
    expect(as.pushed_authorization_request_endpoint).toBeUndefined();
  });

  it('issues an RFC 9068 JWT with client_secret_basic (oauth4webapi) that jose validates against the JWKS', async () => {
    const result = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'orders:read', resource: ORDERS });
    expect(result.token_type).toBe('bearer');
    expect(result.expires_in).toBe(600);
    expect(result.scope).toBe('orders:read');
    const { payload, protectedHeader } = await verifyWithJwks(result.access_token, ORDERS);
    expect(protectedHeader).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(payload).toMatchObject({ iss: t.issuer, sub: basic.clientId, aud: ORDERS, client_id: basic.clientId, scope: 'orders:read' });
    expect(typeof payload.jti).toBe('string');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);
  });

  it('picks the audience from the scopes when no resource is named', async () => {
    const result = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'billing' });
    const { payload } = await verifyWithJwks(result.access_token, BILLING);
    expect(payload.aud).toBe(BILLING);
  });

  it('without scope, a resource gets the client scopes it defines', async () => {
    const result = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { resource: ORDERS });
    expect(result.scope).toBe('orders:read orders:write');
  });

  it('works with client_secret_post through openid-client', async () => {
    const config = await client.discovery(new URL(t.issuer), post.clientId, undefined, client.ClientSecretPost(post.clientSecret), {
      execute: [client.allowInsecureRequests],
    });
    const tokens = await client.clientCredentialsGrant(config, { scope: 'orders:read' });
    expect(tokens.token_type).toBe('bearer');
    const { payload } = await verifyWithJwks(tokens.access_token, ORDERS);
    expect(payload.client_id).toBe(post.clientId);
  });

  it('works with private_key_jwt through openid-client and oauth4webapi', async () => {
    const config = await client.discovery(new URL(t.issuer), jwtClient.clientId, undefined, client.PrivateKeyJwt({ key: jwtKey, kid: 'client-key-1' }), {
      execute: [client.allowInsecureRequests],
    });
    const tokens = await client.clientCredentialsGrant(config, { scope: 'orders:read' });
    expect((await verifyWithJwks(tokens.access_token, ORDERS)).payload.sub).toBe(jwtClient.clientId);
    const again = await tokenWith(jwtClient, oauth.PrivateKeyJwt({ key: jwtKey, kid: 'client-key-1' }), { scope: 'orders:read' });
    expect(again.scope).toBe('orders:read');
  });

  describe('private_key_jwt assertions', () => {
    const assertion = async (claims: Record<string, unknown>, key: CryptoKey = jwtKey) => {
      const now = Math.floor(Date.now() / 1000);
      const payload = { iss: jwtClient.clientId, sub: jwtClient.clientId, aud: t.issuer, iat: now, exp: now + 60, jti: crypto.randomUUID(), ...claims };
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: 'client-key-1' }).sign(key);
    };
    const send = (jwt: string) =>
      postForm(`${t.issuer}/token`, {
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwt,
      });

    it('accepts a jti once, across requests (replay is refused)', async () => {
      const jwt = await assertion({});
      expect((await send(jwt)).status).toBe(200);
      const replay = await send(jwt);
      expect(replay.status).toBe(401);
      expect(replay.body).toMatchObject({ error: 'invalid_client' });
    });

    it.each([
      ['an unknown signing key', async () => assertion({}, (await generateKeyPair('ES256')).privateKey)],
      ['an expired assertion', async () => assertion({ exp: Math.floor(Date.now() / 1000) - 120 })],
      ['a long-lived assertion', async () => assertion({ exp: Math.floor(Date.now() / 1000) + 3600 })],
      ['a foreign audience', async () => assertion({ aud: 'https://elsewhere.example' })],
      ['a missing jti', async () => assertion({ jti: undefined })],
      ['a future nbf', async () => assertion({ nbf: Math.floor(Date.now() / 1000) + 600 })],
      // The 2025 audience-injection findings: an endpoint URL is not the issuer.
      ['the token endpoint as audience', async () => assertion({ aud: `${t.issuer}/token` })],
      ['an audience array with the issuer and another value', async () => assertion({ aud: ['https://evil.example', t.issuer] })],
    ])('refuses %s with invalid_client', async (_name, make) => {
      const response = await send(await make());
      expect(response.status).toBe(401);
      expect(response.body).toMatchObject({ error: 'invalid_client' });
      expect(response.headers.get('cache-control')).toBe('no-store');
    });

    it('refuses alg none and HMAC assertions', async () => {
      const header = (alg: string) => Buffer.from(JSON.stringify({ alg, kid: 'client-key-1' })).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const body = Buffer.from(JSON.stringify({ iss: jwtClient.clientId, sub: jwtClient.clientId, aud: t.issuer, exp: now + 60, jti: 'n1' })).toString('base64url');
      for (const jwt of [`${header('none')}.${body}.`, `${header('HS256')}.${body}.${Buffer.from('sig').toString('base64url')}`]) {
        const response = await send(jwt);
        expect(response.status).toBe(401);
        expect(response.body).toMatchObject({ error: 'invalid_client' });
      }
    });
  });

  describe('scope and resource rules', () => {
    it.each([
      [{ scope: 'orders:delete' }, 'invalid_scope'],
      [{ scope: 'orders:read', resource: BILLING }, 'invalid_scope'],
      [{ scope: 'orders:read billing' }, 'invalid_target'],
      [{ resource: 'https://unknown.example.com' }, 'invalid_target'],
      [{ resource: 'https://orders.example.com/#frag' }, 'invalid_target'],
      [{ resource: 'relative/path' }, 'invalid_target'],
    ])('%j → %s', async (params, error) => {
      const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', ...params }, { authorization: basicAuth(basic.clientId, basic.clientSecret) });
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error });
    });

    it('refuses a resource the client holds no scope for', async () => {
      const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', resource: ORDERS }, { authorization: basicAuth(other.clientId, other.clientSecret) });
      expect(response.body).toMatchObject({ error: 'invalid_target' });
    });

    it('refuses two resources in one request (one audience per token)', async () => {
      const response = await postForm(
        `${t.issuer}/token`,
        { grant_type: 'client_credentials', resource: [ORDERS, BILLING] },
        { authorization: basicAuth(basic.clientId, basic.clientSecret) },
      );
      expect(response.body).toMatchObject({ error: 'invalid_target' });
    });

    it('answers unauthorized_client for a grant the client is not registered for', async () => {
      // A client registered only for client_credentials asking for a grant the server has:
      // simulate by disabling the grant on the client record directly.
      await t.server.storage.clients.updateClient(
        { ...(await t.server.storage.clients.findClient(other.clientId))!, grantTypes: ['authorization_code'], redirectUris: ['https://app.example/cb'] },
        t.clock.now(),
      );
      const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basicAuth(other.clientId, other.clientSecret) });
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: 'unauthorized_client' });
    });
  });

  describe('introspection and revocation', () => {
    const introspect = (token: string, as: { clientId: string; clientSecret: string } = basic) =>
      postForm(`${t.issuer}/introspect`, { token }, { authorization: basicAuth(as.clientId, as.clientSecret) });

    it('introspects a JWT, then answers inactive after revocation (oauth4webapi + openid-client)', async () => {
      const { access_token } = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'orders:read' });
      const before = await oauth.processIntrospectionResponse(
        as,
        { client_id: basic.clientId },
        await oauth.introspectionRequest(as, { client_id: basic.clientId }, oauth.ClientSecretBasic(basic.clientSecret), access_token, insecure),
      );
      expect(before).toMatchObject({ active: true, client_id: basic.clientId, sub: basic.clientId, aud: ORDERS, scope: 'orders:read', token_type: 'Bearer', iss: t.issuer });

      const config = await client.discovery(new URL(t.issuer), basic.clientId, undefined, client.ClientSecretBasic(basic.clientSecret), {
        execute: [client.allowInsecureRequests],
      });
      await client.tokenRevocation(config, access_token, { token_type_hint: 'access_token' });
      const after = await client.tokenIntrospection(config, access_token);
      expect(after.active).toBe(false);
      expect(Object.keys(after)).toEqual(['active']);
    });

    it('stores opaque tokens hashed, introspects and revokes them', async () => {
      const result = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { resource: OPAQUE_API });
      expect(result.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(result.expires_in).toBe(120);
      expect((await introspect(result.access_token)).body).toMatchObject({ active: true, aud: OPAQUE_API, scope: 'opaque:read' });
      // Another client may not revoke it: 200, and the token stays active.
      const foreign = await postForm(`${t.issuer}/revoke`, { token: result.access_token }, { authorization: basicAuth(other.clientId, other.clientSecret) });
      expect(foreign.status).toBe(200);
      expect((await introspect(result.access_token)).body).toMatchObject({ active: true });
      const own = await postForm(`${t.issuer}/revoke`, { token: result.access_token }, { authorization: basicAuth(basic.clientId, basic.clientSecret) });
      expect(own.status).toBe(200);
      expect(own.headers.get('cache-control')).toBe('no-store');
      expect((await introspect(result.access_token)).body).toEqual({ active: false });
    });

    it('answers inactive for expired, unknown and malformed tokens', async () => {
      const { access_token } = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'billing' });
      t.clock.advance(601);
      try {
        expect((await introspect(access_token)).body).toEqual({ active: false });
      } finally {
        t.clock.advance(-601);
      }
      for (const token of ['unknown', 'a.b.c', `${access_token}x`, access_token.replace(/\.[^.]+$/, '.AAAA'), 'x'.repeat(5000)]) {
        const response = await introspect(token);
        expect(response.status).toBe(200);
        expect(response.body).toEqual({ active: false });
      }
    });

    it('a verified token in the signature cache does not vouch for a tampered copy', async () => {
      const { access_token } = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'billing' });
      expect((await introspect(access_token)).body).toMatchObject({ active: true });
      expect((await introspect(access_token)).body).toMatchObject({ active: true });
      const [h, p, sig] = access_token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      const widened = Buffer.from(JSON.stringify({ ...claims, scope: 'billing orders:write' })).toString('base64url');
      const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
      for (const forged of [`${h}.${widened}.${sig}`, `${h}.${p}.${flipped}`]) {
        expect((await introspect(forged)).body).toEqual({ active: false });
      }
    });

    it('stops honouring tokens of a disabled client', async () => {
      const { access_token } = await tokenWith(post, oauth.ClientSecretPost(post.clientSecret), { scope: 'orders:read' });
      await t.server.storage.clients.setClientDisabled(post.clientId, true, t.clock.now());
      try {
        expect((await introspect(access_token)).body).toEqual({ active: false });
        const refused = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', client_id: post.clientId, client_secret: post.clientSecret });
        expect(refused.status).toBe(401);
      } finally {
        await t.server.storage.clients.setClientDisabled(post.clientId, false, t.clock.now());
      }
    });

    it('restricts introspection to own resources when configured', async () => {
      const restricted = await startTestServer({ dialect, config: { introspection: { restrictToOwnResources: true } } });
      try {
        const api = await restricted.createClient({ scope: '' });
        await restricted.createResource('https://mine.example', ['mine'], { clientId: api.clientId });
        await restricted.createResource('https://theirs.example', ['theirs']);
        const app = await restricted.createClient({ scope: 'mine theirs' });
        const get = async (scope: string) =>
          (await postForm(`${restricted.issuer}/token`, { grant_type: 'client_credentials', scope }, { authorization: basicAuth(app.clientId, app.clientSecret!) })).body as {
            access_token: string;
          };
        const mine = await get('mine');
        const theirs = await get('theirs');
        const ask = (token: string) => postForm(`${restricted.issuer}/introspect`, { token }, { authorization: basicAuth(api.clientId, api.clientSecret!) });
        expect((await ask(mine.access_token)).body).toMatchObject({ active: true, aud: 'https://mine.example' });
        expect((await ask(theirs.access_token)).body).toEqual({ active: false });
      } finally {
        await restricted.close();
      }
    });
  });

  it('records when a client last obtained a token (written behind the token path, within a second or so)', async () => {
    const lastUsedAt = await vi.waitFor(
      async () => {
        const at = (await t.server.storage.clients.findClient(basic.clientId))?.lastUsedAt;
        expect(at).toBeGreaterThan(0);
        return at;
      },
      { timeout: 3000, interval: 100 },
    );
    expect(lastUsedAt).toBeGreaterThan(0);
    expect(lastUsedAt).toBeLessThanOrEqual(t.clock.now());
  });

  it('signs with the kid published in the JWKS', async () => {
    const { access_token } = await tokenWith(basic, oauth.ClientSecretBasic(basic.clientSecret), { scope: 'billing' });
    const jwks = (await (await fetch(`${t.issuer}/jwks`)).json()) as { keys: { kid: string; use: string; alg: string; d?: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(access_token).kid);
    expect(jwks.keys.every((k) => k.use === 'sig' && k.d === undefined)).toBe(true);
    expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
  });
});
