import { proxiedPostgres, type CuttableProxy } from '../helpers/cuttable-proxy.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { TEST_DATABASE_URL, type PostgresSchema } from '../helpers/postgres.js';

describe.skipIf(TEST_DATABASE_URL === undefined)('PostgreSQL outage', () => {
  let schema: PostgresSchema;
  let proxy: CuttableProxy;
  let t: TestServer;
  let creds: { clientId: string; clientSecret: string };
  /** The database URL through the proxy. */
  let proxiedUrl: string;

  beforeAll(async () => {
    ({ schema, proxy, url: proxiedUrl } = await proxiedPostgres());
    t = await startTestServer({ dialect: 'sqlite', config: { databaseUrl: proxiedUrl } });
    const c = await t.createClient({ scope: '' });
    creds = { clientId: c.clientId, clientSecret: c.clientSecret ?? '' };
  });

  afterAll(async () => {
    await proxy.cut();
    await t.close();
    await schema.drop();
  });

  const token = () => postForm(`${t.issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basicAuth(creds.clientId, creds.clientSecret) });

  it('answers 503 temporarily_unavailable and issues nothing while the database is down, then recovers by itself', async () => {
    expect((await token()).status).toBe(200);
    await proxy.cut();

    // The in-memory client copy stops serving at the first failed change poll (one interval at most).
    const deadline = Date.now() + 2 * 1000 + 500;
    let down = await token();
    while (down.status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      down = await token();
    }
    expect(down.status).toBe(503);
    expect(down.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' });
    expect(down.headers.get('cache-control')).toBe('no-store');
    expect(down.headers.get('retry-after')).toBe('5');
    const introspection = await postForm(`${t.issuer}/introspect`, { token: 'x' }, { authorization: basicAuth(creds.clientId, creds.clientSecret) });
    expect(introspection.status).toBe(503);
    const ready = await fetch(`${t.issuer}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { database: 'failing' } });
    expect((await fetch(`${t.issuer}/healthz`)).status).toBe(200);
    // Once refused, every request is refused while the database is away.
    for (let i = 0; i < 5; i++) expect((await token()).status).toBe(503);

    await proxy.start();
    expect((await token()).status).toBe(200);
    expect((await fetch(`${t.issuer}/readyz`)).status).toBe(200);
  });

  it('with cache.refreshInterval 0 every request reads the database: the first request after the cut is refused', async () => {
    const strict = await startTestServer({ dialect: 'sqlite', shareStorageWith: t, config: { databaseUrl: proxiedUrl, cache: { refreshInterval: 0 } } });
    try {
      const c = await strict.createClient({ scope: '' });
      const ask = () => postForm(`${strict.issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basicAuth(c.clientId, c.clientSecret ?? '') });
      expect((await ask()).status).toBe(200);
      await proxy.cut();
      expect((await ask()).status).toBe(503);
      await proxy.start();
      expect((await ask()).status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});
