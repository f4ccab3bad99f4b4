import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { createPostgresSchema, TEST_DATABASE_URL, type PostgresSchema } from '../helpers/postgres.js';

/** A TCP proxy in front of PostgreSQL that the test can cut and restore: a database outage on demand. */
class CuttableProxy {
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  constructor(
    private readonly target: { host: string; port: number },
    public port = 0,
  ) {}

  async start(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address === 'object' && address) this.port = address.port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#server = undefined;
  }
}

describe.skipIf(TEST_DATABASE_URL === undefined)('PostgreSQL outage', () => {
  let schema: PostgresSchema;
  let proxy: CuttableProxy;
  let t: TestServer;
  let creds: { clientId: string; clientSecret: string };
  /** The database URL through the proxy. */
  let proxiedUrl: string;

  beforeAll(async () => {
    schema = await createPostgresSchema();
    const db = new URL(schema.url);
    proxy = new CuttableProxy({ host: db.hostname, port: Number(db.port || 5432) });
    await proxy.start();
    db.host = `127.0.0.1:${proxy.port}`;
    proxiedUrl = db.toString();
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
