/**
 * Interop: access tokens from a real Gatehouse pass third-party verifiers unchanged —
 * express-oauth2-jwt-bearer (Auth0's Express middleware) and plain jose.jwtVerify.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { auth, requiredScopes, type AuthOptions } from 'express-oauth2-jwt-bearer';
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../server/src/config/schema.js';
import { basicAuth, postForm, startTestServer, type TestServer } from '../../server/test/helpers/server.js';

const API = 'https://orders.example.com';
const OTHER_API = 'https://billing.example.com';

interface Credentials {
  clientId: string;
  clientSecret: string;
}

interface Issuer {
  t: TestServer;
  /** Has orders:read (and orders:write). */
  reader: Credentials;
  /** Has orders:write only. */
  writer: Credentials;
  /** Has a scope of another resource only. */
  billing: Credentials;
  token(as: Credentials, scope: string): Promise<string>;
  metadata: { issuer: string; jwks_uri: string; id_token_signing_alg_values_supported?: string[] };
}

async function startIssuer(config: ConfigInput = {}): Promise<Issuer> {
  const t = await startTestServer({ config });
  await t.createResource(API, ['orders:read', 'orders:write']);
  await t.createResource(OTHER_API, ['billing:read']);
  const client = async (name: string, scope: string): Promise<Credentials> => {
    const created = await t.createClient({ client_name: name, scope });
    if (created.clientSecret === undefined) throw new Error('no secret');
    return { clientId: created.clientId, clientSecret: created.clientSecret };
  };
  const metadata = (await (await fetch(`${t.issuer}/.well-known/openid-configuration`)).json()) as Issuer['metadata'];
  return {
    t,
    reader: await client('reader', 'orders:read orders:write'),
    writer: await client('writer', 'orders:write'),
    billing: await client('billing', 'billing:read'),
    metadata,
    async token(as, scope) {
      const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', scope }, { authorization: basicAuth(as.clientId, as.clientSecret) });
      if (response.status !== 200) throw new Error(`token: ${response.status} ${response.text}`);
      return (response.body as { access_token: string }).access_token;
    },
  };
}

/** An Express 5 app with GET /orders behind auth() + requiredScopes('orders:read'), on 127.0.0.1. */
async function expressApi(options: AuthOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  app.get('/orders', auth(options), requiredScopes('orders:read'), (req: Request, res: Response) => {
    res.json({ client_id: req.auth?.payload.client_id, scope: req.auth?.payload.scope });
  });
  // The library's errors carry status and headers (WWW-Authenticate); send them as they are.
  app.use((error: { status?: number; headers?: Record<string, string>; code?: string; message: string }, _req: Request, res: Response, _next: NextFunction) => {
    res
      .status(error.status ?? 500)
      .set(error.headers ?? {})
      .json({ error: error.code, error_description: error.message });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/orders`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe('interop: Gatehouse access tokens in third-party verifiers', () => {
  let g: Issuer;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    g = await startIssuer();
  });

  afterAll(async () => {
    for (const close of closers) await close();
    await g?.t.close();
  });

  it('the tokens are RFC 9068 JWTs: typ at+jwt, ES256, with a kid', async () => {
    const header = decodeProtectedHeader(await g.token(g.reader, 'orders:read'));
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(header.kid).toEqual(expect.any(String));
  });

  describe('express-oauth2-jwt-bearer 1.10.0 (express 5)', () => {
    let url: string;

    beforeAll(async () => {
      // issuer + jwksUri as published in Gatehouse's discovery document; strict: RFC 9068 profile
      // (typ at+jwt, iat, sub, client_id, jti required). Plain http issuers are accepted outside
      // NODE_ENV=production.
      const api = await expressApi({ issuer: g.metadata.issuer, jwksUri: g.metadata.jwks_uri, audience: API, tokenSigningAlg: 'ES256', strict: true });
      closers.push(api.close);
      url = api.url;
    });

    it('a token with orders:read: 200', async () => {
      const response = await fetch(url, bearer(await g.token(g.reader, 'orders:read')));
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ client_id: g.reader.clientId, scope: 'orders:read' });
    });

    it('a token without orders:read: 403 insufficient_scope', async () => {
      const response = await fetch(url, bearer(await g.token(g.writer, 'orders:write')));
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    });

    it('no token: 401', async () => {
      const response = await fetch(url);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="api"/);
    });

    it('a token for another audience: 401 invalid_token', async () => {
      const response = await fetch(url, bearer(await g.token(g.billing, 'billing:read')));
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    });

    it('with issuerBaseURL and the default ID-token alg (RS256) it refuses ES256 access tokens: a library limitation', async () => {
      // The library takes the allowed algorithms from id_token_signing_alg_values_supported of the
      // discovered metadata and applies them to access tokens. Gatehouse signs ID tokens RS256 and
      // access tokens ES256 by default, so discovery alone cannot work; pinned here so an upgrade
      // that fixes it is noticed.
      expect(g.metadata.id_token_signing_alg_values_supported).toEqual(['RS256']);
      const api = await expressApi({ issuerBaseURL: g.t.issuer, audience: API, tokenSigningAlg: 'ES256' });
      closers.push(api.close);
      const response = await fetch(api.url, bearer(await g.token(g.reader, 'orders:read')));
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain(`error_description="Unexpected 'alg' value"`);
    });

    it('with issuerBaseURL (discovery over http) when ID tokens are ES256 too: 200 / 403 / 401', async () => {
      const es = await startIssuer({ tokens: { idTokenSigningAlg: 'ES256' } });
      closers.push(() => es.t.close());
      const api = await expressApi({ issuerBaseURL: es.t.issuer, audience: API, tokenSigningAlg: 'ES256', strict: true });
      closers.push(api.close);
      expect((await fetch(api.url, bearer(await es.token(es.reader, 'orders:read')))).status).toBe(200);
      expect((await fetch(api.url, bearer(await es.token(es.writer, 'orders:write')))).status).toBe(403);
      expect((await fetch(api.url)).status).toBe(401);
      // A token of the other issuer: its key is not in this JWKS and its iss differs.
      expect((await fetch(api.url, bearer(await g.token(g.reader, 'orders:read')))).status).toBe(401);
    });
  });

  describe('plain jose.jwtVerify', () => {
    it('accepts the token unchanged with issuer, audience, typ at+jwt and ES256', async () => {
      const token = await g.token(g.reader, 'orders:read');
      const jwks = createRemoteJWKSet(new URL(g.metadata.jwks_uri));
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: g.t.issuer, audience: API, typ: 'at+jwt', algorithms: ['ES256'] });
      expect(protectedHeader.typ).toBe('at+jwt');
      expect(payload).toMatchObject({ iss: g.t.issuer, aud: API, client_id: g.reader.clientId, sub: g.reader.clientId, scope: 'orders:read' });
      for (const claim of ['exp', 'iat', 'jti'] as const) expect(payload[claim]).toBeDefined();
    });

    it('and refuses it for another audience', async () => {
      const token = await g.token(g.reader, 'orders:read');
      const jwks = createRemoteJWKSet(new URL(g.metadata.jwks_uri));
      await expect(jwtVerify(token, jwks, { issuer: g.t.issuer, audience: OTHER_API, typ: 'at+jwt', algorithms: ['ES256'] })).rejects.toBeInstanceOf(joseErrors.JWTClaimValidationFailed);
    });
  });
});
