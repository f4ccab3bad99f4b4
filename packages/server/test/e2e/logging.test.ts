import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, redact } from '../../src/logging.js';
import { createAuthorizationServer, type AuthorizationServer } from '../../src/server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { basicAuth, postForm } from '../helpers/server.js';
import { createClient } from '../../src/admin/client-admin.js';

describe('redact', () => {
  it.each([
    [{ client_secret: 's' }, { client_secret: '[redacted]' }],
    [{ a: { b: { c: { d: { e: { token: 't' } } } } } }, { a: { b: { c: { d: { e: { token: '[redacted]' } } } } } }],
    [{ headers: { Authorization: 'Bearer x', cookie: 'c' } }, { headers: { Authorization: '[redacted]', cookie: '[redacted]' } }],
    [{ list: [{ password: 'p' }, { ok: 1 }] }, { list: [{ password: '[redacted]' }, { ok: 1 }] }],
    [{ method: 'POST', status: 200 }, { method: 'POST', status: 200 }],
  ])('%j → %j', (input, expected) => {
    expect(redact(input)).toEqual(expected);
  });

  it("keeps an error's code (an error code, not an authorization code) and redacts its secrets", () => {
    const err = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED', password: 'p' });
    expect(redact({ err })).toMatchObject({ err: { code: 'ECONNREFUSED', password: '[redacted]', message: 'connect failed' } });
    expect(redact({ err: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })).toMatchObject({ err: { code: 'ECONNRESET' } });
    expect(redact({ query: { code: 'authorization-code' } })).toEqual({ query: { code: '[redacted]' } });
  });

  it('does not copy objects that hold no secret, and never mutates its input', () => {
    const clean = { method: 'GET', nested: { a: 1 } };
    expect(redact(clean)).toBe(clean);
    const dirty = { nested: { refresh_token: 'r' } };
    redact(dirty);
    expect(dirty.nested.refresh_token).toBe('r');
  });
});

describe('request logs', () => {
  const lines: string[] = [];
  let server: AuthorizationServer;
  let dir: string;
  let issuer: string;
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      done();
    },
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-log-'));
    server = await createAuthorizationServer({ port: 0, dataDir: dir }, { logger: createLogger('info', capture) });
    // The configured issuer says port 0; talk to the bound address.
    issuer = await server.listen();
  });

  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes one JSON line per request with id, method, route, status and duration, and no secret', async () => {
    const created = await createClient(
      server.storage.clients,
      { client_name: null, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], post_logout_redirect_uris: [], first_party: false, always_issue_refresh_token: false, id_token_signed_response_alg: null, scope: [], token_endpoint_auth_method: 'client_secret_basic', token_endpoint_auth_signing_alg: null, jwks: null, jwks_uri: null, contacts: [], owner: null, access_token_ttl: null },
      Math.floor(Date.now() / 1000),
      { dynamicallyRegistered: false, registrationToken: false },
    );
    const secret = created.clientSecret ?? '';
    const ok = await postForm(`${issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basicAuth(created.client.clientId, secret) });
    expect(ok.status).toBe(200);
    const token = (ok.body as { access_token: string }).access_token;
    await postForm(`${issuer}/token`, { grant_type: 'client_credentials', client_id: created.client.clientId, client_secret: 'wrong-secret-value' });
    await postForm(`${issuer}/introspect`, { token }, { authorization: basicAuth(created.client.clientId, secret) });
    await postForm(`${issuer}/revoke`, { token }, { authorization: basicAuth(created.client.clientId, secret) });
    await server.close();

    const requests = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(requests.map((r) => [r.method, r.route, r.status])).toEqual([
      ['POST', '/token', 200],
      ['POST', '/token', 401],
      ['POST', '/introspect', 200],
      ['POST', '/revoke', 200],
    ]);
    for (const r of requests) {
      expect(typeof r.reqId).toBe('string');
      expect(typeof r.ms).toBe('number');
    }
    const all = lines.join('\n');
    for (const secretValue of [secret, token, 'wrong-secret-value', token.split('.')[2] ?? '']) expect(all).not.toContain(secretValue);
  });
});
