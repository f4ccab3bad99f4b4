import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../server/test/helpers/server.js';
import { createTokenSource, GatehouseClientError } from '../src/index.js';
import { countingFetch } from './helpers/harness.js';

/** The benchmark's reference server: node-oidc-provider 9 with client credentials and RFC 8707 resources. */
const REFERENCE_SERVER = fileURLToPath(new URL('../../../bench/oidc-provider-server.mjs', import.meta.url));
const RESOURCE = 'https://api.bench.example';

describe('not only Gatehouse: the token source against node-oidc-provider', () => {
  let child: ChildProcess;
  let issuer: string;
  const clientId = 'interop';
  const clientSecret = 'an interop secret that is long enough to be a real one';

  beforeAll(async () => {
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [REFERENCE_SERVER, JSON.stringify({ port, format: 'jwt', clientId, clientSecret })], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('node-oidc-provider did not start')), 10_000);
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        if (chunk.includes('"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', () => reject(new Error('node-oidc-provider exited')));
    });
  });

  afterAll(async () => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });

  it('discovers, gets one token for many callers, and the token verifies against that server’s JWKS', async () => {
    const counter = countingFetch();
    const tokens = createTokenSource({ issuer, clientId, clientSecret, scope: 'bench:read', resource: RESOURCE, fetch: counter.fetch });
    const results = await Promise.all(Array.from({ length: 50 }, () => tokens.getToken()));
    expect(new Set(results).size).toBe(1);
    expect(counter.count('/token')).toBe(1);
    const { payload } = await jwtVerify(results[0] ?? '', createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: RESOURCE });
    expect(payload.client_id).toBe(clientId);
    tokens.close();
  });

  it('invalid_client from another server: one request, not retried', async () => {
    const counter = countingFetch();
    const tokens = createTokenSource({ issuer, clientId, clientSecret: 'wrong', scope: 'bench:read', resource: RESOURCE, fetch: counter.fetch, retry: { attempts: 5, baseDelay: 1 } });
    const err = await tokens.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatehouseClientError);
    expect({ code: (err as GatehouseClientError).code, status: (err as GatehouseClientError).status }).toEqual({ code: 'invalid_client', status: 401 });
    expect(counter.count('/token')).toBe(1);
  });
});
