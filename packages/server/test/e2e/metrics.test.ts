import { randomBytes } from 'node:crypto';
import { RATE_BUCKETS } from '../../src/rate-limit/rate-limits.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { basicAuth, DIALECTS, postForm, startTestServer, type Dialect, type TestServer } from '../helpers/server.js';
import { expectOAuthError, toAnswer } from '../helpers/answers.js';

const ORDERS = 'https://orders.example.com';
const OPAQUE_API = 'https://opaque.example.com';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** One sample of the text exposition format: `name{label="value",…} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  samples: Sample[];
  /** `# TYPE name type` lines. */
  types: Map<string, string>;
}

/** Parses the Prometheus text format (0.0.4): comments, escaped label values, numbers, ±Inf and NaN. */
function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) types.set(type[1] as string, type[2] as string);
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const body = match[2] ?? '';
    const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let consumed = 0;
    for (let m = label.exec(body); m !== null; m = label.exec(body)) {
      labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed = label.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`malformed labels: ${line}`);
    const raw = match[3] as string;
    // prom-client writes NaN as `Nan`; Prometheus parses special values case-insensitively.
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : /^nan$/i.test(raw) ? NaN : Number(raw);
    if (Number.isNaN(value) && !/^nan$/i.test(raw)) throw new Error(`malformed value: ${line}`);
    samples.push({ name: match[1] as string, labels, value });
  }
  return { samples, types };
}

/** The value of the one sample with exactly these labels (undefined when absent). */
function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const found = exposition.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted);
  if (found.length > 1) throw new Error(`${name} ${wanted} appears ${found.length} times`);
  return found[0]?.value;
}

/** Every sample of a family: `{labels → value}` as sorted `k=v,…` strings, for whole-family assertions. */
function family(exposition: Exposition, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of exposition.samples.filter((x) => x.name === name)) {
    out[Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')] = s.value;
  }
  return out;
}

async function get(url: string, init: RequestInit = {}) {
  const response = await fetch(url, { redirect: 'manual', ...init });
  return toAnswer(response.status, response.headers, await response.text());
}

