/**
 * RFC 7591 dynamic client registration and RFC 7592 client management, end to end: a real
 * server over HTTP on 127.0.0.1, for every storage dialect, and a real OAuth client library
 * (oauth4webapi) proving that a registered client really works.
 */
import { webcrypto } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedirectUri } from '../../src/protocol/redirect-uri.js';
import { basicAuth, DIALECTS, startTestServer, type TestServer } from '../helpers/server.js';
import { expectOAuthError, toAnswer, type Answer } from '../helpers/answers.js';

const TIMEOUT_MS = 5_000;
const JSON_TYPE = 'application/json';
/** A secret value no response may ever contain. */
const MARKER = 'S3cret-Marker-never-echo-4be21d';


type Json = Record<string, unknown>;

interface Registered {
  client_id: string;
  client_secret?: string;
  client_id_issued_at: number;
  client_secret_expires_at?: number;
  registration_access_token: string;
  registration_client_uri: string;
  [member: string]: unknown;
}

/**
 * One request with a deadline. Every answer from the registration and token endpoints must
 * carry `Cache-Control: no-store` (RFC 6749 §5.1, RFC 7591 §3.2.1), so that is checked here for
 * every single call.
 */
async function call(
  url: string,
  method: string,
  options: { token?: string; authorization?: string; body?: unknown; rawBody?: string; contentType?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  const authorization = options.authorization ?? (options.token === undefined ? undefined : `Bearer ${options.token}`);
  if (authorization !== undefined) headers.authorization = authorization;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = options.contentType ?? JSON_TYPE;
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(TIMEOUT_MS) });
  expect(response.headers.get('cache-control'), `${method} ${url} → ${response.status}`).toBe('no-store');
  return toAnswer(response.status, response.headers, await response.text());
}

const expectError = expectOAuthError;

/** RFC 6750 §3.1: a request without any credentials gets a bare challenge, no error code. */
function expectBareChallenge(answer: Answer): void {
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
}

function expectInvalidToken(answer: Answer): void {
  expectError(answer, 401, 'invalid_token');
  expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
}

const CC = { grant_types: ['client_credentials'] };

async function tokenRequest(issuer: string, form: Record<string, string>, authorization?: string): Promise<Answer> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization === undefined ? {} : { authorization }) },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

const insecure = { [oauth.allowInsecureRequests]: true } as const;

async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { algorithm: 'oauth2', ...insecure }));
}

/** A client credentials grant through oauth4webapi, as a real client would make it. */
async function clientCredentials(as: oauth.AuthorizationServer, clientId: string, auth: oauth.ClientAuth, scope?: string): Promise<oauth.TokenEndpointResponse> {
  const client: oauth.Client = { client_id: clientId };
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, scope === undefined ? {} : { scope }, insecure);
  return oauth.processClientCredentialsResponse(as, client, response);
}

describe('checkRedirectUri: which redirect URIs may be registered', () => {
  it.each([
    ['https://app.example.com/cb', 'https'],
    ['https://app.example.com:8443/cb?x=1', 'https with a port and a query'],
    ['http://127.0.0.1:8080/cb', 'http on the IPv4 loopback literal (RFC 8252 §7.3)'],
    ['http://127.0.0.1/cb', 'http on the IPv4 loopback literal without a port'],
    ['http://[::1]:8080/cb', 'http on the IPv6 loopback literal'],
    ['com.example.app:/cb', 'a reverse-domain private-use scheme (RFC 8252 §7.1)'],
    ['com.example.app://cb', 'a reverse-domain private-use scheme with an authority'],
  ])('%s is accepted (%s)', (uri) => {
    expect(checkRedirectUri(uri)).toEqual({ ok: true });
  });

  it.each([
    ['https://app.example.com/cb#frag', /fragment/],
    ['https://app.example.com/cb#', /fragment/],
    ['javascript:alert(1)', /javascript/],
    ['data:text/html,<script>alert(1)</script>', /data/],
    ['file:///etc/passwd', /file/],
    ['vbscript:msgbox(1)', /vbscript/],
    ['blob:https://app.example.com/1', /blob/],
    ['about:blank', /about/],
    ['http://app.example.com/cb', /loopback/],
    ['http://localhost:8080/cb', /loopback/],
    ['http://127.0.0.1.example.com/cb', /loopback/],
    ['myapp:/cb', /reverse domain/],
    ['/cb', /absolute/],
    ['cb', /absolute/],
    ['https://user:pass@app.example.com/cb', /credentials/],
    [`https://app.example.com/${'x'.repeat(2000)}`, /too long/],
  ])('%s is refused', (uri, reason) => {
    const verdict = checkRedirectUri(uri);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });
});

