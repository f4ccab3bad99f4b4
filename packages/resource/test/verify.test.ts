import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessTokenVerifier, verifyAccessToken, type AccessTokenVerifier, type VerifierOptions } from '../src/index.js';
import { API, expectBearerError, listen, OPAQUE_API, OTHER_API, startGatehouse, type Gatehouse } from './helpers/gatehouse.js';

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

describe('verifyAccessToken against a real Gatehouse', () => {
  let g: Gatehouse;
  let verifier: AccessTokenVerifier;
  let options: VerifierOptions;
  let trap: Awaited<ReturnType<typeof listen>>;
  const bearer = (token: string) => `Bearer ${token}`;

  beforeAll(async () => {
    g = await startGatehouse();
    options = { issuer: g.t.issuer, audience: API, now: g.t.clock.now };
    verifier = createAccessTokenVerifier(options);
    // jku / x5u / kid targets: nothing may ever connect here.
    trap = await listen((_req, res) => res.end('{"keys":[]}'));
  });

  afterAll(async () => {
    expect(trap.connections(), 'no request may be caused by token contents').toBe(0);
    await trap.close();
    await g.t.close();
  });

  /** The server's current access-token signing key (to sign tokens with chosen claims and headers). */
  function serverKey(purpose: 'access_token' | 'id_token' = 'access_token'): { kid: string; alg: string; privateKey: KeyObject } {
    const key = g.t.server.keys.signingKey(purpose, g.t.clock.now());
    if (key === undefined) throw new Error('no signing key');
    return key;
  }

  function claims(overrides: Record<string, unknown> = {}): JWTPayload {
    const now = g.t.clock.now();
    const base: Record<string, unknown> = { iss: g.t.issuer, sub: 'client-x', aud: API, exp: now + 300, iat: now, jti: `jti-${Math.random()}`, client_id: 'client-x', scope: 'orders' };
    for (const [k, v] of Object.entries(overrides)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return base as JWTPayload;
  }

  async function signed(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
    const key = serverKey();
    const protectedHeader: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'at+jwt' };
    for (const [k, v] of Object.entries(header)) {
      if (v === undefined) delete protectedHeader[k];
      else protectedHeader[k] = v;
    }
    return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key.privateKey);
  }

  describe('tokens issued by the server', () => {
    it('accepts a valid JWT access token and exposes typed claims', async () => {
      const token = await g.token('orders reports:read');
      const result = await verifier.verify(bearer(token));
      expect(result).toMatchObject({ format: 'jwt', iss: g.t.issuer, aud: [API], client_id: g.caller.clientId, sub: g.caller.clientId, scopes: ['orders', 'reports:read'] });
      expect(typeof result.exp).toBe('number');
      expect(typeof result.jti).toBe('string');
      // The same through the function form, with options (memoized verifier) and a lowercase scheme.
      await expect(verifyAccessToken(`bearer ${token}`, options)).resolves.toMatchObject({ format: 'jwt' });
    });

    it('checks scopes with the hierarchy rule, all-of and any-of', async () => {
      const token = await g.token('orders');
      await expect(verifier.verify(bearer(token), { scopes: ['orders:items'] })).resolves.toBeDefined();
      await expect(verifier.verify(bearer(token), { scopes: ['orders:items:read', 'orders'] })).resolves.toBeDefined();
      await expect(verifier.verify(bearer(token), { scopes: { anyOf: ['admin', 'orders:x'] } })).resolves.toBeDefined();
      const narrow = await g.token('reports:read');
      const e1 = await expectBearerError(verifier.verify(bearer(narrow), { scopes: ['reports'] }), 403, 'insufficient_scope');
      expect(e1.headers['www-authenticate']).toBe(`Bearer realm="${API}", error="insufficient_scope", error_description="The access token does not carry the required scope", scope="reports"`);
      expect(e1.body).toMatchObject({ error: 'insufficient_scope', scope: 'reports' });
      const e2 = await expectBearerError(verifier.verify(bearer(token), { scopes: ['orders', 'admin'] }), 403, 'insufficient_scope');
      expect(e2.scope).toBe('orders admin');
      const e3 = await expectBearerError(verifier.verify(bearer(token), { scopes: { anyOf: ['admin', 'reports:read'] } }), 403, 'insufficient_scope');
      expect(e3.scope).toBe('admin reports:read');
      await expectBearerError(verifier.verify(bearer(token), { scopes: ['ordersX'] }), 403, 'insufficient_scope');
      // Verifier-wide scopes apply to every request.
      const strict = createAccessTokenVerifier({ ...options, scopes: ['admin'] });
      await expectBearerError(strict.verify(bearer(token)), 403, 'insufficient_scope');
    });

    it('rejects an expired token (server clock stepped past the lifetime and the tolerance)', async () => {
      const clocked = await startGatehouse({ config: { tokens: { accessTokenTtl: 60 } } });
      try {
        const v = createAccessTokenVerifier({ issuer: clocked.t.issuer, audience: API, now: clocked.t.clock.now });
        const token = await clocked.token('orders');
        await expect(v.verify(bearer(token))).resolves.toBeDefined();
        clocked.t.clock.advance(60 + 29);
        await expect(v.verify(bearer(token))).resolves.toBeDefined();
        clocked.t.clock.advance(2);
        const e = await expectBearerError(v.verify(bearer(token)), 401, 'invalid_token');
        expect(e.description).toBe('The access token expired');
        expect(e.headers['www-authenticate']).toBe(`Bearer realm="${API}", error="invalid_token", error_description="The access token expired"`);
      } finally {
        await clocked.t.close();
      }
    });

    it('rejects a token for another audience', async () => {
      const token = await g.token('other');
      const e = await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
      expect(e.description).toContain('"aud"');
    });

    it('rejects a token of another issuer (another Gatehouse: unknown key)', async () => {
      const other = await startGatehouse();
      try {
        const token = await other.token('orders');
        await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
      } finally {
        await other.t.close();
      }
    });

    it('follows signing-key rotation: an unknown kid refetches the JWKS (after the cooldown)', async () => {
      const rotating = await startGatehouse();
      try {
        const v = createAccessTokenVerifier({ issuer: rotating.t.issuer, audience: API, jwksCooldown: 0 });
        const before = await rotating.token('orders');
        await expect(v.verify(bearer(before))).resolves.toBeDefined();
        const kid = await rotating.t.server.keys.rotate('access_token', rotating.t.clock.now(), { immediate: true });
        const after = await rotating.token('orders');
        expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid });
        await expect(v.verify(bearer(after))).resolves.toBeDefined();
        await expect(v.verify(bearer(before))).resolves.toBeDefined();
        // With the default 30 s cooldown, a fresh JWKS is not refetched for a new kid.
        const cooled = createAccessTokenVerifier({ issuer: rotating.t.issuer, audience: API });
        await expect(cooled.verify(bearer(after))).resolves.toBeDefined();
        await rotating.t.server.keys.rotate('access_token', rotating.t.clock.now(), { immediate: true });
        await expectBearerError(cooled.verify(bearer(await rotating.token('orders'))), 401, 'invalid_token');
      } finally {
        await rotating.t.close();
      }
    });

    it('answers 503 when the configured issuer is unreachable or its metadata names another issuer', async () => {
      const token = await g.token('orders');
      const down = createAccessTokenVerifier({ issuer: 'http://127.0.0.1:9', audience: API, timeout: 2000 });
      const e = await expectBearerError(down.verify(bearer(token)), 503, 'temporarily_unavailable');
      expect(e.headers['www-authenticate']).toBeUndefined();
      expect(e.headers['retry-after']).toBe('5');
      const mismatched = createAccessTokenVerifier({ issuer: g.t.issuer.replace('127.0.0.1', 'localhost'), audience: API });
      const m = await expectBearerError(mismatched.verify(bearer(token)), 503, 'temporarily_unavailable');
      expect(m.description).toContain('another issuer');
    });

    it('introspects opaque tokens with the API credentials; a revoked one is invalid_token', async () => {
      const v = createAccessTokenVerifier({ issuer: g.t.issuer, audience: OPAQUE_API, now: g.t.clock.now, introspection: { ...g.api, cacheMaxAge: 0 } });
      const token = await g.token('opaque:read');
      expect(token.split('.')).toHaveLength(1);
      await expect(v.verify(bearer(token), { scopes: ['opaque:read'] })).resolves.toMatchObject({ format: 'opaque', aud: [OPAQUE_API], scopes: ['opaque:read'], client_id: g.caller.clientId });
      await expectBearerError(v.verify(bearer(token), { scopes: ['opaque:write'] }), 403, 'insufficient_scope');
      await g.revoke(token);
      const e = await expectBearerError(v.verify(bearer(token)), 401, 'invalid_token');
      expect(e.description).toBe('The access token is not active');
      // Without introspection credentials, opaque tokens are refused.
      await expectBearerError(createAccessTokenVerifier({ issuer: g.t.issuer, audience: OPAQUE_API }).verify(bearer(await g.token('opaque:read'))), 401, 'invalid_token');
      // An introspected token for another audience is refused.
      const wrongAudience = createAccessTokenVerifier({ issuer: g.t.issuer, audience: 'https://unrelated.example.com', introspection: { ...g.api, cacheMaxAge: 0 } });
      await expectBearerError(wrongAudience.verify(bearer(await g.token('opaque:read'))), 401, 'invalid_token');
      // Wrong introspection credentials are the resource's problem: 503, not the caller's.
      const badCredentials = createAccessTokenVerifier({ issuer: g.t.issuer, audience: OPAQUE_API, introspection: { clientId: g.api.clientId, clientSecret: 'wrong' } });
      await expectBearerError(badCredentials.verify(bearer(await g.token('opaque:read'))), 503, 'temporarily_unavailable');
    });

    it('caches introspection results no longer than the configured bound', async () => {
      const v = createAccessTokenVerifier({ issuer: g.t.issuer, audience: OPAQUE_API, now: g.t.clock.now, introspection: { ...g.api, cacheMaxAge: 20 } });
      const token = await g.token('opaque:read');
      await expect(v.verify(bearer(token))).resolves.toBeDefined();
      await g.revoke(token);
      // Still cached (documented: a revocation is seen within cacheMaxAge) …
      await expect(v.verify(bearer(token))).resolves.toBeDefined();
      g.t.clock.advance(21);
      // … and no longer after it.
      await expectBearerError(v.verify(bearer(token)), 401, 'invalid_token');
    });

    it('with always-introspect, a revoked JWT is rejected at once', async () => {
      const v = createAccessTokenVerifier({ issuer: g.t.issuer, audience: API, now: g.t.clock.now, introspection: { ...g.api, always: true, cacheMaxAge: 0 } });
      const token = await g.token('orders');
      await expect(v.verify(bearer(token))).resolves.toMatchObject({ format: 'opaque', aud: [API] });
      await expect(verifier.verify(bearer(token))).resolves.toMatchObject({ format: 'jwt' });
      await g.revoke(token);
      await expectBearerError(v.verify(bearer(token)), 401, 'invalid_token');
    });
  });

  describe('how the token is sent (RFC 6750 §2)', () => {
    it('no token: 401 with a bare challenge', async () => {
      for (const source of ['', 'Basic abc', { headers: {} }, { headers: {}, url: '/x?access_token=abc' }, new Request('http://x/y?access_token=abc')]) {
        const e = await expectBearerError(verifier.verify(source), 401, undefined);
        expect(e.headers['www-authenticate']).toBe(`Bearer realm="${API}"`);
        expect(e.body).toEqual({});
      }
    });

    it('malformed or doubled: 400 invalid_request', async () => {
      const token = await g.token('orders');
      const cases = [
        'Bearer',
        'Bearer a b',
        'Bearer tok"en',
        { headers: { authorization: [bearer(token), bearer(token)] } },
        { headers: { authorization: bearer(token) }, url: `/orders?access_token=${token}` },
        { headers: { authorization: bearer(token) }, url: '/orders', body: { access_token: token } },
        new Request(`http://x/y?access_token=${token}`, { headers: { authorization: bearer(token) } }),
        new Request('http://x/y', { method: 'POST', headers: { authorization: bearer(token), 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${token}` }),
      ];
      for (const source of cases) {
        const e = await expectBearerError(verifier.verify(source), 400, 'invalid_request');
        expect(e.headers['www-authenticate']).toMatch(/^Bearer realm=".*", error="invalid_request"/);
      }
      // The scheme is case-insensitive.
      await expect(verifier.verify(`BEARER ${token}`)).resolves.toBeDefined();
    });
  });

  describe('forged and edge-case JWTs', () => {
    it.each([['sub'], ['jti'], ['client_id']])('refuses a correctly signed token without the RFC 9068 §2.2 REQUIRED claim %s', async (claim) => {
      await expectBearerError(verifier.verify(bearer(await signed(claims({ [claim]: undefined })))), 401, 'invalid_token');
      await expectBearerError(verifier.verify(bearer(await signed(claims({ [claim]: 42 })))), 401, 'invalid_token');
    });

    it('never accepts alg none in any spelling', async () => {
      const { kid } = serverKey();
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        for (const signature of ['', b64('x')]) {
          const token = `${b64({ alg, typ: 'at+jwt', kid })}.${b64(claims())}.${signature}`;
          await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
        }
      }
    });

    it('never accepts HS256 keyed with the public key (JWK or PEM bytes)', async () => {
      const key = serverKey();
      const publicKey = createPublicKey(key.privateKey);
      const secrets = [
        JSON.stringify(publicKey.export({ format: 'jwk' })),
        JSON.stringify({ ...(await exportJWK(publicKey)), kid: key.kid, alg: key.alg, use: 'sig' }),
        publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        publicKey.export({ format: 'der', type: 'spki' }).toString('binary'),
      ];
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        for (const secret of secrets) {
          const token = await new SignJWT(claims()).setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' }).sign(new TextEncoder().encode(secret));
          await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
        }
      }
      // Even if configured: symmetric algorithms are refused at construction.
      expect(() => createAccessTokenVerifier({ ...options, algorithms: ['HS256'] })).toThrow(TypeError);
      expect(() => createAccessTokenVerifier({ ...options, algorithms: ['none'] })).toThrow(TypeError);
    });

    it('rejects wrong curves and foreign keys under the server kid', async () => {
      const { kid } = serverKey();
      const signingInput = (alg: string) => `${b64({ alg, kid, typ: 'at+jwt' })}.${b64(claims())}`;
      // A P-384 signature under alg ES256 (96-byte signature).
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
      const t1 = signingInput('ES256');
      const forged1 = `${t1}.${nodeSign('sha256', Buffer.from(t1), { key: p384, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      // secp256k1 (ES256K): not an accepted algorithm.
      const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
      const t2 = signingInput('ES256K');
      const forged2 = `${t2}.${nodeSign('sha256', Buffer.from(t2), { key: k1, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      // A valid ES384 signature by an attacker key with the server's kid.
      const attacker384 = await generateKeyPair('ES384');
      const forged3 = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES384', kid, typ: 'at+jwt' }).sign(attacker384.privateKey);
      // Right curve, wrong key.
      const attacker256 = await generateKeyPair('ES256');
      const forged4 = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(attacker256.privateKey);
      // Ed25519 by an attacker with the server's kid.
      const ed = createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const forged5 = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'at+jwt' }).sign(ed);
      for (const token of [forged1, forged2, forged3, forged4, forged5]) await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
    });

    it('rejects bit flips in header, payload and signature', async () => {
      const token = await g.token('orders');
      await expect(verifier.verify(bearer(token))).resolves.toBeDefined();
      const [h, p, s] = token.split('.') as [string, string, string];
      const flip = (part: string, index: number) => {
        const bytes = Buffer.from(part, 'base64url');
        bytes[index % bytes.length]! ^= 0x01;
        return bytes.toString('base64url');
      };
      const variants = [
        `${h}.${p}.${flip(s, 0)}`,
        `${h}.${p}.${flip(s, 31)}`,
        `${h}.${p}.${flip(s, 63)}`,
        `${h}.${flip(p, 10)}.${s}`,
        `${h}.${flip(p, 40)}.${s}`,
        `${h}.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'orders admin' })}.${s}`,
        `${h}.${p}.`,
        `${h}.${p}`,
        `${h}.${p}.${s}.${s}`,
        `${h}.${p}.${s.slice(0, -2)}`,
      ];
      for (const variant of variants) {
        const e = await expectBearerError(verifier.verify(bearer(variant)), 401, 'invalid_token');
        expect(e.status).toBe(401);
      }
    });

    it('kid injection strings match no key and cause no outbound request beyond the JWKS', async () => {
      const attacker = await generateKeyPair('ES256');
      const kids = ['../../../../dev/null', "' OR '1'='1", `${trap.url}/key`, 'x'.repeat(5000), '\u0000', '{"$ne":null}', '*', ''];
      for (const kid of kids) {
        const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' }).sign(attacker.privateKey);
        await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
      }
      // A non-string kid.
      const token = `${b64({ alg: 'ES256', kid: { $ne: 1 }, typ: 'at+jwt' })}.${b64(claims())}.${b64('sig')}`;
      await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
    });

    it('rejects jku, x5u, jwk and x5c headers without following them', async () => {
      const attacker = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(attacker.publicKey)), kid: 'attacker' };
      const headers = [
        { jku: `${trap.url}/jwks.json`, kid: 'attacker' },
        { x5u: `${trap.url}/cert.pem`, kid: 'attacker' },
        { jwk },
        { x5c: ['MIIBszCCAVmgAwIBAgIU'] },
        { jku: `${trap.url}/jwks.json`, kid: serverKey().kid },
      ];
      for (const header of headers) {
        const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...header }).sign(attacker.privateKey);
        const e = await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
        expect(e.description).toMatch(/header/);
      }
      // Even signed by the real key, a token carrying jku is refused.
      await expectBearerError(verifier.verify(bearer(await signed(claims(), { jku: `${trap.url}/jwks.json` }))), 401, 'invalid_token');
      expect(trap.connections()).toBe(0);
    });

    it('rejects unknown crit', async () => {
      const key = serverKey();
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', crit: ['urn:example:x'], 'urn:example:x': 1 }).sign(key.privateKey, { crit: { 'urn:example:x': true } });
      await expectBearerError(verifier.verify(bearer(token)), 401, 'invalid_token');
      const forged = `${b64({ alg: key.alg, kid: key.kid, typ: 'at+jwt', crit: ['exp'] })}.${b64(claims())}.${b64('x')}`;
      await expectBearerError(verifier.verify(bearer(forged)), 401, 'invalid_token');
    });

    it('accepts typ at+jwt and application/at+jwt only; an ID token is never accepted', async () => {
      await expect(verifier.verify(bearer(await signed(claims())))).resolves.toBeDefined();
      await expect(verifier.verify(bearer(await signed(claims(), { typ: 'application/at+jwt' })))).resolves.toBeDefined();
      await expect(verifier.verify(bearer(await signed(claims(), { typ: 'AT+JWT' })))).resolves.toBeDefined();
      for (const typ of ['JWT', 'jwt', undefined, 'id_token', 'at+jwt ', 'application/jwt', 'secevent+jwt', 'at+jwt; x=1']) {
        const e = await expectBearerError(verifier.verify(bearer(await signed(claims(), { typ }))), 401, 'invalid_token');
        expect(e.description).toContain('typ');
      }
      // An ID-token-like JWT signed by the server's own ID-token key (RS256, typ JWT).
      const idKey = serverKey('id_token');
      const idToken = await new SignJWT(claims({ aud: API, nonce: 'n', auth_time: g.t.clock.now() })).setProtectedHeader({ alg: idKey.alg, kid: idKey.kid, typ: 'JWT' }).sign(idKey.privateKey);
      await expectBearerError(verifier.verify(bearer(idToken)), 401, 'invalid_token');
    });

    it('aud arrays must contain the audience', async () => {
      await expect(verifier.verify(bearer(await signed(claims({ aud: ['https://else.example.com', API] }))))).resolves.toMatchObject({ aud: ['https://else.example.com', API] });
      for (const aud of [['https://else.example.com'], [], undefined, `${API}/`, API.toUpperCase(), [OTHER_API, OPAQUE_API]]) {
        await expectBearerError(verifier.verify(bearer(await signed(claims({ aud })))), 401, 'invalid_token');
      }
    });

    it('iss must equal the issuer exactly; exp and iat are required', async () => {
      for (const iss of [`${g.t.issuer}/`, 'https://evil.example.com', g.t.issuer.replace('127.0.0.1', 'localhost'), undefined]) {
        await expectBearerError(verifier.verify(bearer(await signed(claims({ iss })))), 401, 'invalid_token');
      }
      await expectBearerError(verifier.verify(bearer(await signed(claims({ exp: undefined })))), 401, 'invalid_token');
      await expectBearerError(verifier.verify(bearer(await signed(claims({ iat: undefined })))), 401, 'invalid_token');
      await expectBearerError(verifier.verify(bearer(await signed(claims({ exp: 'tomorrow' })))), 401, 'invalid_token');
    });

    it('clock edges around the 30 s tolerance', async () => {
      const now = g.t.clock.now();
      const accepted = [claims({ exp: now - 29 }), claims({ nbf: now + 29 }), claims({ iat: now + 29 }), claims({ exp: now + 1 })];
      const rejected = [claims({ exp: now - 30 }), claims({ exp: now - 31 }), claims({ nbf: now + 31 }), claims({ iat: now + 31 }), claims({ iat: now + 3600, exp: now + 7200 })];
      for (const c of accepted) await expect(verifier.verify(bearer(await signed(c)))).resolves.toBeDefined();
      for (const c of rejected) await expectBearerError(verifier.verify(bearer(await signed(c))), 401, 'invalid_token');
      // A stricter tolerance.
      const strict = createAccessTokenVerifier({ ...options, clockTolerance: 0 });
      await expectBearerError(strict.verify(bearer(await signed(claims({ exp: now - 1 })))), 401, 'invalid_token');
      await expectBearerError(strict.verify(bearer(await signed(claims({ iat: now + 5 })))), 401, 'invalid_token');
    });

    it('an explicit algorithm allowlist is honoured', async () => {
      const onlyRs = createAccessTokenVerifier({ ...options, algorithms: ['RS256'] });
      await expectBearerError(onlyRs.verify(bearer(await g.token('orders'))), 401, 'invalid_token');
    });

    it('garbage never produces anything but 400/401', async () => {
      const inputs = ['Bearer a.b.c', 'Bearer ....', 'Bearer e30.e30.e30', `Bearer ${b64('[]')}.${b64('[]')}.x`, `Bearer ${b64('null')}.e30.x`, `Bearer ${'A'.repeat(100000)}`, 'Bearer =', 'Bearer a==b'];
      for (const input of inputs) {
        let status = 0;
        try {
          await verifier.verify(input);
        } catch (error) {
          status = (error as { status: number }).status;
        }
        expect([400, 401]).toContain(status);
      }
    });
  });
});
