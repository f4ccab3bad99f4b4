import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accessTokenOf,
  authenticateFetchRequest,
  authenticateNodeRequest,
  bearerMiddleware,
  createAccessTokenVerifier,
  fastifyBearerAuth,
  fastifyPreHandler,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  type AccessTokenClaims,
  type AccessTokenVerifier,
} from '../src/index.js';
import { API, listen, OPAQUE_API, startGatehouse, type Gatehouse } from './helpers/gatehouse.js';

interface Served {
  url: string;
  close: () => Promise<void>;
}

/** Reads a node request body as text. */
async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

function sendJson(res: ServerResponse, value: unknown): void {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(value));
}

describe('adapters, each behind a real listening server', () => {
  let g: Gatehouse;
  let verifier: AccessTokenVerifier;
  let opaqueVerifier: AccessTokenVerifier;
  const servers: Record<string, Served> = {};
  let fastify: FastifyInstance;
  const metadataUrl = protectedResourceMetadataUrl(API);

  beforeAll(async () => {
    g = await startGatehouse();
    verifier = createAccessTokenVerifier({ issuer: g.t.issuer, audience: API, resourceMetadata: metadataUrl });
    opaqueVerifier = createAccessTokenVerifier({ issuer: g.t.issuer, audience: OPAQUE_API, introspection: { ...g.api, cacheMaxAge: 0 } });

    // Fastify: the plugin protects one encapsulated context; a route adds its own scopes.
    fastify = Fastify();
    fastify.get('/.well-known/oauth-protected-resource', async () =>
      protectedResourceMetadata({ resource: API, authorizationServers: [g.t.issuer], scopesSupported: ['orders', 'reports:read'], bearerMethodsSupported: ['header'] }),
    );
    fastify.get('/public', async () => ({ public: true }));
    await fastify.register(async (scope) => {
      await scope.register(fastifyBearerAuth, { verifier });
      scope.get('/orders', async (request) => ({ auth: accessTokenOf(request) }));
    });
    fastify.get('/items', { preHandler: fastifyPreHandler(verifier, { scopes: ['orders:items'] }) }, async (request) => ({ auth: accessTokenOf(request) }));
    fastify.get('/opaque', { preHandler: fastifyPreHandler(opaqueVerifier, { scopes: ['opaque:read'] }) }, async (request) => ({ auth: accessTokenOf(request) }));
    fastify.post('/form', { preHandler: fastifyPreHandler(verifier) }, async (request) => ({ auth: accessTokenOf(request) }));
    fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))));
    const fastifyUrl = await fastify.listen({ port: 0, host: '127.0.0.1' });
    servers.fastify = { url: fastifyUrl, close: () => fastify.close() };

    // Express-style middleware on a tiny node:http "app" (express is not a dependency).
    const middleware = bearerMiddleware(verifier, { scopes: ['orders:items'] });
    const express = await listen((req, res) => {
      const request = req as IncomingMessage & { auth?: AccessTokenClaims };
      middleware(request, res, (error?: unknown) => {
        if (error !== undefined) {
          res.statusCode = 500;
          res.end();
          return;
        }
        sendJson(res, { auth: request.auth });
      });
    });
    servers.express = express;

    // Plain node:http.
    const plain = await listen((req, res) => {
      void authenticateNodeRequest(verifier, req, res, { scopes: ['orders:items'] }).then((claims) => {
        if (claims !== undefined) sendJson(res, { auth: claims });
      });
    });
    servers.node = plain;

    // Fetch API: the node request converted to a Web Request, the Response written back.
    const web = await listen((req, res) => {
      void (async () => {
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) {
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) headers.append(name, v);
        }
        const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, { method: req.method ?? 'GET', headers, ...(body === undefined ? {} : { body }) });
        const result = await authenticateFetchRequest(verifier, request, { scopes: ['orders:items'] });
        const response = result.ok ? Response.json({ auth: result.claims }) : result.response;
        res.statusCode = response.status;
        response.headers.forEach((value, name) => res.setHeader(name, value));
        res.end(await response.text());
      })();
    });
    servers.fetch = web;
  });

  afterAll(async () => {
    for (const served of Object.values(servers)) await served.close();
    await g.t.close();
  });

  const protectedPath: Record<string, string> = { fastify: '/items', express: '/orders', node: '/orders', fetch: '/orders' };

  describe.each(['fastify', 'express', 'node', 'fetch'])('%s', (name) => {
    const url = () => `${servers[name]!.url}${protectedPath[name]}`;

    it('no token: 401 with a bare challenge', async () => {
      const response = await fetch(url());
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="https:\/\/api\.example\.com"(, resource_metadata="[^"]+")?$/);
      expect(response.headers.get('cache-control')).toBe('no-store');
    });

    it('a valid token with a satisfying scope: 200 and typed claims', async () => {
      const token = await g.token('orders');
      const response = await fetch(url(), { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { auth: AccessTokenClaims };
      expect(body.auth).toMatchObject({ format: 'jwt', aud: [API], scopes: ['orders'], client_id: g.caller.clientId });
    });

    it('insufficient scope: 403 with scope', async () => {
      const token = await g.token('reports:read');
      const response = await fetch(url(), { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(response.headers.get('www-authenticate')).toContain('scope="orders:items"');
      expect(await response.json()).toMatchObject({ error: 'insufficient_scope', scope: 'orders:items' });
    });

    it('an invalid token: 401 invalid_token', async () => {
      const token = await g.token('orders');
      const response = await fetch(url(), { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await response.json()).toMatchObject({ error: 'invalid_token' });
    });

    it('a token in the query string is ignored; with a header too it is invalid_request', async () => {
      const token = await g.token('orders');
      const ignored = await fetch(`${url()}?access_token=${token}`);
      expect(ignored.status).toBe(401);
      expect(ignored.headers.get('www-authenticate')).not.toContain('error=');
      const both = await fetch(`${url()}?access_token=${token}`, { headers: { authorization: `Bearer ${token}` } });
      expect(both.status).toBe(400);
      expect(both.headers.get('www-authenticate')).toContain('error="invalid_request"');
    });
  });

  describe('fastify specifics', () => {
    it('the plugin protects its own context only, and challenges name the RFC 9728 metadata', async () => {
      const base = servers.fastify!.url;
      expect((await fetch(`${base}/public`)).status).toBe(200);
      const metadata = await fetch(`${base}/.well-known/oauth-protected-resource`);
      expect(await metadata.json()).toEqual({ resource: API, authorization_servers: [g.t.issuer], scopes_supported: ['orders', 'reports:read'], bearer_methods_supported: ['header'] });
      const denied = await fetch(`${base}/orders`);
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toBe(`Bearer realm="${API}", resource_metadata="${metadataUrl}"`);
      const token = await g.token('reports:read');
      const ok = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { auth: AccessTokenClaims }).auth.scopes).toEqual(['reports:read']);
    });

    it('a token in a form body together with the header is invalid_request', async () => {
      const token = await g.token('orders');
      const response = await fetch(`${servers.fastify!.url}/form`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: `access_token=${token}`,
      });
      expect(response.status).toBe(400);
      const alone = await fetch(`${servers.fastify!.url}/form`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
      expect(alone.status).toBe(200);
    });

    it('opaque tokens through introspection; revoked ones are refused', async () => {
      const token = await g.token('opaque:read');
      const ok = await fetch(`${servers.fastify!.url}/opaque`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { auth: AccessTokenClaims }).auth).toMatchObject({ format: 'opaque', aud: [OPAQUE_API] });
      await g.revoke(token);
      const revoked = await fetch(`${servers.fastify!.url}/opaque`, { headers: { authorization: `Bearer ${token}` } });
      expect(revoked.status).toBe(401);
      expect(revoked.headers.get('www-authenticate')).toContain('error="invalid_token"');
    });
  });

  it('protected-resource metadata helpers', () => {
    expect(protectedResourceMetadataUrl('https://api.example.com')).toBe('https://api.example.com/.well-known/oauth-protected-resource');
    expect(protectedResourceMetadataUrl('https://example.com/api/v1')).toBe('https://example.com/.well-known/oauth-protected-resource/api/v1');
    expect(() => protectedResourceMetadata({ resource: 'https://a.example.com/#x', authorizationServers: [] })).toThrow(TypeError);
  });
});
