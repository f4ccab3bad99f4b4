import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { basicAuth, postForm, startTestServer, type TestServer } from '../../../server/test/helpers/server.js';
import { BearerError } from '../../src/index.js';

export const API = 'https://api.example.com';
export const OTHER_API = 'https://other.example.com';
export const OPAQUE_API = 'https://opaque.example.com';

export interface Credentials {
  clientId: string;
  clientSecret: string;
}

export interface Gatehouse {
  t: TestServer;
  /** The client that represents the APIs (introspection credentials). */
  api: Credentials;
  /** A client that calls the APIs. */
  caller: Credentials;
  token(scope: string, as?: Credentials): Promise<string>;
  revoke(token: string, as?: Credentials): Promise<void>;
}

function secretOf(c: { clientId: string; clientSecret?: string }): Credentials {
  if (c.clientSecret === undefined) throw new Error('no secret');
  return { clientId: c.clientId, clientSecret: c.clientSecret };
}

/** A real Gatehouse with three resources, the API's own client and a caller. */
export async function startGatehouse(config: Parameters<typeof startTestServer>[0] = {}): Promise<Gatehouse> {
  const t = await startTestServer(config);
  const api = secretOf(await t.createClient({ client_name: 'the api', scope: 'ping' }));
  await t.createResource('https://ping.example.com', ['ping']);
  await t.createResource(API, ['orders', 'reports:read', 'admin'], { clientId: api.clientId });
  await t.createResource(OTHER_API, ['other']);
  await t.createResource(OPAQUE_API, ['opaque:read', 'opaque:write'], { format: 'opaque', clientId: api.clientId });
  const caller = secretOf(await t.createClient({ client_name: 'caller', scope: 'orders reports:read other opaque:read opaque:write' }));
  return {
    t,
    api,
    caller,
    async token(scope, as = caller) {
      const response = await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', scope }, { authorization: basicAuth(as.clientId, as.clientSecret) });
      if (response.status !== 200) throw new Error(`token: ${response.status} ${response.text}`);
      return (response.body as { access_token: string }).access_token;
    },
    async revoke(token, as = caller) {
      const response = await postForm(`${t.issuer}/revoke`, { token }, { authorization: basicAuth(as.clientId, as.clientSecret) });
      if (response.status !== 200) throw new Error(`revoke: ${response.status} ${response.text}`);
    },
  };
}

/** Asserts a promise rejects with a BearerError of this status and code; returns it. */
export async function expectBearerError(promise: Promise<unknown>, status: number, code: string | undefined): Promise<BearerError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a BearerError').toBeInstanceOf(BearerError);
  const error = caught as BearerError;
  expect({ status: error.status, code: error.code, description: error.description }).toMatchObject({ status, code });
  return error;
}

/** A node:http server on 127.0.0.1 that counts connections (must stay 0 for jku/x5u targets). */
export async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string; connections: () => number; close: () => Promise<void> }> {
  const server = createServer(handler);
  let connections = 0;
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
