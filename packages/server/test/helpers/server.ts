import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuthorizationServer, type AuthorizationServer } from '../../src/server.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createClient } from '../../src/admin/client-admin.js';
import { validateClientMetadata } from '../../src/protocol/client-metadata.js';
import { GRANT_TYPES, TOKEN_ENDPOINT_AUTH_METHODS } from '../../src/model.js';
import { randomToken, sha256 } from '../../src/tokens/random.js';
import { createLogger } from '../../src/logging.js';
import { createPostgresSchema, type PostgresSchema } from './postgres.js';

export type Dialect = 'sqlite' | 'postgres';

/** A controllable clock: seconds since the epoch, starting at the real time. */
export class TestClock {
  current = Math.floor(Date.now() / 1000);
  readonly now = (): number => this.current;
  advance(seconds: number): void {
    this.current += seconds;
  }
}

export interface TestServer {
  server: AuthorizationServer;
  /** The issuer, e.g. http://127.0.0.1:54321 */
  issuer: string;
  /** Where this instance listens (equal to the issuer unless the config sets another issuer). */
  url: string;
  dataDir: string;
  /** The PostgreSQL URL (with its schema) when on PostgreSQL. */
  databaseUrl: string | undefined;
  /** The admin listener's `GET /metrics` URL (a free port of its own), undefined when metrics are off. */
  metricsUrl: string | undefined;
  clock: TestClock;
  /** Creates a client the way `gatehouse clients create` does; returns its id and secret. */
  createClient(metadata: Record<string, unknown>): Promise<{ clientId: string; clientSecret?: string }>;
  createResource(identifier: string, scopes: string[], options?: { format?: 'jwt' | 'opaque'; ttl?: number; clientId?: string }): Promise<void>;
  createInitialAccessToken(scope: string[], options?: { ttl?: number; maxUses?: number }): Promise<string>;
  close(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * A real Gatehouse on 127.0.0.1 with real storage: SQLite in a temp directory, or a fresh
 * PostgreSQL schema. Logs are silent unless GATEHOUSE_TEST_LOGS is set.
 */
export async function startTestServer(
  options: { dialect?: Dialect; config?: ConfigInput; clock?: TestClock; shareStorageWith?: TestServer } = {},
): Promise<TestServer> {
  const dialect = options.dialect ?? 'sqlite';
  const shared = options.shareStorageWith;
  // A second instance on the same storage: same data dir (SQLite file, secret file) or database.
  const dataDir = shared?.dataDir ?? mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  let schema: PostgresSchema | undefined;
  if (dialect === 'postgres' && shared === undefined) schema = await createPostgresSchema();
  const databaseUrl = shared?.databaseUrl ?? schema?.url;
  const port = await freePort();
  const clock = options.clock ?? new TestClock();
  const server = await createAuthorizationServer(
    {
      port,
      host: '127.0.0.1',
      dataDir,
      logLevel: 'silent',
      ...(databaseUrl ? { databaseUrl } : {}),
      // Test suites send hundreds of requests a second from one address: limits are off unless a
      // test turns them on (test/e2e/rate-limits.test.ts).
      rateLimits: { enabled: false },
      ...options.config,
      // Any free port, so servers in parallel test files never collide on the default 9464.
      metrics: { port: 0, ...options.config?.metrics },
    },
    { clock: clock.now, logger: createLogger(process.env.GATEHOUSE_TEST_LOGS ? 'debug' : 'silent') },
  );
  try {
    await server.listen();
  } catch (err) {
    await server.close();
    await schema?.drop();
    if (shared === undefined) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const issuer = server.config.issuer;
  return {
    server,
    issuer,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    databaseUrl,
    metricsUrl: server.metricsUrl,
    clock,
    async createClient(metadata) {
      const verdict = validateClientMetadata(
        { grant_types: ['client_credentials'], ...metadata },
        {
          allowedGrantTypes: GRANT_TYPES,
          allowedAuthMethods: TOKEN_ENDPOINT_AUTH_METHODS,
          allowedScopes: null,
          administrative: true,
          idTokenSigningAlgs: [server.config.tokens.idTokenSigningAlg],
          maxAccessTokenTtl: server.config.tokens.maxAccessTokenTtl,
        },
      );
      if (!verdict.ok) throw new Error(`${verdict.error}: ${verdict.description}`);
      const created = await createClient(server.storage.clients, verdict.metadata, clock.now(), { dynamicallyRegistered: false, registrationToken: false });
      return { clientId: created.client.clientId, ...(created.clientSecret === undefined ? {} : { clientSecret: created.clientSecret }) };
    },
    async createResource(identifier, scopes, opts = {}) {
      await server.storage.resources.createResource(
        {
          identifier,
          name: identifier,
          scopes: scopes.map((name) => ({ name, description: null })),
          accessTokenFormat: opts.format ?? 'jwt',
          accessTokenTtl: opts.ttl ?? null,
          clientId: opts.clientId ?? null,
        },
        clock.now(),
      );
    },
    async createInitialAccessToken(scope, opts = {}) {
      const token = randomToken();
      await server.storage.initialAccessTokens.createInitialAccessToken(sha256(token), {
        description: 'test',
        scope,
        createdAt: clock.now(),
        expiresAt: clock.now() + (opts.ttl ?? 3600),
        maxUses: opts.maxUses ?? null,
      });
      return token;
    },
    async close() {
      await server.close();
      if (shared !== undefined) return;
      await schema?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Form-encodes and base64s client credentials for HTTP Basic (RFC 6749 §2.3.1). */
export function basicAuth(clientId: string, secret: string): string {
  const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
}

/** POSTs a form with fetch; returns status, headers and the parsed JSON body (or text). */
export async function postForm(
  url: string,
  form: Record<string, string | string[]> | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  let body: string;
  if (typeof form === 'string') body = form;
  else {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    body = params.toString();
  }
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

export const DIALECTS: Dialect[] = process.env.TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite'];