describe.each(DIALECTS)('dynamic client registration (%s)', (dialect) => {
  let t: TestServer;
  /** An initial access token without a use limit, allowing read, write and api (and below). */
  let iat: string;
  let as: oauth.AuthorizationServer;
  const registerUrl = () => `${t.issuer}/register`;
  /** Registers with the given initial access token (default: the unlimited one), or with none at all (null). */
  const register = (body: unknown, token: string | null = iat) => call(registerUrl(), 'POST', { body, ...(token === null ? {} : { token }) });

  async function registered(metadata: Json = {}): Promise<Registered> {
    const answer = await register({ ...CC, scope: 'read write', ...metadata });
    expect(answer.status, answer.text).toBe(201);
    return answer.json as Registered;
  }

  const countClients = async () => (await t.server.storage.clients.listClients(t.clock.now())).length;

  beforeAll(async () => {
    t = await startTestServer({ dialect });
    iat = await t.createInitialAccessToken(['read', 'write', 'api']);
    as = await discover(t.issuer);
  });

  afterAll(async () => {
    await t?.close();
  });

  describe('initial access tokens', () => {
    it('without a token → 401 with a bare Bearer challenge, and nothing is registered', async () => {
      const before = await countClients();
      const answer = await register(CC, null);
      expectBareChallenge(answer);
      expect(answer.headers.get('www-authenticate')).not.toMatch(/error/);
      expect(await countClients()).toBe(before);
    });

    it('with an unknown token → 401 invalid_token', async () => {
      const answer = await register(CC, MARKER);
      expectInvalidToken(answer);
      expect(answer.text).not.toContain(MARKER);
    });

    it('with an expired token → 401 invalid_token', async () => {
      const token = await t.createInitialAccessToken(['read'], { ttl: 60 });
      expect((await register(CC, token)).status).toBe(201);
      t.clock.advance(60);
      try {
        expectInvalidToken(await register(CC, token));
      } finally {
        t.clock.advance(-60);
      }
    });

    it('with a used-up token (max_uses) → 401 invalid_token', async () => {
      const token = await t.createInitialAccessToken(['read'], { maxUses: 2 });
      expect((await register(CC, token)).status).toBe(201);
      expect((await register(CC, token)).status).toBe(201);
      expectInvalidToken(await register(CC, token));
    });

    it('a use is not consumed when the request is refused', async () => {
      const token = await t.createInitialAccessToken(['read'], { maxUses: 1 });
      const before = await countClients();
      expectError(await register({ ...CC, scope: 'admin' }, token), 400, 'invalid_client_metadata');
      expectError(await register({ ...CC, redirect_uris: ['javascript:alert(1)'] }, token), 400, 'invalid_redirect_uri');
      expectError(await register({ grant_types: 'client_credentials' }, token), 400, 'invalid_client_metadata');
      expectError(await call(registerUrl(), 'POST', { token, rawBody: '{"grant_types": [' }), 400, 'invalid_request');
      expectError(await call(registerUrl(), 'POST', { token, rawBody: 'grant_types=client_credentials', contentType: 'application/x-www-form-urlencoded' }), 400, 'invalid_request');
      expect(await countClients()).toBe(before);
      expect((await register(CC, token)).status).toBe(201);
      expectInvalidToken(await register(CC, token));
    });

    it('concurrent registrations never exceed max_uses', async () => {
      const token = await t.createInitialAccessToken(['read'], { maxUses: 2 });
      const answers = await Promise.all(Array.from({ length: 6 }, () => register(CC, token)));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).toEqual([201, 201, 401, 401, 401, 401]);
      for (const a of answers.filter((x) => x.status === 401)) expectInvalidToken(a);
    });

    it("the token's scope limits the client's scope", async () => {
      const token = await t.createInitialAccessToken(['read', 'api']);
      expectError(await register({ ...CC, scope: 'read write' }, token), 400, 'invalid_client_metadata', 'scope not allowed: write');
      expectError(await register({ ...CC, scope: 'apix' }, token), 400, 'invalid_client_metadata');
      expectError(await register({ ...CC, scope: 'read  api' }, token), 400, 'invalid_client_metadata', 'scope is malformed');
      const narrower = await register({ ...CC, scope: 'read api:orders' }, token);
      expect({ status: narrower.status, scope: (narrower.json as Json).scope }).toEqual({ status: 201, scope: 'read api:orders' });
      const none = await register(CC, token);
      expect(none.status).toBe(201);
      expect(none.json).not.toHaveProperty('scope');
    });

    it('other kinds of token are not initial access tokens', async () => {
      const client = await registered();
      const token = await clientCredentials(as, client.client_id, oauth.ClientSecretBasic(client.client_secret ?? ''));
      for (const wrong of [client.registration_access_token, client.client_secret ?? '', token.access_token]) {
        expectInvalidToken(await register(CC, wrong));
      }
    });
  });

  describe('the registration response (RFC 7591 §3.2.1)', () => {
    it('is 201 with the client information, and the client really gets tokens', async () => {
      const metadata = { ...CC, scope: 'read', client_name: 'Billing worker', contacts: ['ops@example.com'] };
      const answer = await register(metadata);
      expect(answer.status).toBe(201);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      const body = answer.json as Registered;
      expect(body).toEqual({
        client_id: expect.stringMatching(/^[0-9a-f]{32}$/),
        client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        client_id_issued_at: t.clock.now(),
        client_secret_expires_at: 0,
        registration_access_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        registration_client_uri: `${t.issuer}/register/${body.client_id}`,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'read',
        client_name: 'Billing worker',
        contacts: ['ops@example.com'],
      });
      expect(as.registration_endpoint).toBe(registerUrl());
      const token = await clientCredentials(as, body.client_id, oauth.ClientSecretBasic(body.client_secret ?? ''));
      expect(token).toMatchObject({ token_type: 'bearer', scope: 'read', expires_in: expect.any(Number) });
      expect(token.access_token).toEqual(expect.any(String));
    });

    it('a client_secret_post client gets tokens with its secret in the body', async () => {
      const body = await registered({ token_endpoint_auth_method: 'client_secret_post', scope: 'write' });
      expect(body.token_endpoint_auth_method).toBe('client_secret_post');
      const token = await clientCredentials(as, body.client_id, oauth.ClientSecretPost(body.client_secret ?? ''));
      expect(token.scope).toBe('write');
    });

    it('a private_key_jwt client gets no secret and authenticates with its key', async () => {
      const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
      const body = await registered({
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: { keys: [{ kty, crv, x, y, kid: 'k1', alg: 'ES256', use: 'sig' }] },
        scope: 'read',
      });
      expect(body).not.toHaveProperty('client_secret');
      expect(body).not.toHaveProperty('client_secret_expires_at');
      expect(body.jwks).toEqual({ keys: [{ kty, crv, x, y, kid: 'k1', alg: 'ES256', use: 'sig' }] });
      const token = await clientCredentials(as, body.client_id, oauth.PrivateKeyJwt({ key: pair.privateKey, kid: 'k1' }));
      expect(token.scope).toBe('read');
    });
  });

  describe('the metadata policy', () => {
    it.each([
      'https://app.example.com/cb#frag',
      'javascript:alert(1)',
      'data:text/html,hi',
      'file:///etc/passwd',
      'http://app.example.com/cb',
      'http://localhost:8080/cb',
      'myapp:/cb',
      '/relative/cb',
    ])('redirect_uris [%s] → 400 invalid_redirect_uri', async (uri) => {
      expectError(await register({ ...CC, redirect_uris: ['https://ok.example.com/cb', uri] }), 400, 'invalid_redirect_uri');
    });

    it.each(['https://app.example.com/cb', 'http://127.0.0.1:8080/cb', 'http://[::1]:8080/cb', 'com.example.app:/cb'])(
      'redirect_uris [%s] is accepted and stored even with client_credentials only',
      async (uri) => {
        const body = await registered({ redirect_uris: [uri] });
        expect(body.redirect_uris).toEqual([uri]);
        expect(body.response_types).toEqual([]);
      },
    );

    it('grant_types omitted defaults to authorization_code (RFC 7591 §2), which needs redirect_uris', async () => {
      expectError(await register({ scope: 'read' }), 400, 'invalid_redirect_uri', 'redirect_uris is required for the authorization_code grant');
    });

    it('registers a public code-flow client (PKCE, token_endpoint_auth_method none) without a secret', async () => {
      const answer = await register({ grant_types: ['authorization_code', 'refresh_token'], redirect_uris: ['http://127.0.0.1/cb', 'com.example.app:/cb'], token_endpoint_auth_method: 'none', scope: 'read' });
      expect(answer.status, answer.text).toBe(201);
      const body = answer.json as Json;
      expect(body).toMatchObject({ grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' });
      expect(body).not.toHaveProperty('client_secret');
      expect(body).not.toHaveProperty('client_secret_expires_at');
    });

    it.each([
      ['grant_types empty', { grant_types: [] }],
      ['the password grant', { grant_types: ['password'] }],
      ['the implicit grant', { grant_types: ['implicit'] }],
      ['the refresh_token grant', { grant_types: ['client_credentials', 'refresh_token'] }],
      ['response_types code without authorization_code', { ...CC, response_types: ['code'] }],
      ['response_types token', { ...CC, response_types: ['token'] }],
      ['token_endpoint_auth_method none with client_credentials', { ...CC, token_endpoint_auth_method: 'none' }],
      ['token_endpoint_auth_method client_secret_jwt', { ...CC, token_endpoint_auth_method: 'client_secret_jwt' }],
      ['token_endpoint_auth_method tls_client_auth', { ...CC, token_endpoint_auth_method: 'tls_client_auth' }],
      ['a symmetric token_endpoint_auth_signing_alg', { ...CC, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'HS256', jwks_uri: 'https://app.example.com/jwks' }],
      ['token_endpoint_auth_signing_alg none', { ...CC, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'none', jwks_uri: 'https://app.example.com/jwks' }],
      ['private_key_jwt without jwks or jwks_uri', { ...CC, token_endpoint_auth_method: 'private_key_jwt' }],
      [
        'jwks and jwks_uri together',
        { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] } },
      ],
      ['jwks with a private EC key (d)', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' }] } }],
      ['jwks with a private RSA key (p, q)', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'RSA', n: 'n', e: 'AQAB', p: 'p', q: 'q' }] } }],
      ['jwks with a private OKP key (d)', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'x', d: 'd' }] } }],
      ['jwks with a symmetric key (k)', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'oct', k: 'secret' }] } }],
      ['jwks with no keys', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } }],
      ['an http jwks_uri', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://app.example.com/jwks' }],
      ['a jwks_uri with a fragment', { ...CC, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks#k' }],
      ['a scope beyond the initial access token', { ...CC, scope: 'admin' }],
    ])('%s → 400 invalid_client_metadata', async (_name, metadata) => {
      expectError(await register(metadata), 400, 'invalid_client_metadata');
    });

    it('administrative members are ignored in a dynamic registration', async () => {
      const body = await registered({ owner: 'someone-else', access_token_ttl: 999_999 });
      expect(body).not.toHaveProperty('owner');
      const stored = await t.server.storage.clients.findClient(body.client_id);
      expect({ owner: stored?.owner, ttl: stored?.accessTokenTtl, dynamic: stored?.dynamicallyRegistered }).toEqual({ owner: null, ttl: null, dynamic: true });
    });
  });

  describe('the client configuration endpoint (RFC 7592)', () => {
    /** A response without its credentials (reads and updates issue a new registration token). */
    function withoutCredentials(body: Registered): Json {
      const { client_secret: _secret, registration_access_token: _token, ...rest } = body;
      return rest;
    }

    /** An update body built from a read, without the members §2.2 forbids. */
    function updateFrom(body: Registered, changes: Json = {}): Json {
      const { client_secret: _s, registration_access_token: _t, registration_client_uri: _u, client_secret_expires_at: _e, client_id_issued_at: _i, ...rest } = body;
      return { ...rest, ...changes };
    }

    it('GET with the registration access token → 200 with the same metadata, no secret, and the next registration token (RFC 7592 §3)', async () => {
      const client = await registered({ client_name: 'reader' });
      const answer = await call(client.registration_client_uri, 'GET', { token: client.registration_access_token });
      expect(answer.status).toBe(200);
      const body = answer.json as Registered;
      expect(withoutCredentials(body)).toEqual(withoutCredentials(client));
      expect(body).not.toHaveProperty('client_secret');
      expect(body.registration_access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(body.registration_access_token).not.toBe(client.registration_access_token);
      // The token used is replaced by the one returned.
      expectInvalidToken(await call(client.registration_client_uri, 'GET', { token: client.registration_access_token }));
      expect((await call(client.registration_client_uri, 'GET', { token: body.registration_access_token })).status).toBe(200);
    });

    it('GET without a token → 401 bare challenge; with a wrong or foreign token → 401 invalid_token', async () => {
      const a = await registered();
      const b = await registered();
      expectBareChallenge(await call(a.registration_client_uri, 'GET'));
      expectInvalidToken(await call(a.registration_client_uri, 'GET', { token: b.registration_access_token }));
      expectInvalidToken(await call(a.registration_client_uri, 'GET', { token: MARKER }));
      expectInvalidToken(await call(a.registration_client_uri, 'GET', { token: iat }));
      expectInvalidToken(await call(a.registration_client_uri, 'GET', { token: a.client_secret ?? '' }));
      expectInvalidToken(await call(`${registerUrl()}/no-such-client`, 'GET', { token: a.registration_access_token }));
      // Basic credentials of the client itself are not a registration access token.
      expectBareChallenge(await call(a.registration_client_uri, 'GET', { authorization: basicAuth(a.client_id, a.client_secret ?? '') }));
    });

    it('PUT replaces the metadata; omitted members are removed (RFC 7592 §2.2)', async () => {
      const client = await registered({ client_name: 'before', contacts: ['a@example.com'], scope: 'read write' });
      const answer = await call(client.registration_client_uri, 'PUT', {
        token: client.registration_access_token,
        body: updateFrom(client, { client_name: 'after', scope: 'read', contacts: undefined }),
      });
      expect(answer.status, answer.text).toBe(200);
      const expected = { ...withoutCredentials(client), client_name: 'after', scope: 'read', contacts: [] };
      const updated = answer.json as Registered;
      expect(withoutCredentials(updated)).toEqual(expected);
      expect(updated).not.toHaveProperty('client_secret');
      expectInvalidToken(await call(client.registration_client_uri, 'GET', { token: client.registration_access_token }));
      const read = await call(client.registration_client_uri, 'GET', { token: updated.registration_access_token });
      expect(withoutCredentials(read.json as Registered)).toEqual(expected);
      // The secret is unchanged and the narrowed scope is what the client now holds.
      const token = await clientCredentials(as, client.client_id, oauth.ClientSecretBasic(client.client_secret ?? ''));
      expect(token.scope).toBe('read');
      const widened = await tokenRequest(t.issuer, { grant_type: 'client_credentials', scope: 'write' }, basicAuth(client.client_id, client.client_secret ?? ''));
      expectError(widened, 400, 'invalid_scope');
    });

    it('PUT with the current client_secret is accepted', async () => {
      const client = await registered();
      const answer = await call(client.registration_client_uri, 'PUT', {
        token: client.registration_access_token,
        body: updateFrom(client, { client_secret: client.client_secret, client_name: 'same secret' }),
      });
      expect({ status: answer.status, name: (answer.json as Json).client_name }).toEqual({ status: 200, name: 'same secret' });
    });

    it.each<[string, (c: Registered) => Json, string, string | RegExp]>([
      ['without client_id', (c) => updateFrom(c, { client_id: undefined }), 'invalid_request', /client_id/],
      ['with another client_id', (c) => updateFrom(c, { client_id: 'someone-else' }), 'invalid_request', /client_id/],
      ['with client_id as a number', (c) => updateFrom(c, { client_id: 7 }), 'invalid_request', /client_id/],
      ['with registration_access_token', (c) => updateFrom(c, { registration_access_token: c.registration_access_token }), 'invalid_request', /registration_access_token/],
      ['with registration_client_uri', (c) => updateFrom(c, { registration_client_uri: c.registration_client_uri }), 'invalid_request', /registration_client_uri/],
      ['with client_secret_expires_at', (c) => updateFrom(c, { client_secret_expires_at: 0 }), 'invalid_request', /client_secret_expires_at/],
      ['with client_id_issued_at', (c) => updateFrom(c, { client_id_issued_at: c.client_id_issued_at }), 'invalid_request', /client_id_issued_at/],
      ['with a wrong client_secret', (c) => updateFrom(c, { client_secret: MARKER }), 'invalid_request', 'client_secret does not match'],
      ['with client_secret as a number', (c) => updateFrom(c, { client_secret: 12345 }), 'invalid_request', 'client_secret does not match'],
      ['widening the scope', (c) => updateFrom(c, { scope: 'read write api' }), 'invalid_client_metadata', /api/],
      ['changing the auth method', (c) => updateFrom(c, { token_endpoint_auth_method: 'client_secret_post' }), 'invalid_client_metadata', /token_endpoint_auth_method/],
      ['omitting grant_types (defaults to authorization_code, which needs redirect_uris)', (c) => updateFrom(c, { grant_types: undefined }), 'invalid_redirect_uri', /redirect_uris/],
      ['adding a refused redirect URI', (c) => updateFrom(c, { redirect_uris: ['http://app.example.com/cb'] }), 'invalid_redirect_uri', /loopback/],
    ])('PUT %s → 400 %s, and nothing changes', async (_name, build, error, description) => {
      const client = await registered({ client_name: 'unchanged' });
      const answer = await call(client.registration_client_uri, 'PUT', { token: client.registration_access_token, body: build(client) });
      expectError(answer, 400, error, description);
      expect(answer.text).not.toContain(MARKER);
      // A refused update rotates nothing: the token still works, and the metadata is as before.
      const read = await call(client.registration_client_uri, 'GET', { token: client.registration_access_token });
      expect(read.status).toBe(200);
      expect(withoutCredentials(read.json as Registered)).toEqual(withoutCredentials(client));
    });

    it.each([
      ['a JSON array', '[]', JSON_TYPE, 'invalid_client_metadata'],
      ['malformed JSON', '{"client_id": ', JSON_TYPE, 'invalid_request'],
      ['a form body', 'client_id=x', 'application/x-www-form-urlencoded', 'invalid_request'],
    ])('PUT with %s → 400 %s', async (_name, rawBody, contentType, error) => {
      const client = await registered();
      expectError(await call(client.registration_client_uri, 'PUT', { token: client.registration_access_token, rawBody, contentType }), 400, error);
    });

    it("PUT with another client's token → 401 invalid_token", async () => {
      const a = await registered();
      const b = await registered();
      expectInvalidToken(await call(a.registration_client_uri, 'PUT', { token: b.registration_access_token, body: updateFrom(a) }));
    });

    it('DELETE → 204; afterwards the client gets no tokens and its registration token is dead', async () => {
      const client = await registered();
      const observer = await registered();
      const issued = await clientCredentials(as, client.client_id, oauth.ClientSecretBasic(client.client_secret ?? ''));

      expectInvalidToken(await call(client.registration_client_uri, 'DELETE', { token: observer.registration_access_token }));
      const deleted = await call(client.registration_client_uri, 'DELETE', { token: client.registration_access_token });
      expect({ status: deleted.status, text: deleted.text }).toEqual({ status: 204, text: '' });

      const basic = basicAuth(client.client_id, client.client_secret ?? '');
      const refused = await tokenRequest(t.issuer, { grant_type: 'client_credentials' }, basic);
      expectError(refused, 401, 'invalid_client');
      expect(refused.headers.get('www-authenticate')).toMatch(/^Basic /);
      await expect(clientCredentials(as, client.client_id, oauth.ClientSecretBasic(client.client_secret ?? ''))).rejects.toMatchObject({ status: 401 });

      expectInvalidToken(await call(client.registration_client_uri, 'GET', { token: client.registration_access_token }));
      expectInvalidToken(await call(client.registration_client_uri, 'PUT', { token: client.registration_access_token, body: updateFrom(client) }));
      expectInvalidToken(await call(client.registration_client_uri, 'DELETE', { token: client.registration_access_token }));

      // Tokens issued before the deletion are no longer honoured.
      const info = await fetch(`${t.issuer}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(observer.client_id, observer.client_secret ?? '') },
        body: new URLSearchParams({ token: issued.access_token }).toString(),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      expect(await info.json()).toEqual({ active: false });
    });
  });
});

describe.each(DIALECTS)('open registration (%s)', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ dialect, config: { registration: { dangerouslyAllowOpenRegistration: true, openRegistrationScopes: ['public'] } } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('registers without a token, within the open scopes, and the client gets tokens', async () => {
    const answer = await call(`${t.issuer}/register`, 'POST', { body: { ...CC, scope: 'public' } });
    expect(answer.status).toBe(201);
    const body = answer.json as Registered;
    expect(body.scope).toBe('public');
    const as = await discover(t.issuer);
    const token = await clientCredentials(as, body.client_id, oauth.ClientSecretBasic(body.client_secret ?? ''));
    expect(token.scope).toBe('public');
  });

  it('a scope beyond the open scopes → 400 invalid_client_metadata', async () => {
    expectError(await call(`${t.issuer}/register`, 'POST', { body: { ...CC, scope: 'public admin' } }), 400, 'invalid_client_metadata', 'scope not allowed: admin');
  });

  it('bad credentials are refused, not ignored', async () => {
    const body = { ...CC, scope: 'public' };
    expectInvalidToken(await call(`${t.issuer}/register`, 'POST', { token: MARKER, body }));
    expectBareChallenge(await call(`${t.issuer}/register`, 'POST', { authorization: basicAuth('a', 'b'), body }));
    expectError(await call(`${t.issuer}/register`, 'POST', { authorization: 'Bearer', body }), 400, 'invalid_request');
  });

  it('an initial access token still works and sets the allowed scopes', async () => {
    const token = await t.createInitialAccessToken(['private']);
    const answer = await call(`${t.issuer}/register`, 'POST', { token, body: { ...CC, scope: 'private' } });
    expect({ status: answer.status, scope: (answer.json as Json).scope }).toEqual({ status: 201, scope: 'private' });
  });
});

describe('registration disabled', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ config: { registration: { enabled: false } } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the endpoints do not exist and discovery does not advertise them', async () => {
    const iat = await t.createInitialAccessToken(['read']);
    expectError(await call(`${t.issuer}/register`, 'POST', { token: iat, body: CC }), 404, 'invalid_request');
    expectError(await call(`${t.issuer}/register/x`, 'GET', { token: iat }), 404, 'invalid_request');
    const as = await discover(t.issuer);
    expect(as.registration_endpoint).toBeUndefined();
  });
});