describe.each(DIALECTS)('Prometheus metrics on %s', (dialect: Dialect) => {
  let t: TestServer;
  let client: { clientId: string; clientSecret: string };

  function metricsUrl(): string {
    if (t.metricsUrl === undefined) throw new Error('metrics are off');
    return t.metricsUrl;
  }

  async function scrape(): Promise<{ text: string; exposition: Exposition }> {
    const answer = await get(metricsUrl());
    expect(answer.status).toBe(200);
    return { text: answer.text, exposition: parseExposition(answer.text) };
  }

  const token = (form: Record<string, string>, secret = client.clientSecret) =>
    postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', ...form }, { authorization: basicAuth(client.clientId, secret) });

  beforeAll(async () => {
    t = await startTestServer({ dialect });
    await t.createResource(ORDERS, ['orders:read']);
    await t.createResource(OPAQUE_API, ['opaque:read'], { format: 'opaque', ttl: 60 });
    const created = await t.createClient({ scope: 'orders:read opaque:read' });
    if (created.clientSecret === undefined) throw new Error('no secret');
    client = { clientId: created.clientId, clientSecret: created.clientSecret };
  });

  afterAll(async () => {
    await t.close();
  });

  it('serves the metrics on their own loopback listener, and not on the public one', async () => {
    expect(metricsUrl()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(metricsUrl()).port).not.toBe(new URL(t.url).port);

    const ok = await get(metricsUrl());
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(ok.headers.get('cache-control')).toBe('no-store');

    // The admin listener serves GET /metrics only.
    expect((await get(metricsUrl().replace(/\/metrics$/, '/'))).status).toBe(404);
    expect((await get(metricsUrl().replace(/\/metrics$/, '/healthz'))).status).toBe(404);
    expect((await get(metricsUrl(), { method: 'POST' })).status).toBe(404);

    // The public listener knows no /metrics: the JSON 404 of any unknown path.
    expectOAuthError(await get(`${t.issuer}/metrics`), 404, 'invalid_request', 'not found');
  });

  it('counts tokens by grant, errors by code, requests by route and status — exactly', async () => {
    const before = (await scrape()).exposition;
    // Every registered grant type is there from the start, at zero.
    expect(family(before, 'gatehouse_tokens_issued_total')).toEqual({
      'grant_type=authorization_code': 0,
      [`grant_type=${DEVICE_GRANT}`]: 0,
      'grant_type=refresh_token': 0,
      'grant_type=client_credentials': 0,
    });
    expect(family(before, 'gatehouse_oauth_errors_total')).toEqual({ 'endpoint=unmatched,error=invalid_request': 1 });
    const tokenRequestsBefore = family(before, 'gatehouse_http_requests_total');
    expect(Object.keys(tokenRequestsBefore).filter((k) => k.includes('route=/token'))).toEqual([]);

    for (let i = 0; i < 3; i++) expect((await token({ scope: 'orders:read' })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await token({ scope: 'opaque:read' })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await token({ scope: 'orders:read' }, 'wrong-secret')).status).toBe(401);
    expect((await token({ scope: 'billing:write' })).status).toBe(400); // invalid_scope
    expect((await token({ grant_type: 'password' })).status).toBe(400); // unsupported_grant_type
    expect((await get(`${t.issuer}/token`)).status).toBe(405);

    const { exposition } = await scrape();
    expect(family(exposition, 'gatehouse_tokens_issued_total')).toEqual({
      'grant_type=authorization_code': 0,
      [`grant_type=${DEVICE_GRANT}`]: 0,
      'grant_type=refresh_token': 0,
      'grant_type=client_credentials': 5,
    });
    expect(family(exposition, 'gatehouse_oauth_errors_total')).toEqual({
      'endpoint=unmatched,error=invalid_request': 1,
      'endpoint=/token,error=invalid_client': 2,
      'endpoint=/token,error=invalid_scope': 1,
      'endpoint=/token,error=unsupported_grant_type': 1,
      'endpoint=/token,error=invalid_request': 1,
    });
    const tokenRequests = Object.fromEntries(Object.entries(family(exposition, 'gatehouse_http_requests_total')).filter(([k]) => k.includes('route=/token')));
    expect(tokenRequests).toEqual({
      'method=POST,route=/token,status=200': 5,
      'method=POST,route=/token,status=401': 2,
      'method=POST,route=/token,status=400': 2,
      'method=GET,route=/token,status=405': 1,
    });
    expect(valueOf(exposition, 'gatehouse_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' })).toBe(1);

    // The latency histogram: one observation per request, cumulative buckets ending at +Inf.
    expect(exposition.types.get('gatehouse_http_request_duration_seconds')).toBe('histogram');
    expect(valueOf(exposition, 'gatehouse_http_request_duration_seconds_count', { route: '/token', method: 'POST' })).toBe(9);
    const buckets = exposition.samples.filter((s) => s.name === 'gatehouse_http_request_duration_seconds_bucket' && s.labels.route === '/token' && s.labels.method === 'POST');
    expect(buckets.map((b) => b.labels.le)).toEqual(['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    for (let i = 1; i < buckets.length; i++) expect((buckets[i] as Sample).value).toBeGreaterThanOrEqual((buckets[i - 1] as Sample).value);
    expect(buckets.at(-1)?.value).toBe(9);
    const sum = valueOf(exposition, 'gatehouse_http_request_duration_seconds_sum', { route: '/token', method: 'POST' }) ?? 0;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(30);

    expect(exposition.types.get('gatehouse_tokens_issued_total')).toBe('counter');
    expect(exposition.types.get('gatehouse_rate_limited_total')).toBe('counter');
    // Process metrics, prefixed.
    expect(valueOf(exposition, 'gatehouse_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(exposition.types.get('gatehouse_nodejs_eventloop_lag_seconds')).toBe('gauge');
  });

  it('exposes rateLimited(limit) for the rate limiter, by limit', async () => {
    expect(family((await scrape()).exposition, 'gatehouse_rate_limited_total')).toEqual({});
    t.server.metrics.rateLimited('token');
    t.server.metrics.rateLimited('token');
    t.server.metrics.rateLimited('introspection');
    expect(family((await scrape()).exposition, 'gatehouse_rate_limited_total')).toEqual({ 'limit=token': 2, 'limit=introspection': 1 });
  });

  it('reports database pool usage on PostgreSQL only', async () => {
    const { exposition } = await scrape();
    const pool = family(exposition, 'gatehouse_db_pool_connections');
    if (dialect === 'postgres') {
      expect(Object.keys(pool).sort()).toEqual(['state=idle', 'state=total', 'state=waiting']);
      expect(pool['state=total']).toBeGreaterThanOrEqual(1);
      expect(pool['state=idle']).toBeLessThanOrEqual(pool['state=total'] as number);
      expect(pool['state=waiting']).toBe(0);
      expect(valueOf(exposition, 'gatehouse_db_pool_max_connections')).toBe(10);
    } else {
      // SQLite has no pool: nothing made up.
      expect(pool).toEqual({});
      expect(exposition.types.has('gatehouse_db_pool_connections')).toBe(false);
    }
  });

  it('counts janitor deletions by table, through the run the schedule makes', async () => {
    // Two opaque tokens (60 s) were stored above; past their expiry the janitor deletes them.
    t.clock.advance(61);
    const report = await t.server.runJanitor();
    expect(report?.opaque_access_tokens).toBe(2);
    let janitor = family((await scrape()).exposition, 'gatehouse_janitor_deleted_rows_total');
    expect(janitor['table=opaque_access_tokens']).toBe(2);
    expect(janitor['table=authorization_codes']).toBe(0);
    expect(Object.keys(janitor).sort()).toEqual(Object.keys(report ?? {}).map((table) => `table=${table}`).sort());

    // Nothing more expired: the counter stays.
    await t.server.runJanitor();
    janitor = family((await scrape()).exposition, 'gatehouse_janitor_deleted_rows_total');
    expect(janitor['table=opaque_access_tokens']).toBe(2);
  });

  it('puts no secret, token, code, client id or URL in any label', async () => {
    const secrets = Array.from({ length: 6 }, () => `S3CR3T${randomBytes(12).toString('hex')}`);
    const [code, interactionId, pathSecret, querySecret, unknownClient, assertion] = secrets as [string, string, string, string, string, string];
    const issued = await token({ scope: 'orders:read' });
    const accessToken = (issued.body as { access_token: string }).access_token;
    const opaque = ((await token({ scope: 'opaque:read' })).body as { access_token: string }).access_token;

    await get(`${t.issuer}/authorize?code=${code}&client_id=${client.clientId}&state=${querySecret}`);
    await get(`${t.issuer}/interaction/${interactionId}`);
    await postForm(`${t.issuer}/interaction/${interactionId}/login`, { username: 'u', password: querySecret });
    await get(`${t.issuer}/${pathSecret}?access_token=${accessToken}`);
    // Refused by the router (bad percent-encoding, an over-long id): counted as unmatched.
    expect((await get(`${t.issuer}/interaction/%E0%A4%A${pathSecret}`)).status).toBe(400);
    expect((await get(`${t.issuer}/interaction/${pathSecret.repeat(10)}`)).status).toBe(400);
    await postForm(`${t.issuer}/token?code=${code}`, { grant_type: 'authorization_code', code, redirect_uri: 'https://app.example/cb' }, { authorization: basicAuth(client.clientId, client.clientSecret) });
    await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', client_id: unknownClient, client_secret: querySecret });
    await postForm(`${t.issuer}/token`, { grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    await postForm(`${t.issuer}/introspect`, { token: accessToken }, { authorization: basicAuth(client.clientId, client.clientSecret) });
    await postForm(`${t.issuer}/revoke`, { token: opaque }, { authorization: basicAuth(client.clientId, client.clientSecret) });
    await get(`${t.issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });

    const { text, exposition } = await scrape();
    expect(valueOf(exposition, 'gatehouse_http_requests_total', { route: 'unmatched', method: 'GET', status: '400' })).toBe(2);
    for (const value of [...secrets, accessToken, opaque, client.clientId, client.clientSecret, t.issuer, ORDERS, OPAQUE_API]) {
      expect(text.includes(value), value).toBe(false);
    }
    // Label values come from closed sets: route patterns, methods, statuses, RFC error codes, tables.
    const routes = new Set<string>();
    for (const s of exposition.samples.filter((x) => x.name.startsWith('gatehouse_') && !x.name.startsWith('gatehouse_process_') && !x.name.startsWith('gatehouse_nodejs_'))) {
      for (const [name, value] of Object.entries(s.labels)) {
        if (name === 'route' || name === 'endpoint') routes.add(value);
        else if (name === 'method') expect(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'other']).toContain(value);
        else if (name === 'status') expect(value).toMatch(/^[1-5]\d\d$/);
        else if (name === 'error') expect(value).toMatch(/^[a-z_]+$/);
        else if (name === 'grant_type') expect(['authorization_code', 'refresh_token', 'client_credentials', DEVICE_GRANT]).toContain(value);
        else if (name === 'table' || name === 'state') expect(value).toMatch(/^[a-z_]+$/);
        else if (name === 'limit') expect(RATE_BUCKETS).toContain(value);
        else if (name === 'le') expect(value).toMatch(/^(\d+(\.\d+)?|\+Inf)$/);
        else throw new Error(`unexpected label ${name}="${value}" on ${s.name}`);
      }
    }
    expect([...routes].sort()).toEqual(['/authorize', '/interaction/:id', '/interaction/:id/login', '/introspect', '/revoke', '/token', '/userinfo', 'unmatched']);
  });

  it('stops the metrics listener on close', async () => {
    const other = await startTestServer({ dialect });
    const url = other.metricsUrl as string;
    expect((await get(url)).status).toBe(200);
    await other.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});

describe('metrics configuration', () => {
  it('metrics.enabled: false starts no listener; the public listener still has no /metrics', async () => {
    const t = await startTestServer({ config: { metrics: { enabled: false } } });
    try {
      expect(t.metricsUrl).toBeUndefined();
      expect(t.server.metricsUrl).toBeUndefined();
      expectOAuthError(await get(`${t.issuer}/metrics`), 404, 'invalid_request');
      // Still counted in memory, for an embedding application to expose as it likes.
      expect(await t.server.metrics.render()).toContain('gatehouse_http_requests_total{route="unmatched",method="GET",status="404"} 1');
    } finally {
      await t.close();
    }
  });

  it('defaults to 127.0.0.1:9464 and refuses the public port', () => {
    expect(resolveConfig({}).metrics).toEqual({ enabled: true, host: '127.0.0.1', port: 9464 });
    expect(() => resolveConfig({ port: 9000, metrics: { port: 9000 } })).toThrow(/metrics\.port: must differ from port/);
    expect(() => resolveConfig({ port: 9000, metrics: { port: 9000, enabled: false } })).not.toThrow();
    expect(() => resolveConfig({ metrics: { port: 70000 } })).toThrow(/metrics\.port/);
    expect(() => resolveConfig({ metrics: { verbose: true } as never })).toThrow(/metrics/);
  });

  it('a taken metrics port fails listen() with a message that names the setting', async () => {
    const first = await startTestServer();
    try {
      const port = Number(new URL(first.metricsUrl as string).port);
      await expect(startTestServer({ config: { metrics: { port } } })).rejects.toThrow(/metrics listener cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\); set metrics\.port/);
    } finally {
      await first.close();
    }
  });
});
