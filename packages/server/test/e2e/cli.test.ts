import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, freePort, postForm } from '../helpers/server.js';
import { cleanEnv, collectChild, killChild, type ChildResult } from '../helpers/processes.js';

/**
 * The `gatehouse` CLI as a user runs it: the built dist/cli/main.js as a child process, a
 * throwaway data directory, the server started with `gatehouse start` on a free port, and plain
 * HTTP against it. `npm test` builds before vitest runs.
 */

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');
/** Preloaded into the running server: lists the packages it has loaded on SIGUSR2. */
const LOADED_PACKAGES_PROBE = resolve(dirname(fileURLToPath(import.meta.url)), '../helpers/loaded-packages.cjs');
const COMMAND_TIMEOUT_MS = 20_000;

/** Every child process started here, so afterAll can stop whatever is left, by PID. */
const children = new Set<ChildProcess>();

function stopChild(child: ChildProcess): void {
  killChild(child);
  children.delete(child);
}

let work: string;
let dataDir: string;
let configPath: string;
let port: number;
let issuer: string;


/** A clean environment (helpers/processes.ts) for this test's data directory and port. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...cleanEnv(), GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_PORT: String(port), GATEHOUSE_LOG_LEVEL: 'warn', GATEHOUSE_METRICS_PORT: '0', ...extra };
}

function spawnCli(args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, MAIN, ...args], { cwd: work, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs `gatehouse ARGS` (with `--config` for the test's config file) and waits for it to exit. */
async function run(args: string[], env: Record<string, string> = {}, options: { config?: boolean } = {}): Promise<ChildResult> {
  const argv = options.config === false ? args : ['--config', configPath, ...args];
  const child = spawnCli(argv, env);
  try {
    return await collectChild(child, COMMAND_TIMEOUT_MS, () => stopChild(child));
  } finally {
    stopChild(child);
  }
}

function describeRun(args: string[], result: ChildResult): string {
  return `gatehouse ${args.join(' ')} → status ${String(result.status)}${result.signal ? ` (${result.signal})` : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

/** Runs a command that must succeed and print JSON; returns the parsed output. */
async function runJson<T = Record<string, unknown>>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const result = await run(args, env);
  if (result.status !== 0) throw new Error(describeRun(args, result));
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON: ${describeRun(args, result)}`);
  }
}

/** Runs a command that must succeed; returns its output. */
async function runOk(args: string[], env: Record<string, string> = {}): Promise<ChildResult> {
  const result = await run(args, env);
  if (result.status !== 0) throw new Error(describeRun(args, result));
  return result;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface RunningServer {
  child: ChildProcess;
  stderr: () => string;
  /** Sends SIGTERM and resolves with the exit status and how long the exit took. */
  terminate(): Promise<{ status: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** `gatehouse start`, resolved once the banner is printed and /healthz answers. */
async function startServer(): Promise<RunningServer> {
  const child = spawnCli(['--config', configPath, 'start'], {}, ['--require', LOADED_PACKAGES_PROBE]);
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((done) => child.once('exit', (code, sig) => done([code, sig])));
  let exit: [number | null, NodeJS.Signals | null] | undefined;
  void exited.then((e) => (exit = e));
  try {
    await waitFor(
      'the start banner',
      async () => {
        if (exit) throw new Error(`gatehouse start exited early (status ${String(exit[0])})\nstdout: ${stdout}\nstderr: ${stderr}`);
        return stderr.includes('Gatehouse is running.') ? true : undefined;
      },
      COMMAND_TIMEOUT_MS,
    );
  } catch (err) {
    stopChild(child);
    throw err;
  }
  return {
    child,
    stderr: () => stderr,
    async terminate() {
      const started = Date.now();
      child.kill('SIGTERM');
      const [status, signal] = await Promise.race([
        exited,
        new Promise<[number | null, NodeJS.Signals | null]>((done) => setTimeout(() => done([null, null]), 10_000)),
      ]);
      const ms = Date.now() - started;
      stopChild(child);
      return { status, signal, ms };
    },
  };
}

async function getJson(path: string): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${issuer}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

/** client_credentials at the token endpoint with HTTP Basic, as the banner's curl line does. */
async function requestToken(clientId: string, secret: string) {
  return postForm(`${issuer}/token`, { grant_type: 'client_credentials', scope: 'example:read' }, { authorization: basicAuth(clientId, secret) });
}

function decodeJwtPart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

const SECRET_ENV = 'a-very-secret-key-encryption-secret-for-config-print';
const DB_PASSWORD = 'pg-pass-word-7f3a';
const RESOURCE = 'https://api.example.com';

interface ClientJson extends Record<string, unknown> {
  client_id: string;
  client_secret?: string;
}
interface KeyJson {
  kid: string;
  purpose: string;
  alg: string;
  status: string;
}

beforeAll(async () => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} does not exist: build the server first with \`npm run build -w @gatehouse/server\` (\`npm test\` does this before vitest)`);
  }
  work = mkdtempSync(join(tmpdir(), 'gatehouse-cli-test-'));
  // A directory that does not exist yet: the CLI creates it, owner-only.
  dataDir = join(work, 'data');
  configPath = join(work, 'gatehouse.test.json');
  // keys.refreshInterval must not exceed keys.prePublication (config/schema.ts finishConfig).
  // A pre-publication period long enough that a rotated key is still pending throughout.
  writeFileSync(configPath, JSON.stringify({ keys: { refreshInterval: '1s', prePublication: '60s' } }));
  port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
});

