import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORM_FIELDS } from '../../src/interaction/pages.js';
import { BrowserAgent, pageKind, pkcePair, readForm } from '../helpers/browser-agent.js';
import { countConnections, startGatehouseCluster, stopAllGatehouseProcesses, type GatehouseCluster, type GatehouseInstance } from '../helpers/cluster.js';
import { createPostgresSchema, TEST_DATABASE_URL } from '../helpers/postgres.js';
import { basicAuth, postForm, startTestServer } from '../helpers/server.js';

/**
 * Graceful shutdown of `gatehouse start` on SIGTERM: it stops accepting connections, answers the
 * requests in flight, closes the database pool and exits 0, promptly.
 *
 * A request is "in flight" here when the server has its headers and is waiting for the rest of
 * its body: the test holds the body back, sends SIGTERM, and only then sends the rest. That makes
 * "in flight at the signal" certain rather than a matter of timing, and it is the slowest kind
 * of request a server can have at that moment.
 */

const API = 'https://api.example.com';
const REDIRECT_URI = 'https://client.example.com/cb';
const PASSWORD = 'correct horse battery staple';
/** http.requestTimeout for these instances: a request that never completes is cut after it. */
const REQUEST_TIMEOUT_MS = 3000;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface HeldRequest {
  /** Sends the rest of the body. */
  finish(): void;
  answer: Promise<Answer>;
}

/** A POST whose headers and the first half of its body are sent now, the rest on `finish()`. */
function holdRequest(agent: Agent, url: string, path: string, body: string, headers: Record<string, string> = {}): HeldRequest {
  const target = new URL(url);
  const req = httpRequest({
    agent,
    host: target.hostname,
    port: target.port,
    method: 'POST',
    path,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), ...headers },
    timeout: 15_000,
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
  });
  // Awaited by the test; a test that fails before that must not leave an unhandled rejection.
  answer.catch(() => undefined);
  const half = Math.floor(body.length / 2);
  req.write(body.slice(0, half));
  return { finish: () => req.end(body.slice(half)), answer };
}

/** Whether a new TCP connection to `url` is accepted (false: refused). */
async function accepts(url: string): Promise<boolean> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(target.port), target.hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const DIALECTS = TEST_DATABASE_URL === undefined ? (['sqlite'] as const) : (['sqlite', 'postgres'] as const);

