import { proxiedPostgres, type CuttableProxy } from '../helpers/cuttable-proxy.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { FORM_FIELDS } from '../../src/interaction/pages.js';
import { expectOAuthError } from '../helpers/answers.js';
import { BrowserAgent, createCodeClient, createUser, pageKind, pageTitle, pkcePair, readForm } from '../helpers/browser-agent.js';
import { DEVICE_GRANT, enterUserCode, openVerification, pollToken, startDeviceAuthorization } from '../helpers/device.js';
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

  it('browser pages answer a 503 page (Retry-After, no-store) and device polls 503 JSON while it is down; both flows resume after', async () => {
    const user = await createUser(t, { username: 'outage-user' });
    const tv = await t.createClient({ client_name: 'TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: '' });
    const client = { clientId: tv.clientId, form: { client_id: tv.clientId }, headers: {} };
    const started = await startDeviceAuthorization(t, client);
    const agent = new BrowserAgent(t.issuer);
    const entry = await openVerification(agent, user);
    const codeClient = await createCodeClient(t, { scope: 'openid' });
    const { challenge } = await pkcePair();
    const authorize = `/authorize?${new URLSearchParams({ response_type: 'code', client_id: codeClient.clientId, redirect_uri: codeClient.redirectUri, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', state: 's' }).toString()}`;

    await proxy.cut();
    const deadline = Date.now() + 2500;
    let poll = await pollToken(t, client, started.device_code);
    while (poll.status !== 503 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      poll = await pollToken(t, client, started.device_code);
    }
    expectOAuthError(poll, 503, 'temporarily_unavailable');
    for (const page of [await agent.get('/device'), await enterUserCode(agent, entry, started.user_code), await agent.get(authorize)]) {
      expect(page.status).toBe(503);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(page.headers.get('retry-after')).toBe('5');
      expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(pageTitle(page.text)).toBe('Temporarily unavailable');
    }

    await proxy.start();
    expectOAuthError(await pollToken(t, client, started.device_code), 400, 'authorization_pending');
    const confirm = await enterUserCode(agent, await openVerification(agent, user), started.user_code);
    await agent.submit(readForm(confirm), { [FORM_FIELDS.decision]: 'approve' });
    t.clock.advance(10);
    expect((await pollToken(t, client, started.device_code)).status).toBe(200);
    expect(pageKind((await agent.open(authorize)).text)).toBe('consent');
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
