import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticateNodeRequest, createAccessTokenVerifier } from '../../resource/src/index.js';
import { basicAuth, postForm, startTestServer, type TestServer } from '../../server/test/helpers/server.js';
import { createAuthenticatedFetch, createTokenSource, isInvalidTokenChallenge, isReplayable, type TokenSource } from '../src/index.js';
import { confidentialClient, countingFetch } from './helpers/harness.js';

const REPORTS = 'https://reports.example.com';

/** What the API saw: the token of each request and the body it read. */
interface Hit {
  method: string;
  path: string;
  token: string;
  body: string;
}

describe('the fetch wrapper against a real API (@gatehouse/resource, opaque tokens introspected at Gatehouse)', () => {
  let t: TestServer;
  let caller: { clientId: string; clientSecret: string };
  let api: Server;
  let apiUrl: string;
  const hits: Hit[] = [];
  let tokens: TokenSource;
  let counter: ReturnType<typeof countingFetch>;

  beforeAll(async () => {
    t = await startTestServer();
    const apiClient = await confidentialClient(t, { client_name: 'reports api', scope: '' });
    await t.createResource(REPORTS, ['reports:read', 'reports:admin'], { format: 'opaque', clientId: apiClient.clientId });
    caller = await confidentialClient(t, { client_name: 'reports caller', scope: 'reports:read' });
    // No introspection cache: a revoked token is refused at once.
    const verifier = createAccessTokenVerifier({ issuer: t.issuer, audience: REPORTS, introspection: { ...apiClient, cacheMaxAge: 0 } });
    api = createServer((req, res) => {
      void (async () => {
        const body = await text(req);
        const path = new URL(req.url ?? '/', 'http://api').pathname;
        hits.push({ method: req.method ?? '', path, token: /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '', body });
        const claims = await authenticateNodeRequest(verifier, req, res, { scopes: path === '/admin' ? ['reports:admin'] : ['reports:read'] });
        if (claims === undefined) return;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ client_id: claims.client_id, received: body }));
      })();
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    counter = countingFetch();
    tokens = createTokenSource({ issuer: t.issuer, ...caller, scope: 'reports:read', resource: REPORTS, fetch: counter.fetch });
  });

  afterAll(async () => {
    tokens?.close();
    await new Promise<void>((resolve) => (api ? api.close(() => resolve()) : resolve()));
    await t?.close();
  });

  /** Revokes a token at Gatehouse (RFC 7009), as an administrator or a leak response would. */
  async function revoke(token: string) {
    const answer = await postForm(`${t.issuer}/revoke`, { token }, { authorization: basicAuth(caller.clientId, caller.clientSecret) });
    expect(answer.status).toBe(200);
  }

  const tokenRequests = () => counter.count('/token');

  it('sends the token as a Bearer header', async () => {
    const response = await tokens.fetch(`${apiUrl}/reports`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ client_id: caller.clientId, received: '' });
    expect(hits.at(-1)?.token).toBe(await tokens.getToken());
  });

  it('a 401 invalid_token (revoked token) drops the token and repeats the request once with a new one', async () => {
    const old = await tokens.getToken();
    await revoke(old);
    const before = { hits: hits.length, tokens: tokenRequests() };
    const response = await tokens.fetch(`${apiUrl}/reports`, { method: 'POST', body: 'a replayable body', headers: { 'content-type': 'text/plain' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ received: 'a replayable body' });
    const attempts = hits.slice(before.hits);
    expect(attempts.map((h) => h.body)).toEqual(['a replayable body', 'a replayable body']);
    expect(attempts[0]?.token).toBe(old);
    expect(attempts[1]?.token).not.toBe(old);
    expect(tokenRequests()).toBe(before.tokens + 1);
  });

  it('replays in-memory bodies (URLSearchParams, bytes) but not a stream: the 401 comes back as is', async () => {
    await revoke(await tokens.getToken());
    let before = hits.length;
    const form = await tokens.fetch(`${apiUrl}/reports`, { method: 'POST', body: new URLSearchParams({ a: '1' }) });
    expect(form.status).toBe(200);
    expect(hits.length - before).toBe(2);

    await revoke(await tokens.getToken());
    before = hits.length;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed'));
        controller.close();
      },
    });
    const init = { method: 'POST', body: stream, duplex: 'half' } as RequestInit;
    expect(isReplayable(`${apiUrl}/reports`, init)).toBe(false);
    const streamed = await tokens.fetch(`${apiUrl}/reports`, init);
    expect(streamed.status).toBe(401);
    expect(isInvalidTokenChallenge(streamed)).toBe(true);
    expect(hits.length - before).toBe(1);
    // The revoked token was not dropped (no retry happened), so drop it and go on.
    tokens.invalidate();
  });

  it('a 403 insufficient_scope is returned untouched, without a new token', async () => {
    await tokens.getToken();
    const before = { hits: hits.length, tokens: tokenRequests() };
    const response = await tokens.fetch(`${apiUrl}/admin`);
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect(hits.length - before.hits).toBe(1);
    expect(tokenRequests()).toBe(before.tokens);
  });

  it('retries exactly once: when the new token is refused too, that 401 is returned', async () => {
    // A provider whose every token is already revoked (each one real, from Gatehouse).
    const invalidated: string[] = [];
    const provider = {
      async getToken() {
        const answer = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', resource: REPORTS }, { authorization: basicAuth(caller.clientId, caller.clientSecret) });
        const token = (answer.body as { access_token: string }).access_token;
        await revoke(token);
        return token;
      },
      invalidate(token?: string) {
        if (token !== undefined) invalidated.push(token);
      },
    };
    const before = hits.length;
    const response = await createAuthenticatedFetch(provider)(`${apiUrl}/reports`);
    expect(response.status).toBe(401);
    expect(hits.length - before).toBe(2);
    expect(invalidated).toEqual([hits[before]?.token]);
  });

  it('recognises invalid_token challenges only', () => {
    const challenge = (status: number, header?: string) => new Response(null, { status, headers: header === undefined ? {} : { 'www-authenticate': header } });
    expect(isInvalidTokenChallenge(challenge(401, 'Bearer realm="api", error="invalid_token"'))).toBe(true);
    expect(isInvalidTokenChallenge(challenge(401, 'Bearer error=invalid_token'))).toBe(true);
    expect(isInvalidTokenChallenge(challenge(401, 'Basic realm="x", Bearer realm="api", error="invalid_token", error_description="expired"'))).toBe(true);
    expect(isInvalidTokenChallenge(challenge(401, 'Bearer realm="api"'))).toBe(false);
    expect(isInvalidTokenChallenge(challenge(401, 'Basic realm="api"'))).toBe(false);
    expect(isInvalidTokenChallenge(challenge(403, 'Bearer error="invalid_token"'))).toBe(false);
    expect(isInvalidTokenChallenge(challenge(401))).toBe(false);
  });
});
