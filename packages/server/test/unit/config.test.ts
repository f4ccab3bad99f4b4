import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, ENV_VARIABLES, loadConfig, maskConfig, resolveConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
/** Writes a config file in the temp dir; returns its path. */
function configFile(content: unknown): string {
  const file = join(dir, `config-${++fileCount}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** An empty config file, so loadConfig never looks for ./gatehouse.config.json in the working directory. */
const EMPTY = configFile({});

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const SECRET = 'correct-horse-battery-staple-0123456789';

describe('defaults', () => {
  it('are safe and local', () => {
    const config = resolveConfig();
    expect(config.issuer).toBe('http://127.0.0.1:4000');
    expect(config.port).toBe(4000);
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir).toBe('./data');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.secret).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.migrateOnStart).toBe(true);
    expect(config.trustedProxies).toEqual([]);
    expect(config.tokens).toMatchObject({ accessTokenTtl: 600, maxAccessTokenTtl: 86_400, accessTokenSigningAlg: 'ES256', idTokenSigningAlg: 'RS256' });
    expect(config.keys).toEqual({ rotationInterval: 90 * 86_400, prePublication: 86_400, refreshInterval: 60 });
    expect(config.clientAuth).toEqual({ assertionMaxLifetime: 300, clockTolerance: 30, dangerouslyAllowPrivateJwksUri: false });
    expect(config.registration.dangerouslyAllowOpenRegistration).toBe(false);
    // Only the tokens of its own resources, or its own, are a caller's to introspect.
    expect(config.introspection.restrictToOwnResources).toBe(true);
    expect(config.cache.refreshInterval).toBe(1);
  });

  it('are what loadConfig gives with an empty file and no environment', () => {
    expect(loadConfig({ file: EMPTY, env: {} })).toEqual(resolveConfig());
  });
});

describe('environment overrides', () => {
  it.each<[string, Record<string, string>, Record<string, unknown>]>([
    ['GATEHOUSE_ISSUER', { GATEHOUSE_ISSUER: 'https://auth.example.com' }, { issuer: 'https://auth.example.com' }],
    ['GATEHOUSE_ISSUER with a trailing slash', { GATEHOUSE_ISSUER: 'https://auth.example.com/' }, { issuer: 'https://auth.example.com' }],
    ['GATEHOUSE_ISSUER with a path', { GATEHOUSE_ISSUER: 'https://example.com/auth' }, { issuer: 'https://example.com/auth' }],
    ['GATEHOUSE_PORT', { GATEHOUSE_PORT: '5001' }, { port: 5001, issuer: 'http://127.0.0.1:5001' }],
    ['GATEHOUSE_HOST', { GATEHOUSE_HOST: '127.0.0.5' }, { host: '127.0.0.5', issuer: 'http://127.0.0.5:4000' }],
    ['GATEHOUSE_HOST IPv6', { GATEHOUSE_HOST: '::1' }, { host: '::1', issuer: 'http://[::1]:4000' }],
    ['GATEHOUSE_HOST localhost', { GATEHOUSE_HOST: 'localhost' }, { issuer: 'http://localhost:4000' }],
    ['GATEHOUSE_HOST off loopback with an https issuer', { GATEHOUSE_HOST: '0.0.0.0', GATEHOUSE_ISSUER: 'https://auth.example.com' }, { host: '0.0.0.0', issuer: 'https://auth.example.com' }],
    ['GATEHOUSE_DATA_DIR', { GATEHOUSE_DATA_DIR: '/var/lib/gatehouse' }, { dataDir: '/var/lib/gatehouse' }],
    ['DATABASE_URL', { DATABASE_URL: 'postgres://gh:pw@db:5432/gatehouse' }, { databaseUrl: 'postgres://gh:pw@db:5432/gatehouse' }],
    ['DATABASE_URL postgresql://', { DATABASE_URL: 'postgresql://db/gatehouse' }, { databaseUrl: 'postgresql://db/gatehouse' }],
    ['GATEHOUSE_SECRET', { GATEHOUSE_SECRET: SECRET }, { secret: SECRET }],
    ['GATEHOUSE_SECRET_FILE', { GATEHOUSE_SECRET_FILE: '/run/secrets/gatehouse' }, { secretFile: '/run/secrets/gatehouse' }],
    ['GATEHOUSE_LOG_LEVEL', { GATEHOUSE_LOG_LEVEL: 'debug' }, { logLevel: 'debug' }],
    ['an empty value (ignored)', { GATEHOUSE_PORT: '' }, { port: 4000 }],
    ['an unrelated variable (ignored)', { GATEHOUSE_BOGUS: 'x', PORT: '1' }, { port: 4000 }],
  ])('%s', (_name, env, expected) => {
    expect(loadConfig({ file: EMPTY, env })).toMatchObject(expected);
  });

  it('maps every documented variable to a setting', () => {
    expect(Object.keys(ENV_VARIABLES).sort()).toEqual(
      [
        'DATABASE_URL', 'GATEHOUSE_DATA_DIR', 'GATEHOUSE_HOST', 'GATEHOUSE_ISSUER', 'GATEHOUSE_LOG_LEVEL', 'GATEHOUSE_METRICS_ENABLED', 'GATEHOUSE_METRICS_PORT', 'GATEHOUSE_PORT',
        'GATEHOUSE_SECRET', 'GATEHOUSE_SECRET_FILE', 'REDIS_URL',
      ].sort(),
    );
  });

  it('nested settings from the environment keep the file section they belong to', () => {
    const file = configFile({ metrics: { host: '127.0.0.1', port: 9500 }, rateLimits: { token: { perClient: 5 } } });
    const config = loadConfig({ file, env: { GATEHOUSE_METRICS_PORT: '0', GATEHOUSE_METRICS_ENABLED: 'false', REDIS_URL: 'redis://127.0.0.1:6379' } });
    expect(config.metrics).toEqual({ enabled: false, host: '127.0.0.1', port: 0 });
    expect(config.rateLimits.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.rateLimits.token.perClient).toBe(5);
    expect(configError(() => loadConfig({ file, env: { REDIS_URL: 'http://example.com' } })).problems.join('\n')).toMatch(/rateLimits\.redisUrl \(REDIS_URL\)/);
  });

  it('does not read process.env when env is given', () => {
    expect(loadConfig({ file: EMPTY, env: {} }).issuer).toBe('http://127.0.0.1:4000');
  });
});

describe('config file', () => {
  it('is read, and the environment wins over it', () => {
    const file = configFile({ port: 4100, logLevel: 'warn', tokens: { accessTokenTtl: '5m' }, keys: { refreshInterval: '10s' } });
    const fromFile = loadConfig({ file, env: {} });
    expect(fromFile).toMatchObject({ port: 4100, issuer: 'http://127.0.0.1:4100', logLevel: 'warn' });
    expect(fromFile.tokens.accessTokenTtl).toBe(300);
    expect(fromFile.keys.refreshInterval).toBe(10);
    expect(loadConfig({ file, env: { GATEHOUSE_PORT: '4200', GATEHOUSE_LOG_LEVEL: 'error' } })).toMatchObject({ port: 4200, logLevel: 'error' });
  });

  it.each<[string, string, RegExp]>([
    ['missing', join(dir, 'does-not-exist.json'), /cannot be read \(ENOENT\)/],
    ['a directory', dir, /cannot be read/],
  ])('%s → ConfigError', (_name, file, message) => {
    const error = configError(() => loadConfig({ file, env: {} }));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(file);
    expect(error.problems[0]).toMatch(message);
  });

  it.each([['not json'], ['[1, 2]'], ['"a string"'], ['null'], ['42'], ['{"port": 4000']])('%j → ConfigError: must be a JSON object', (content) => {
    const file = configFile(content);
    expect(configError(() => loadConfig({ file, env: {} })).problems).toEqual([`config file ${file}: must be a JSON object`]);
  });

  it('refuses unknown settings, naming them', () => {
    const error = configError(() => loadConfig({ file: configFile({ issuer: 'https://a.example', prot: 4000 }), env: {} }));
    expect(error.message).toMatch(/prot/);
    // A misspelt nested setting must not silently leave the default in force.
    const nested = configError(() => resolveConfig({ tokens: { accessTokenTTL: '5m' } } as unknown as ConfigInput));
    expect(nested.problems).toEqual([expect.stringMatching(/^tokens: .*accessTokenTTL/)]);
    const dangerous = configError(() => loadConfig({ file: configFile({ registration: { dangerouslyAllowOpenRegistrations: true } }), env: {} }));
    expect(dangerous.message).toMatch(/dangerouslyAllowOpenRegistrations/);
  });
});

describe('bad values name the setting and its environment variable', () => {
  it.each<[string, Record<string, string>, string[]]>([
    ['GATEHOUSE_PORT=abc', { GATEHOUSE_PORT: 'abc' }, ['port', 'GATEHOUSE_PORT']],
    ['GATEHOUSE_PORT=70000', { GATEHOUSE_PORT: '70000' }, ['port', 'GATEHOUSE_PORT']],
    ['GATEHOUSE_PORT=-1', { GATEHOUSE_PORT: '-1' }, ['port', 'GATEHOUSE_PORT']],
    ['GATEHOUSE_PORT=80.5', { GATEHOUSE_PORT: '80.5' }, ['port', 'GATEHOUSE_PORT']],
    ['GATEHOUSE_LOG_LEVEL=loud', { GATEHOUSE_LOG_LEVEL: 'loud' }, ['logLevel', 'GATEHOUSE_LOG_LEVEL']],
    ['GATEHOUSE_SECRET too short', { GATEHOUSE_SECRET: 'x'.repeat(31) }, ['secret', 'GATEHOUSE_SECRET', '32 characters']],
    ['DATABASE_URL=mysql://…', { DATABASE_URL: 'mysql://u:p@h/db' }, ['databaseUrl', 'DATABASE_URL']],
    ['DATABASE_URL=a file path', { DATABASE_URL: './gatehouse.db' }, ['databaseUrl', 'DATABASE_URL']],
    ['GATEHOUSE_ISSUER off loopback over http', { GATEHOUSE_ISSUER: 'http://example.com' }, ['issuer', 'http://example.com', 'https://']],
    ['GATEHOUSE_HOST off loopback without an issuer', { GATEHOUSE_HOST: '0.0.0.0' }, ['issuer', 'http://0.0.0.0:4000']],
  ])('%s', (_name, env, words) => {
    const error = configError(() => loadConfig({ file: EMPTY, env }));
    expect(error.name).toBe('ConfigError');
    expect(error.problems).toHaveLength(1);
    for (const word of words) expect(error.problems[0]).toContain(word);
    expect(error.message).toContain('invalid configuration');
    expect(error.message).toContain(error.problems[0]);
  });

  it('reports every bad value at once', () => {
    const error = configError(() => loadConfig({ file: EMPTY, env: { GATEHOUSE_PORT: 'abc', GATEHOUSE_LOG_LEVEL: 'loud' } }));
    expect(error.problems).toHaveLength(2);
    expect(error.message).toContain('GATEHOUSE_PORT');
    expect(error.message).toContain('GATEHOUSE_LOG_LEVEL');
  });

  it('names nested settings by their path', () => {
    const error = configError(() => loadConfig({ file: configFile({ http: { bodyLimit: 10 } }), env: {} }));
    expect(error.problems[0]).toMatch(/^http\.bodyLimit: /);
  });
});

describe('issuer', () => {
  it.each([
    ['https://auth.example.com', 'https://auth.example.com'],
    ['https://auth.example.com/', 'https://auth.example.com'],
    ['https://auth.example.com:8443/tenant-a', 'https://auth.example.com:8443/tenant-a'],
    ['http://127.0.0.1:4000', 'http://127.0.0.1:4000'],
    ['http://127.0.0.2', 'http://127.0.0.2'],
    ['http://[::1]:4000', 'http://[::1]:4000'],
    ['http://localhost:4000', 'http://localhost:4000'],
    ['http://LOCALHOST:4000', 'http://LOCALHOST:4000'],
  ])('accepts %s → %s', (issuer, expected) => {
    expect(resolveConfig({ issuer }).issuer).toBe(expected);
  });

  it.each([
    ['http://example.com', /must use https:\/\//],
    ['http://auth.example.com:4000', /must use https:\/\//],
    ['http://10.0.0.1', /must use https:\/\//],
    ['http://localhost.example.com', /must use https:\/\//],
    ['https://auth.example.com?tenant=a', /no query or fragment/],
    ['https://auth.example.com/?', /no query or fragment/],
    ['https://auth.example.com#top', /no query or fragment/],
    ['https://auth.example.com/#', /no query or fragment/],
    ['https://user:pw@auth.example.com', /credentials/],
    ['ftp://auth.example.com', /http\(s\) URL/],
    ['auth.example.com', /absolute URL/],
    ['/relative', /absolute URL/],
  ])('refuses %s', (issuer, reason) => {
    const error = configError(() => resolveConfig({ issuer }));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(`issuer (GATEHOUSE_ISSUER) ${issuer}:`);
    expect(error.problems[0]).toMatch(reason);
  });
});

describe('durations', () => {
  it.each<[string, string | number, number]>([
    ['bare number', 90, 90],
    ['seconds string', '45', 45],
    ['s', '30s', 30],
    ['m', '10m', 600],
    ['h', '12h', 43_200],
    ['d', '1d', 86_400],
    ['space before the unit', '5 m', 300],
    ['zero', 0, 0],
  ])('clientAuth.clockTolerance as %s: %j → %i seconds', (_name, value, seconds) => {
    expect(resolveConfig({ clientAuth: { clockTolerance: value } }).clientAuth.clockTolerance).toBe(seconds);
  });

  it('reads 90d for the rotation interval and 10m for the access-token lifetime', () => {
    const config = resolveConfig({ keys: { rotationInterval: '90d' }, tokens: { accessTokenTtl: '10m' } });
    expect(config.keys.rotationInterval).toBe(7_776_000);
    expect(config.tokens.accessTokenTtl).toBe(600);
  });

  it.each<[string | number]>([['10 minutes'], ['10w'], ['1.5h'], ['-5s'], ['m'], [''], [1.5], [-1], ['1e3']])('refuses %j, naming the setting', (value) => {
    const error = configError(() => resolveConfig({ tokens: { accessTokenTtl: value } }));
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^tokens\.accessTokenTtl: a duration/);
  });

  it.each<[string, ConfigInput, RegExp]>([
    ['an access-token lifetime above the cap', { tokens: { accessTokenTtl: '2d', maxAccessTokenTtl: '1d' } }, /tokens\.accessTokenTtl: must not exceed tokens\.maxAccessTokenTtl/],
    ['a zero access-token lifetime', { tokens: { accessTokenTtl: 0 } }, /tokens\.accessTokenTtl: must be at least 1 second/],
    ['a refresh slower than pre-publication', { keys: { refreshInterval: '2h', prePublication: '1h' } }, /keys\.refreshInterval: must not exceed keys\.prePublication/],
  ])('refuses %s', (_name, input, reason) => {
    expect(configError(() => resolveConfig(input)).problems).toEqual([expect.stringMatching(reason)]);
  });

  it.each<[string, ConfigInput]>([
    ['a refresh equal to pre-publication', { keys: { refreshInterval: '1s', prePublication: '1s' } }],
    ['a short refresh with a short pre-publication', { keys: { refreshInterval: '1s', prePublication: '2s' } }],
    ['any refresh without pre-publication', { keys: { refreshInterval: '1h', prePublication: 0 } }],
    ['an access-token lifetime equal to the cap', { tokens: { accessTokenTtl: '1h', maxAccessTokenTtl: '1h' } }],
  ])('accepts %s', (_name, input) => {
    expect(() => resolveConfig(input)).not.toThrow();
  });
});

describe('maskConfig', () => {
  it('masks the secret and the database password and nothing else', () => {
    const config = resolveConfig({ secret: SECRET, databaseUrl: 'postgres://gatehouse:s3cr3t-pw@db.internal:5432/gatehouse?sslmode=require' });
    const masked = maskConfig(config);
    expect(masked.secret).toBe('***');
    expect(masked.databaseUrl).toBe('postgres://gatehouse:***@db.internal:5432/gatehouse?sslmode=require');
    expect(JSON.stringify(masked)).not.toContain(SECRET);
    expect(JSON.stringify(masked)).not.toContain('s3cr3t-pw');
    expect(masked.issuer).toBe(config.issuer);
    expect(masked.tokens).toEqual(config.tokens);
  });

  it.each([
    ['a URL without credentials', 'postgres://db.internal/gatehouse', 'postgres://db.internal/gatehouse'],
    ['a user without a password', 'postgres://gatehouse@db.internal/gatehouse', 'postgres://gatehouse@db.internal/gatehouse'],
    ['a password with a colon', 'postgres://gh:pa:ss@db/x', 'postgres://gh:***@db/x'],
    ['a percent-encoded @ in the password', 'postgres://gh:p%40ss@db/x', 'postgres://gh:***@db/x'],
    // pg accepts an unencoded '@' in the password: everything up to the last '@' is userinfo.
    ['an unencoded @ in the password', 'postgresql://gh:p@ss@db/x', 'postgresql://gh:***@db/x'],
    ['an @ in the query only', 'postgres://db/x?application_name=a@b', 'postgres://db/x?application_name=a@b'],
  ])('database URL with %s', (_name, databaseUrl, expected) => {
    expect(maskConfig(resolveConfig({ databaseUrl })).databaseUrl).toBe(expected);
  });

  it('leaves absent secrets absent', () => {
    const masked = maskConfig(resolveConfig());
    expect(masked.secret).toBeUndefined();
    expect(masked.databaseUrl).toBeUndefined();
  });
});

describe('limits on settings that weaken guarantees', () => {
  it('refuses a cache refresh interval above 60 seconds', () => {
    expect(configError(() => resolveConfig({ cache: { refreshInterval: '2m' } })).problems[0]).toMatch(/^cache\.refreshInterval: at most 60 seconds/);
  });

  it('masks a password given as a DATABASE_URL query parameter', () => {
    const masked = maskConfig(resolveConfig({ databaseUrl: 'postgres://u@db.example/gh?password=hunter2&sslmode=require' }));
    expect(masked.databaseUrl).toBe('postgres://u@db.example/gh?password=***&sslmode=require');
  });
});

describe('port parsing', () => {
  it.each([['abc'], [' '], ['0x10'], ['1e3'], ['70000'], ['-1'], ['80.5']])('refuses GATEHOUSE_PORT=%j naming the setting', (value) => {
    const error = configError(() => loadConfig({ env: { GATEHOUSE_PORT: value }, file: undefined }));
    expect(error.problems[0]).toMatch(/^port \(GATEHOUSE_PORT\)/);
  });

  it('names GATEHOUSE_ISSUER when a non-loopback host makes the derived issuer insecure', () => {
    const error = configError(() => resolveConfig({ host: '0.0.0.0' }));
    expect(error.problems[0]).toContain('set issuer (GATEHOUSE_ISSUER)');
  });
});
