import { createServer as createTlsServer } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPublicAddress } from '../../src/client-auth/outbound-fetch.js';
import { signCompact } from '../../src/tokens/jws.js';
import { basicAuth, postForm, startTestServer, type TestServer } from '../helpers/server.js';

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true],
    ['2606:4700:4700::1111', true],
    ['127.0.0.1', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['::1', false],
    ['fd00::1', false],
    ['fe80::1', false],
    ['::ffff:127.0.0.1', false],
    ['not-an-ip', false],
  ])('%s → %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

/** A TCP listener standing in for an internal service: it only counts connection attempts. */
async function listener(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = createTlsServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { port, connections: () => count, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('hardening', () => {
  let t: TestServer;
  let internal: Awaited<ReturnType<typeof listener>>;

  beforeAll(async () => {
    t = await startTestServer();
    internal = await listener();
  });

  afterAll(async () => {
    await t.close();
    await internal.close();
  });

  const assertionFor = async (clientId: string, key: CryptoKey, alg = 'ES256') => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg, kid: 'k1' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(t.issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
  };
  const tokenWithAssertion = (assertion: string) =>
    postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });

  it('never fetches a jwks_uri that points to a private address (SSRF)', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const c = await t.createClient({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `https://127.0.0.1:${internal.port}/jwks` });
    const answer = await tokenWithAssertion(await assertionFor(c.clientId, privateKey));
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'invalid_client' });
    expect(internal.connections()).toBe(0);
  });

  it('enforces a registered token_endpoint_auth_signing_alg', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1' };
    const c = await t.createClient({ token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES384', jwks: { keys: [jwk] } });
    const answer = await tokenWithAssertion(await assertionFor(c.clientId, privateKey));
    expect(answer.status).toBe(401);
  });

  it('answers every invalid_client with a WWW-Authenticate challenge (RFC 9110 §15.5.2)', async () => {
    const forms: Record<string, string>[] = [{ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' }, { grant_type: 'client_credentials' }];
    for (const form of forms) {
      const answer = await postForm(`${t.issuer}/token`, form);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toMatch(/^Basic realm="gatehouse"/);
    }
  });

  it('by default a client cannot introspect the tokens of another client', async () => {
    const a = await t.createClient({ scope: 'x' });
    const b = await t.createClient({ scope: '' });
    const token = ((await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basicAuth(a.clientId, a.clientSecret ?? '') })).body as { access_token: string }).access_token;
    expect((await postForm(`${t.issuer}/introspect`, { token }, { authorization: basicAuth(b.clientId, b.clientSecret ?? '') })).body).toEqual({ active: false });
    expect((await postForm(`${t.issuer}/introspect`, { token }, { authorization: basicAuth(a.clientId, a.clientSecret ?? '') })).body).toMatchObject({ active: true });
  });

  it('a disabled client can no longer read or change its registration (RFC 7592)', async () => {
    const iat = await t.createInitialAccessToken([]);
    const registered = (await (
      await fetch(`${t.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
        body: JSON.stringify({ grant_types: ['client_credentials'] }),
      })
    ).json()) as { client_id: string; registration_access_token: string; registration_client_uri: string };
    await t.server.storage.clients.setClientDisabled(registered.client_id, true, t.clock.now());
    const read = await fetch(registered.registration_client_uri, { headers: { authorization: `Bearer ${registered.registration_access_token}` } });
    expect(read.status).toBe(401);
    expect(read.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  it.each([
    ['HS256', 400],
    ['ES256', 400],
    ['RS256', 201],
  ])('registration with id_token_signed_response_alg %s → %i (the server signs ID tokens with RS256)', async (alg, status) => {
    const iat = await t.createInitialAccessToken([]);
    const answer = await fetch(`${t.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${iat}` },
      body: JSON.stringify({ redirect_uris: ['https://app.example.com/cb'], token_endpoint_auth_method: 'none', id_token_signed_response_alg: alg }),
    });
    expect(answer.status).toBe(status);
    const body = (await answer.json()) as Record<string, unknown>;
    if (status === 201) expect(body.id_token_signed_response_alg).toBe('RS256');
    else expect(body.error).toBe('invalid_client_metadata');
  });

  describe('a compromised signing key', () => {
    it('cannot mint tokens that outlive the longest lifetime, nor tokens dated after it retired; revoking it ends its tokens', async () => {
      const c = await t.createClient({ scope: '' });
      const auth = basicAuth(c.clientId, c.clientSecret ?? '');
      const issued = ((await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials' }, { authorization: auth })).body as { access_token: string }).access_token;
      const now = t.clock.now();
      const stolen = t.server.keys.signingKey('access_token', now);
      if (stolen === undefined) throw new Error('no signing key');
      const forge = (claims: Record<string, unknown>) =>
        signCompact(stolen.alg, stolen.privateKey, { typ: 'at+jwt', kid: stolen.kid }, { iss: t.issuer, sub: c.clientId, aud: t.issuer, jti: crypto.randomUUID(), client_id: c.clientId, ...claims });
      const introspect = async (token: string) => (await postForm(`${t.issuer}/introspect`, { token }, { authorization: auth })).body;

      // A year-long token: no token of this server lives that long.
      expect(await introspect(forge({ iat: now, exp: now + 365 * 86_400 }))).toEqual({ active: false });
      // A well-shaped token is (sadly) indistinguishable while the key is current...
      expect(await introspect(forge({ iat: now, exp: now + 600 }))).toMatchObject({ active: true });

      // ...so the operator rotates at once: the old key retires.
      await t.server.keys.rotate('access_token', now, { immediate: true });
      t.clock.advance(120);
      const later = t.clock.now();
      // Tokens dated after the retirement were not signed by this server.
      expect(await introspect(forge({ iat: later, exp: later + 600 }))).toEqual({ active: false });
      // Tokens signed before it still validate (they were issued legitimately)...
      expect(await introspect(issued)).toMatchObject({ active: true });
      // ...until the key is revoked outright: it leaves the JWKS and its tokens end.
      expect(await t.server.keys.revoke(stolen.kid, later)).toBe(true);
      expect(await introspect(issued)).toEqual({ active: false });
      const jwks = (await (await fetch(`${t.issuer}/jwks`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid)).not.toContain(stolen.kid);
    });
  });
});