describe.each(DIALECTS)('graceful shutdown of gatehouse start on %s', { timeout: 60_000 }, (dialect) => {
  let cluster: GatehouseCluster;
  let server: GatehouseInstance;
  let svcAuth: string;
  let appId: string;
  /** Keep-alive connections, as browsers, proxies and load balancers hold them. */
  let agent: Agent;

  beforeAll(async () => {
    cluster = await startGatehouseCluster({ size: 1, dialect, config: { http: { requestTimeout: REQUEST_TIMEOUT_MS } } });
    [server] = cluster.instances as [GatehouseInstance];
    const svc = await cluster.cliJson<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'svc', '--scope', 'api:read']);
    svcAuth = basicAuth(svc.client_id, svc.client_secret);
    // Opaque tokens: each one is a row, so "answered" can be checked against "committed".
    await cluster.cliJson(['resources', 'create', '--identifier', API, '--name', 'API', '--scope', 'api:read', '--format', 'opaque']);
    const app = await cluster.cliJson<{ client_id: string }>(['clients', 'create', '--name', 'app', '--auth-method', 'none', '--grant-type', 'authorization_code', '--redirect-uri', REDIRECT_URI, '--scope', 'openid']);
    appId = app.client_id;
    await cluster.cliJson(['users', 'create', '--username', 'dave'], `${PASSWORD}\n`);
  });

  afterAll(async () => {
    agent?.destroy();
    try {
      await cluster?.close();
    } finally {
      stopAllGatehouseProcesses();
    }
  });

  /**
   * A freshly started instance and a fresh agent. Each test stops the instance; should one have
   * failed before that, its process is killed here first.
   */
  let usedRun = 0;
  async function running(): Promise<GatehouseInstance> {
    if (server.running && server.starts === usedRun) await server.kill('SIGKILL');
    if (!server.running) await server.start();
    usedRun = server.starts;
    agent?.destroy();
    agent = new Agent({ keepAlive: true, maxSockets: Infinity });
    return server;
  }

  const tokenBody = 'grant_type=client_credentials&scope=api%3Aread';

  /** Lets the server read what was sent: a round trip on another connection, then a pause. */
  async function settle(): Promise<void> {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    await sleep(150);
  }

  it('answers the requests in flight at SIGTERM (token requests and an argon2id sign-in), refuses new connections, exits 0 right after', async () => {
    await running();
    // A sign-in form, ready to be posted.
    const browser = new BrowserAgent(server.url);
    const { challenge } = await pkcePair();
    const loginPage = await browser.startAuthorization({ response_type: 'code', client_id: appId, redirect_uri: REDIRECT_URI, scope: 'openid', state: 's', code_challenge: challenge, code_challenge_method: 'S256' });
    expect(pageKind(loginPage.text)).toBe('login');
    const form = readForm(loginPage);
    const signInBody = new URLSearchParams({ ...form.fields, [FORM_FIELDS.username]: 'dave', [FORM_FIELDS.password]: PASSWORD }).toString();
    // A kept-alive connection that already served a request, idle at the signal.
    const warm = await postForm(`${server.url}/token`, tokenBody, { authorization: svcAuth });
    expect(warm.status).toBe(200);
    const connectionsBefore = dialect === 'postgres' ? await countConnections(cluster.applicationName(server)) : 0;
    if (dialect === 'postgres') expect(connectionsBefore).toBeGreaterThan(0);

    const tokens = Array.from({ length: 20 }, () => holdRequest(agent, server.url, '/token', tokenBody, { authorization: svcAuth }));
    const signIn = holdRequest(agent, server.url, new URL(form.action).pathname, signInBody, { cookie: browser.cookieHeader() });
    // And one raw connection with a request in flight and, pipelined behind it, a second request
    // that arrives after the signal: the second must not be served.
    const raw = connect(Number(new URL(server.url).port), '127.0.0.1');
    let rawText = '';
    raw.setEncoding('utf8').on('data', (chunk: string) => (rawText += chunk));
    const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.on('error', () => undefined);
    raw.write(`POST /token HTTP/1.1\r\nhost: x\r\nauthorization: ${svcAuth}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${tokenBody.length}\r\n\r\n${tokenBody.slice(0, 10)}`);
    await settle();

    const signalledAt = Date.now();
    server.signal('SIGTERM');
    await sleep(300);
    // Draining: still running (it has requests to answer), but no longer accepting connections.
    expect(server.running).toBe(true);
    expect(await accepts(server.url)).toBe(false);

    for (const request of tokens) request.finish();
    signIn.finish();
    raw.write(`${tokenBody.slice(10)}GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`);
    const answers = await Promise.all(tokens.map((r) => r.answer));
    const signedIn = await signIn.answer;
    await rawClosed;
    const answeredAt = Date.now();

    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ token_type: 'Bearer', scope: 'api:read' });
    }
    // The sign-in (argon2id) completed: 303 onwards, with a session cookie.
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.location).toMatch(/\/interaction\//);
    const setCookies = signedIn.headers['set-cookie'] ?? [];
    expect(setCookies.length).toBeGreaterThan(0);
    // On the raw connection: the request in flight got its token with `Connection: close`, and the
    // connection was closed after it: the request pipelined behind it, sent after the signal, was
    // never executed (a client retries it on another instance).
    const statuses = [...rawText.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    expect(statuses).toEqual(['200']);
    expect(rawText).toMatch(/^connection: close\r$/im);
    for (const answer of answers) expect(answer.headers.connection).toBe('close');

    // Exit 0 as soon as the last answer is out: the kept-alive connections (held for 5 s by the
    // server's keepAliveTimeout if nothing closed them) do not hold it.
    const exit = await server.waitForExit(5000, answeredAt);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit?.ms).toBeLessThan(2000);
    expect(Date.now() - signalledAt).toBeLessThan(4000);
    if (dialect === 'postgres') {
      // The pool's connections are gone (the server notices a closed connection at once; polled briefly).
      let left = await countConnections(cluster.applicationName(server));
      for (let i = 0; i < 20 && left > 0; i++) {
        await sleep(100);
        left = await countConnections(cluster.applicationName(server));
      }
      expect(left).toBe(0);
    }

    // What was answered during the drain was committed: after a restart every token is active and
    // the session the sign-in made is known.
    await running();
    for (const answer of answers) {
      const { access_token: token } = JSON.parse(answer.body) as { access_token: string };
      const introspection = await postForm(`${server.url}/introspect`, { token }, { authorization: svcAuth });
      expect(introspection.body).toMatchObject({ active: true, scope: 'api:read' });
    }
    for (const header of setCookies) {
      const [pair = ''] = header.split(';');
      const eq = pair.indexOf('=');
      browser.cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const next = await browser.open(new URL(signedIn.headers.location ?? '/', server.url));
    expect(pageKind(next.text)).toBe('consent');
  });

  it('a second SIGTERM and a SIGINT during the drain change nothing: the request is answered, exit 0', async () => {
    await running();
    const held = holdRequest(agent, server.url, '/token', tokenBody, { authorization: svcAuth });
    await settle();
    server.signal('SIGTERM');
    await sleep(200);
    server.signal('SIGTERM');
    await sleep(100);
    server.signal('SIGINT');
    await sleep(200);
    expect(server.running).toBe(true);
    held.finish();
    const answer = await held.answer;
    expect(answer.status).toBe(200);
    const exit = await server.waitForExit(5000);
    expect(exit).toMatchObject({ code: 0, signal: null });
  });

  it('a client that never sends the rest of its request holds the drain no longer than http.requestTimeout', async () => {
    await running();
    const held = holdRequest(agent, server.url, '/token', tokenBody, { authorization: svcAuth });
    await settle();
    const exit = await server.kill('SIGTERM', REQUEST_TIMEOUT_MS + 5000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    // Cut at requestTimeout after the signal, not held for ever (nor until the 30 s grace).
    expect(exit.ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(exit.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2000);
    // Its connection was closed without an answer.
    await expect(held.answer).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it('an idle server with idle kept-alive connections exits 0 at once', async () => {
    await running();
    const warm = await Promise.all(Array.from({ length: 5 }, () => fetch(`${server.url}/healthz`).then((r) => r.status)));
    expect(warm).toEqual([200, 200, 200, 200, 200]);
    const exit = await server.kill('SIGTERM', 5000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(1500);
  });
});

describe.skipIf(TEST_DATABASE_URL === undefined)('close() on PostgreSQL', () => {
  it('ends every pool connection before it resolves, and a second close() waits for the same shutdown', async () => {
    const schema = await createPostgresSchema();
    const url = new URL(schema.url);
    const applicationName = `gatehouse-close-${process.pid}-${Date.now()}`;
    url.searchParams.set('application_name', applicationName);
    const t = await startTestServer({ dialect: 'sqlite', config: { databaseUrl: url.toString() } });
    try {
      const c = await t.createClient({ scope: '' });
      const auth = basicAuth(c.clientId, c.clientSecret ?? '');
      const answers = await Promise.all(Array.from({ length: 10 }, () => postForm(`${t.url}/token`, { grant_type: 'client_credentials' }, { authorization: auth })));
      expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 10 }, () => 200));
      expect(await countConnections(applicationName)).toBeGreaterThan(0);
      let firstDone = false;
      const first = t.server.close().then(() => (firstDone = true));
      // A second call resolves only once the first shutdown has finished.
      await t.server.close();
      expect(firstDone).toBe(true);
      await first;
      // This process is still alive: the connections were ended by the pool, not by an exit.
      let left = await countConnections(applicationName);
      for (let i = 0; i < 20 && left > 0; i++) {
        await sleep(100);
        left = await countConnections(applicationName);
      }
      expect(left).toBe(0);
    } finally {
      await t.close();
      await schema.drop();
    }
  });
});