afterAll(() => {
  for (const child of [...children]) stopChild(child);
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

// Each command is a fresh Node process (~0.5 s); the longer tests run a dozen of them.
describe('gatehouse CLI', { timeout: 60_000 }, () => {
  it('refuses a bad configuration with status 2 and names the setting', async () => {
    const badPort = await run(['config', 'print'], { GATEHOUSE_PORT: 'abc' });
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toContain('port (GATEHOUSE_PORT)');
    expect(badPort.stdout).toBe('');

    const badIssuer = await run(['start'], { GATEHOUSE_ISSUER: 'http://example.com' });
    expect(badIssuer.status).toBe(2);
    expect(badIssuer.stderr).toContain('issuer (GATEHOUSE_ISSUER) http://example.com:');
    expect(badIssuer.stderr).toContain('https://');

    const badLevel = await run(['migrate'], { GATEHOUSE_LOG_LEVEL: 'loud' });
    expect(badLevel.status).toBe(2);
    expect(badLevel.stderr).toContain('logLevel (GATEHOUSE_LOG_LEVEL)');

    const typo = join(work, 'typo.json');
    writeFileSync(typo, JSON.stringify({ keys: { refreshIntervall: '1s' } }));
    const badFile = await run(['--config', typo, 'config', 'print'], {}, { config: false });
    expect(badFile.status).toBe(2);
    expect(badFile.stderr).toContain('refreshIntervall');

    const missing = await run(['--config', join(work, 'missing.json'), 'config', 'print'], {}, { config: false });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('missing.json');

    // Nothing was written for a refused configuration.
    expect(existsSync(dataDir)).toBe(false);
  });

  it('exits with status 2 on an unknown command or option', async () => {
    const unknown = await run(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command/);
    const badDuration = await run(['clients', 'rotate-secret', 'x', '--overlap', 'a week']);
    expect(badDuration.status).toBe(2);
    expect(badDuration.stderr).toContain('not a duration');
  });

  it('config print shows the effective configuration with the secret and the database password masked', async () => {
    const result = await runOk(['config', 'print'], { GATEHOUSE_SECRET: SECRET_ENV, DATABASE_URL: `postgres://gatehouse:${DB_PASSWORD}@db.example.com:5432/gatehouse` });
    const printed = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(printed.secret).toBe('***');
    expect(printed.databaseUrl).toBe('postgres://gatehouse:***@db.example.com:5432/gatehouse');
    expect(result.stdout).not.toContain(SECRET_ENV);
    expect(result.stdout).not.toContain(DB_PASSWORD);
    expect(result.stderr).not.toContain(SECRET_ENV);
    expect(printed).toMatchObject({ issuer, port, dataDir, keys: { refreshInterval: 1, prePublication: 60 } });
  });

  it('migrate applies the schema once', async () => {
    const first = await runJson<{ database: string; applied: string[] }>(['migrate', '--json']);
    expect(first).toEqual({ database: join(dataDir, 'gatehouse.db'), applied: ['0001-foundation', '0002-generations', '0003-users', '0004-authorization', '0005-device', '0006-rate-limits'] });
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    const again = await runOk(['migrate']);
    expect(again.stdout.trim()).toBe('database is up to date');
  });

  it('janitor deletes expired rows now and reports them by table', async () => {
    const { deleted } = await runJson<{ deleted: Record<string, number> }>(['janitor', '--json']);
    expect(Object.keys(deleted).sort()).toEqual(
      ['authorization_codes', 'browser_sessions', 'device_codes', 'initial_access_tokens', 'interactions', 'login_throttle', 'opaque_access_tokens', 'rate_limit_counters', 'revoked_access_tokens', 'signing_keys', 'token_families', 'used_assertions'],
    );
    expect(Object.values(deleted).every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
  });

  it('resources create, list, show and delete', async () => {
    const created = await runJson([
      'resources', 'create', '--identifier', RESOURCE, '--name', 'Example API',
      '--scope', 'example:read', '--scope', 'example:write', '--describe', 'example:read=Read examples', '--json',
    ]);
    expect(created).toMatchObject({
      identifier: RESOURCE,
      name: 'Example API',
      access_token_format: 'jwt',
      scopes: [
        { name: 'example:read', description: 'Read examples' },
        { name: 'example:write', description: null },
      ],
    });

    const other = 'https://scratch.example.com';
    await runJson(['resources', 'create', '--identifier', other, '--name', 'Scratch', '--scope', 'scratch', '--format', 'opaque', '--json']);
    const listed = await runJson<{ resources: { identifier: string; access_token_format: string }[] }>(['resources', 'list', '--json']);
    expect(listed.resources.map((r) => [r.identifier, r.access_token_format])).toEqual([
      [RESOURCE, 'jwt'],
      [other, 'opaque'],
    ]);
    expect(await runJson(['resources', 'show', RESOURCE, '--json'])).toEqual(created);

    const duplicate = await run(['resources', 'create', '--identifier', RESOURCE, '--name', 'Again', '--json']);
    expect(duplicate.status).toBe(1);
    expect(duplicate.stderr).toContain('already exists');
    const conflicting = await run(['resources', 'create', '--identifier', 'https://other.example.com', '--name', 'Other', '--scope', 'example:read']);
    expect(conflicting.status).toBe(2);
    expect(conflicting.stderr).toContain("scope 'example:read' overlaps");
    const badIdentifier = await run(['resources', 'create', '--identifier', 'https://api.example.com/#x', '--name', 'Bad']);
    expect(badIdentifier.status).toBe(2);

    expect(await runJson(['resources', 'delete', other, '--json'])).toEqual({ identifier: other, deleted: true });
    const gone = await run(['resources', 'show', other, '--json']);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toContain(`no resource ${other}`);
    const human = await runOk(['resources', 'list']);
    expect(human.stdout).toContain(RESOURCE);
    expect(human.stdout).not.toContain(other);
  });

  let clientId: string;
  let firstSecret: string;
  let secondSecret: string;
  let registrationToken: string;

  it('clients create prints the secret once; show and list never do', async () => {
    const created = await runJson<ClientJson>(['clients', 'create', '--name', 'demo', '--owner', 'team-payments', '--scope', 'example:read', '--json']);
    expect(created.client_id).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof created.client_secret).toBe('string');
    expect(created).toMatchObject({ client_name: 'demo', owner: 'team-payments', scope: 'example:read', token_endpoint_auth_method: 'client_secret_basic', disabled: false });
    clientId = created.client_id;
    firstSecret = created.client_secret ?? '';
    expect(firstSecret.length).toBeGreaterThanOrEqual(32);

    const shown = await run(['clients', 'show', clientId, '--json']);
    expect(shown.status).toBe(0);
    expect(shown.stdout).not.toContain(firstSecret);
    const shownJson = JSON.parse(shown.stdout) as Record<string, unknown>;
    expect(shownJson).not.toHaveProperty('client_secret');
    expect(shownJson).toMatchObject({ client_id: clientId, owner: 'team-payments', active_secrets: 1, last_used_at: 'never' });

    const listed = await run(['clients', 'list', '--json']);
    expect(listed.status).toBe(0);
    expect(listed.stdout).not.toContain(firstSecret);
    const clients = (JSON.parse(listed.stdout) as { clients: Record<string, unknown>[] }).clients;
    expect(clients).toHaveLength(1);
    expect(clients[0]).not.toHaveProperty('client_secret');
    expect(clients[0]).toMatchObject({ client_id: clientId, owner: 'team-payments', scope: 'example:read', active_secrets: 1 });
    expect(clients[0]?.secret_created_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    const table = await runOk(['clients', 'list']);
    expect(table.stdout).not.toContain(firstSecret);
    const [header, row] = table.stdout.trim().split('\n');
    for (const column of ['client_id', 'owner', 'scope', 'secret_age', 'last_used', 'status']) expect(header).toContain(column);
    expect(row?.split(/\s{2,}/)).toEqual([clientId, 'demo', 'team-payments', 'client_credentials', 'example:read', 'client_secret_basic', '0d', 'never', 'enabled']);
  });

  it('clients create without --json prints the secret with a one-time warning', async () => {
    const result = await runOk(['clients', 'create', '--name', 'human', '--scope', 'example:read']);
    expect(result.stdout).toMatch(/client_secret:\s+\S{32,}/);
    expect(result.stderr).toContain('shown only this once');
    const id = /client_id:\s+([0-9a-f]{32})/.exec(result.stdout)?.[1];
    expect(id).toBeDefined();
    expect(await runJson(['clients', 'delete', id ?? '', '--json'])).toEqual({ client_id: id, deleted: true });
  });

  it('clients update, disable, enable and delete', async () => {
    const updated = await runJson<ClientJson>(['clients', 'update', clientId, '--name', 'demo service', '--contact', 'ops@example.com', '--json']);
    expect(updated).toMatchObject({ client_id: clientId, client_name: 'demo service', owner: 'team-payments', scope: 'example:read', contacts: ['ops@example.com'] });
    expect(updated).not.toHaveProperty('client_secret');

    const badScope = await run(['clients', 'update', clientId, '--scope', 'bad"scope']);
    expect(badScope.status).toBe(2);

    const scratch = await runJson<ClientJson>(['clients', 'create', '--name', 'scratch', '--json']);
    const id = scratch.client_id;
    expect(await runJson(['clients', 'disable', id, '--json'])).toEqual({ client_id: id, disabled: true });
    expect(await runJson(['clients', 'show', id, '--json'])).toMatchObject({ disabled: true });
    expect((await runOk(['clients', 'list'])).stdout).toMatch(new RegExp(`${id}.*disabled`));
    expect(await runJson(['clients', 'enable', id, '--json'])).toEqual({ client_id: id, disabled: false });
    expect(await runJson(['clients', 'show', id, '--json'])).toMatchObject({ disabled: false });
    expect(await runJson(['clients', 'delete', id, '--json'])).toEqual({ client_id: id, deleted: true });

    for (const command of [['show', id], ['delete', id], ['disable', id], ['rotate-secret', id]]) {
      const missing = await run(['clients', ...command]);
      expect(missing.status, command.join(' ')).toBe(1);
      expect(missing.stderr).toContain(`no client ${id}`);
    }
  });

  it('clients rotate-secret --overlap 7d issues a second secret and keeps the first', async () => {
    const before = Date.now();
    const rotated = await runJson<{ client_id: string; client_secret: string; previous_secret_valid_until: string }>([
      'clients', 'rotate-secret', clientId, '--overlap', '7d', '--json',
    ]);
    expect(rotated.client_id).toBe(clientId);
    expect(rotated.client_secret).not.toBe(firstSecret);
    secondSecret = rotated.client_secret;
    const until = Date.parse(rotated.previous_secret_valid_until);
    expect(until - before).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(until - before).toBeLessThan(7 * 86_400_000 + 60_000);
    expect(await runJson(['clients', 'show', clientId, '--json'])).toMatchObject({ active_secrets: 2 });
  });

  it('registration-tokens create prints a token once', async () => {
    const created = await runJson<{ initial_access_token: string; registration_endpoint: string; scope: string; max_uses: number }>([
      'registration-tokens', 'create', '--scope', 'example:read', '--max-uses', '1', '--expires-in', '1h', '--description', 'ci', '--json',
    ]);
    expect(created.initial_access_token.length).toBeGreaterThanOrEqual(32);
    expect(created).toMatchObject({ registration_endpoint: `${issuer}/register`, scope: 'example:read', max_uses: 1 });
    registrationToken = created.initial_access_token;
    const bad = await run(['registration-tokens', 'create', '--max-uses', '0']);
    expect(bad.status).toBe(2);
  });

  describe('with the server running', () => {
    let server: RunningServer | undefined;

    beforeAll(async () => {
      server = await startServer();
    }, 60_000);

    afterAll(async () => {
      if (server) await server.terminate();
    });

    function running(): RunningServer {
      if (!server) throw new Error('the server did not start');
      return server;
    }

    it('start prints the issuer and copy-paste commands on stderr; /healthz and /readyz answer', async () => {
      const banner = running().stderr();
      expect(banner).toContain(`issuer:    ${issuer}`);
      expect(banner).toContain(`${issuer}/.well-known/oauth-authorization-server`);
      expect(banner).toContain(`SQLite ${join(dataDir, 'gatehouse.db')}`);
      expect(banner).toContain('npx gatehouse resources create --identifier https://api.example.com');
      expect(banner).toContain('npx gatehouse clients create --name demo --scope example:read');
      expect(banner).toContain(`curl -s -u "CLIENT_ID:CLIENT_SECRET" -d grant_type=client_credentials -d scope=example:read ${issuer}/token`);
      expect(banner).toContain(`npx gatehouse-client login --issuer ${issuer} --client-id CLIENT_ID`);
      // The device-flow client command works as printed.
      const line = banner.split('\n').find((l) => l.includes('clients create --name cli')) ?? '';
      const args = [...line.replace(/#.*$/, '').trim().matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '').slice(2);
      const created = await runJson<{ grant_types: string[]; token_endpoint_auth_method: string }>([...args, '--json']);
      expect(created).toMatchObject({ grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], token_endpoint_auth_method: 'none' });

      const health = await getJson('/healthz');
      expect(health.status).toBe(200);
      expect(health.body).toEqual({ status: 'ok' });
      const ready = await getJson('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready', checks: { database: 'ok', keys: 'ok' } });
      const metadata = await getJson('/.well-known/oauth-authorization-server');
      expect(metadata.body.issuer).toBe(issuer);
    });

    it('keys list shows an ES256 access_token key and an RS256 id_token key, both signing', async () => {
      const { keys } = await runJson<{ keys: KeyJson[] }>(['keys', 'list', '--json']);
      expect(keys.map((k) => [k.purpose, k.alg, k.status]).sort()).toEqual([
        ['access_token', 'ES256', 'signing'],
        ['id_token', 'RS256', 'signing'],
      ]);
      const jwks = (await getJson('/jwks')).body as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid).sort()).toEqual(keys.map((k) => k.kid).sort());
    });

    it('both the old and the new secret obtain a token during the overlap', async () => {
      for (const secret of [firstSecret, secondSecret]) {
        const response = await requestToken(clientId, secret);
        expect(response.status, response.text).toBe(200);
        const body = response.body as { access_token: string; token_type: string; scope: string };
        expect(body.token_type).toBe('Bearer');
        expect(body.scope).toBe('example:read');
        expect(decodeJwtPart(body.access_token, 1)).toMatchObject({ iss: issuer, aud: RESOURCE, client_id: clientId });
        expect(decodeJwtPart(body.access_token, 0)).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
      }
      const wrong = await requestToken(clientId, `${firstSecret}x`);
      expect(wrong.status).toBe(401);
      expect(wrong.body).toMatchObject({ error: 'invalid_client' });
    });

    it('on SQLite, having issued tokens, the server has not loaded the PostgreSQL driver, the Redis client or argon2', async () => {
      // Each is loaded when first needed (about 15, 22 and 12 MiB of RSS), so a server that only
      // serves machine clients on SQLite never holds them.
      const response = await requestToken(clientId, firstSecret);
      expect(response.status, response.text).toBe(200);
      const before = running().stderr().length;
      running().child.kill('SIGUSR2');
      const line = await waitFor('the loaded-packages line', async () => /loaded-packages: (.*)\n/.exec(running().stderr().slice(before))?.[1], 5_000);
      const packages = JSON.parse(line) as string[];
      expect(packages).toEqual(expect.arrayContaining(['better-sqlite3', 'fastify', 'pino']));
      for (const lazy of ['pg', 'ioredis', '@node-rs/argon2']) expect(packages).not.toContain(lazy);
    });

    it('clients list shows the last use once the client has obtained a token', async () => {
      const lastUsed = await waitFor(
        'last_used_at to be recorded',
        async () => {
          const shown = await runJson<{ last_used_at: string }>(['clients', 'show', clientId, '--json']);
          return shown.last_used_at === 'never' ? undefined : shown.last_used_at;
        },
        10_000,
      );
      expect(Math.abs(Date.parse(lastUsed) - Date.now())).toBeLessThan(120_000);
      const table = await runOk(['clients', 'list']);
      expect(table.stdout).toContain(lastUsed);
    });

    it('keys rotate publishes a pending key that the running server serves at /jwks within the refresh interval', async () => {
      const before = (await runJson<{ keys: KeyJson[] }>(['keys', 'list', '--json'])).keys;
      const { rotated } = await runJson<{ rotated: { purpose: string; kid: string; signs_from: string }[] }>(['keys', 'rotate', '--json']);
      const rotatedAt = Date.now();
      expect(rotated.map((r) => r.purpose)).toEqual(['access_token', 'id_token']);
      for (const r of rotated) {
        expect(before.map((k) => k.kid)).not.toContain(r.kid);
        // Signs after keys.prePublication (60s in the test configuration).
        expect(Date.parse(r.signs_from) - rotatedAt).toBeGreaterThan(30_000);
      }

      const after = (await runJson<{ keys: KeyJson[] }>(['keys', 'list', '--json'])).keys;
      for (const r of rotated) expect(after.find((k) => k.kid === r.kid)).toMatchObject({ purpose: r.purpose, status: 'published (pending)' });
      for (const k of before) expect(after.find((a) => a.kid === k.kid)?.status).toBe('signing');

      // keys.refreshInterval is 1s: the running server picks the new keys up without a restart.
      const served = await waitFor(
        'the rotated kids at /jwks',
        async () => {
          const jwks = (await getJson('/jwks')).body as { keys: { kid: string; alg: string; use: string }[] };
          return rotated.every((r) => jwks.keys.some((k) => k.kid === r.kid)) ? jwks.keys : undefined;
        },
        10_000,
      );
      expect(Date.now() - rotatedAt).toBeLessThan(10_000);
      expect(served).toHaveLength(4);
      for (const k of before) expect(served.map((s) => s.kid)).toContain(k.kid);
      // Still pending: tokens are signed with the previous key.
      const token = ((await requestToken(clientId, secondSecret)).body as { access_token: string }).access_token;
      const accessKid = before.find((k) => k.purpose === 'access_token')?.kid;
      expect(decodeJwtPart(token, 0).kid).toBe(accessKid);
    });

    /**
     * A change made by the CLI (another process) reaches the running server within
     * cache.refreshInterval (1 s by default): ask until it shows, for at most three intervals.
     */
    async function eventually(secret: string, status: number): Promise<Awaited<ReturnType<typeof requestToken>>> {
      const deadline = Date.now() + 3_000;
      for (;;) {
        const response = await requestToken(clientId, secret);
        if (response.status === status || Date.now() > deadline) return response;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    it('rotate-secret without overlap revokes the previous secrets within the refresh interval', async () => {
      const rotated = await runJson<{ client_secret: string; previous_secret_valid_until: string }>(['clients', 'rotate-secret', clientId, '--json']);
      expect(rotated.previous_secret_valid_until).toBe('revoked now');
      const third = rotated.client_secret;
      expect([firstSecret, secondSecret]).not.toContain(third);
      for (const old of [firstSecret, secondSecret]) {
        const refused = await eventually(old, 401);
        expect(refused.status).toBe(401);
        expect(refused.body).toMatchObject({ error: 'invalid_client' });
      }
      expect((await eventually(third, 200)).status).toBe(200);
      expect(await runJson(['clients', 'show', clientId, '--json'])).toMatchObject({ active_secrets: 1 });
      secondSecret = third;
    });

    it('a disabled client cannot obtain tokens until enabled again', async () => {
      await runJson(['clients', 'disable', clientId, '--json']);
      const refused = await eventually(secondSecret, 401);
      expect(refused.status).toBe(401);
      expect(refused.body).toMatchObject({ error: 'invalid_client' });
      await runJson(['clients', 'enable', clientId, '--json']);
      expect((await eventually(secondSecret, 200)).status).toBe(200);
    });

    it('the registration token registers one client at the running server', async () => {
      const register = () =>
        fetch(`${issuer}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${registrationToken}` },
          body: JSON.stringify({ client_name: 'registered', grant_types: ['client_credentials'], scope: 'example:read' }),
        });
      const response = await register();
      const body = (await response.json()) as ClientJson;
      expect(response.status, JSON.stringify(body)).toBe(201);
      expect(typeof body.client_secret).toBe('string');
      expect((await requestToken(body.client_id, body.client_secret ?? '')).status).toBe(200);
      expect(await runJson(['clients', 'show', body.client_id, '--json'])).toMatchObject({ client_name: 'registered', dynamically_registered: true });
      // --max-uses 1
      expect((await register()).status).toBe(401);
    });

    it('SIGTERM stops the server promptly with status 0', async () => {
      const stopped = await running().terminate();
      server = undefined;
      expect(stopped).toMatchObject({ status: 0, signal: null });
      expect(stopped.ms).toBeLessThan(5_000);
      await expect(fetch(`${issuer}/healthz`)).rejects.toThrow();
    });
  });

  it('keeps the key-encryption key owner-only and private keys encrypted at rest', async () => {
    const secretFile = join(dataDir, 'secret.key');
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    const kek = readFileSync(secretFile, 'utf8').trim();
    expect(kek.length).toBeGreaterThanOrEqual(32);

    const dbFile = join(dataDir, 'gatehouse.db');
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    let rows: { kid: string; private_key: string }[];
    try {
      rows = db.prepare('select kid, private_key from signing_keys').all() as { kid: string; private_key: string }[];
    } finally {
      db.close();
    }
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row.private_key.startsWith('v1.'), row.kid).toBe(true);
      expect(row.private_key.split('.')).toHaveLength(4);
    }

    // Nothing secret in clear in the database files: not the KEK, no PEM, no client secret.
    for (const file of [dbFile, `${dbFile}-wal`].filter((f) => existsSync(f))) {
      const bytes = readFileSync(file);
      for (const needle of [kek, 'PRIVATE KEY', firstSecret, secondSecret]) {
        expect(bytes.includes(Buffer.from(needle, 'utf8')), `${file} contains ${needle.slice(0, 12)}…`).toBe(false);
      }
    }
  });
});
