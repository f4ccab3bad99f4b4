/**
 * End to end: the example API in examples/orders-api (Fastify + @gatehouse/resource, resolved
 * through the workspace link like any consumer) in front of a real Gatehouse.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrdersApi, type Order } from '../../../examples/orders-api/server.mjs';
import { basicAuth, postForm, startTestServer, type TestServer } from '../../server/test/helpers/server.js';

const ORDERS_API = 'https://orders.example.com';
const OTHER_API = 'https://billing.example.com';

interface Credentials {
  clientId: string;
  clientSecret: string;
}

describe('examples/orders-api against a real Gatehouse', () => {
  let t: TestServer;
  let api: FastifyInstance;
  let base: string;
  let reader: Credentials;
  let writer: Credentials;
  let other: Credentials;

  async function client(name: string, scope: string): Promise<Credentials> {
    const created = await t.createClient({ client_name: name, scope });
    if (created.clientSecret === undefined) throw new Error('no secret');
    return { clientId: created.clientId, clientSecret: created.clientSecret };
  }

  async function token(as: Credentials, scope: string): Promise<string> {
    const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', scope }, { authorization: basicAuth(as.clientId, as.clientSecret) });
    expect(response.status, response.text).toBe(200);
    return (response.body as { access_token: string }).access_token;
  }

  const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
  const postOrder = (headers: Record<string, string>, body: unknown = { item: 'widget', quantity: 2 }) =>
    fetch(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  beforeAll(async () => {
    t = await startTestServer();
    await t.createResource(ORDERS_API, ['orders:read', 'orders:write']);
    await t.createResource(OTHER_API, ['billing:read']);
    reader = await client('orders reader', 'orders:read');
    writer = await client('orders writer', 'orders:write');
    other = await client('billing reader', 'billing:read');
    api = createOrdersApi({ issuer: t.issuer, audience: ORDERS_API });
    base = await api.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await api?.close();
    await t?.close();
  });

  it('no token: 401 with a bare challenge naming the realm and the metadata, no error', async () => {
    for (const response of [await fetch(`${base}/orders`), await postOrder({})]) {
      expect(response.status).toBe(401);
      const challenge = response.headers.get('www-authenticate');
      expect(challenge).toBe(`Bearer realm="${ORDERS_API}", resource_metadata="${ORDERS_API}/.well-known/oauth-protected-resource"`);
      expect(challenge).not.toContain('error=');
    }
  });

  it('no token and a malformed body: still 401, the body is not looked at first', async () => {
    const response = await postOrder({}, { nonsense: true });
    expect(response.status).toBe(401);
  });

  it('a read token: GET 200', async () => {
    const response = await fetch(`${base}/orders`, { headers: bearer(await token(reader, 'orders:read')) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ orders: expect.any(Array) });
  });

  it('a read token on POST: 403 insufficient_scope with scope="orders:write"', async () => {
    const response = await postOrder(bearer(await token(reader, 'orders:read')));
    expect(response.status).toBe(403);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="orders:write"');
    expect(await response.json()).toMatchObject({ error: 'insufficient_scope', scope: 'orders:write' });
  });

  it('a write token: POST 201, and the order is listed', async () => {
    const response = await postOrder(bearer(await token(writer, 'orders:write')), { item: 'gear', quantity: 3 });
    expect(response.status).toBe(201);
    const order = (await response.json()) as Order;
    expect(order).toMatchObject({ item: 'gear', quantity: 3, placedBy: writer.clientId });
    expect(response.headers.get('location')).toBe(`/orders/${order.id}`);

    const listed = await fetch(`${base}/orders`, { headers: bearer(await token(reader, 'orders:read')) });
    expect(((await listed.json()) as { orders: Order[] }).orders).toContainEqual(order);
  });

  it('a write token cannot read (scopes are not implied across read/write)', async () => {
    const response = await fetch(`${base}/orders`, { headers: bearer(await token(writer, 'orders:write')) });
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toContain('scope="orders:read"');
  });

  it('a valid token for another audience: 401 invalid_token', async () => {
    const foreign = await token(other, 'billing:read');
    for (const response of [await fetch(`${base}/orders`, { headers: bearer(foreign) }), await postOrder(bearer(foreign))]) {
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await response.json()).toMatchObject({ error: 'invalid_token' });
    }
  });

  it('a tampered token: 401 invalid_token', async () => {
    const valid = await token(reader, 'orders:read');
    const response = await fetch(`${base}/orders`, { headers: bearer(`${valid.slice(0, -4)}AAAA`) });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('the RFC 9728 metadata lists the authorization server and the scopes', async () => {
    const response = await fetch(`${base}/.well-known/oauth-protected-resource`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      resource: ORDERS_API,
      authorization_servers: [t.issuer],
      scopes_supported: ['orders:read', 'orders:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Orders API',
    });
    // …and that authorization server's own metadata is where a client would go next.
    const as = (await (await fetch(`${t.issuer}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
    expect(as.issuer).toBe(t.issuer);
  });
});
