import { z } from 'zod';
import { parseDuration } from '../protocol/duration.js';
import { checkIssuer } from '../protocol/issuer.js';
import { GRANT_TYPES } from '../model.js';

/**
 * The one documented source of truth for configuration. Every setting has a default that is
 * safe; every setting that weakens security is named `dangerously*` and logged at startup.
 */

const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((v, ctx) => {
      const seconds = parseDuration(v);
      if (seconds === null) {
        ctx.addIssue({ code: 'custom', message: 'a duration: seconds, or a number with s, m, h or d (e.g. 10m, 90d)' });
        return z.NEVER;
      }
      return seconds;
    });

const ASYMMETRIC_ALGS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'] as const;
export const SIGNING_ALGS = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
export const CLIENT_ASSERTION_ALGS = ASYMMETRIC_ALGS;

const portNumber = z
  .union([z.number(), z.string().regex(/^\d{1,5}$/, 'a port number from 0 to 65535').transform(Number)])
  .pipe(z.number().int().min(0).max(65535));

/** Requests per window, 0 for no limit. */
const perWindow = (fallback: number) => z.number().int().min(0).default(fallback);
const clientAndAddress = (perClient: number, perAddress: number) =>
  z.object({ perClient: perWindow(perClient), perAddress: perWindow(perAddress) }).strict().prefault({});
const addressOnly = (perAddress: number) => z.object({ perAddress: perWindow(perAddress) }).strict().prefault({});

export const configSchema = z
  .object({
    /** Public issuer identifier; defaults to http://HOST:PORT. https required off loopback. */
    issuer: z.string().optional(),
    host: z.string().min(1).default('127.0.0.1'),
    port: portNumber.default(4000),
    /** Where SQLite data and the generated key-encryption key live. */
    dataDir: z.string().min(1).default('./data'),
    /** postgres://… selects PostgreSQL; absent means SQLite at DATA_DIR/gatehouse.db. */
    databaseUrl: z.string().optional(),
    /** Key-encryption key for private signing keys (≥ 32 characters), or a file holding it. */
    secret: z.string().min(32, 'at least 32 characters').optional(),
    secretFile: z.string().optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Apply pending migrations on start. */
    migrateOnStart: z.boolean().default(true),
    /** Proxies whose X-Forwarded-* headers are trusted: addresses or CIDRs. Empty trusts none. */
    trustedProxies: z.array(z.string()).default([]),
    http: z
      .object({
        /** Largest accepted request body, bytes. */
        bodyLimit: z.number().int().min(1024).max(1024 * 1024).default(64 * 1024),
        /** Requests taking longer (headers and body) are cut off, milliseconds. */
        requestTimeout: z.number().int().min(1000).default(10_000),
        /** Open connections per instance; more are refused until some close. */
        maxConnections: z.number().int().min(1).default(10_000),
      })
      .strict()
      .prefault({}),
    tokens: z
      .object({
        /** Default access-token lifetime (per client and per resource values may shorten it). */
        accessTokenTtl: duration('10m'),
        /** Upper bound for any configured access-token lifetime; keys stay published this long after retiring. */
        maxAccessTokenTtl: duration('1d'),
        /** `aud` of tokens requested without a resource whose scopes name no resource; defaults to the issuer. */
        defaultAudience: z.string().optional(),
        accessTokenSigningAlg: z.enum(SIGNING_ALGS).default('ES256'),
        idTokenSigningAlg: z.enum(SIGNING_ALGS).default('RS256'),
      })
      .strict()
      .prefault({}),
    keys: z
      .object({
        /** A new signing key is generated this often. */
        rotationInterval: duration('90d'),
        /** A new key is published in the JWKS this long before it signs anything. */
        prePublication: duration('1d'),
        /** How often each instance re-reads the key set (rotation is seen without a restart). */
        refreshInterval: duration('60s'),
      })
      .strict()
      .prefault({}),
    cache: z
      .object({
        /**
         * How often each instance checks whether clients or resources changed (one small query).
         * A change made elsewhere (another instance, the CLI) is honoured within this time; 0
         * turns the in-memory copies off and every request reads the database.
         */
        refreshInterval: duration('1s').refine((v) => v <= 60, 'at most 60 seconds'),
      })
      .prefault({}),
    clientAuth: z
      .object({
        /** Longest accepted remaining lifetime of a private_key_jwt assertion. */
        assertionMaxLifetime: duration('5m'),
        clockTolerance: duration('30s'),
        /** DANGEROUS: lets clients' jwks_uri reach loopback and private addresses (local development only). */
        dangerouslyAllowPrivateJwksUri: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Serve Prometheus metrics on a listener of their own, never on the public one. */
        enabled: z.boolean().default(true),
        /**
         * Address of the metrics listener. Loopback by default: bound beyond it, anyone who can
         * reach it reads operational data (request rates, error codes, pool usage).
         */
        host: z.string().min(1).default('127.0.0.1'),
        /** Port of the metrics listener (0: any free port). */
        port: portNumber.default(9464),
      })
      .strict()
      .prefault({}),
    rateLimits: z
      .object({
        /** Turns every limit below off (the sign-in and user-code throttles stay). */
        enabled: z.boolean().default(true),
        /** REDIS_URL: keep the shared counters in Redis instead of the database. */
        redisUrl: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').optional(),
        /** The window every limit counts in. */
        window: duration('1m').refine((v) => v >= 1 && v <= 3600, 'between 1 second and 1 hour'),
        /** How often each instance adds its counts to the shared counters, milliseconds. */
        syncInterval: z.number().int().min(10).max(10_000).default(250),
        /** Counters each instance keeps in memory. */
        maxCounters: z.number().int().min(1000).max(10_000_000).default(100_000),
        token: clientAndAddress(1200, 2400),
        introspection: clientAndAddress(6000, 6000),
        revocation: clientAndAddress(600, 1200),
        deviceAuthorization: clientAndAddress(60, 60),
        registration: addressOnly(30),
        /** POSTs of the sign-in, consent, logout, account and device forms. */
        pages: addressOnly(120),
      })
      .strict()
      .prefault({}),
    janitor: z
      .object({
        /** How often an instance deletes expired rows (one instance at a time); 0 turns it off in `start`. */
        interval: duration('5m'),
        /** Rows per delete statement, and statements per table per run. */
        batchSize: z.number().int().min(10).max(10_000).default(500),
        maxBatches: z.number().int().min(1).max(10_000).default(100),
      })
      .strict()
      .prefault({}),
    sessions: z
      .object({
        /** A browser session ends this long after sign-in, however active. */
        absoluteLifetime: duration('12h'),
        /** A browser session ends after this long without use. */
        idleTimeout: duration('2h'),
      })
      .strict()
      .prefault({}),
    login: z
      .object({
        /** Failed sign-ins per account and per client IP before delays start. */
        freeAttempts: z.number().int().min(1).max(100).default(5),
        /** The delay after the first counted failure; it doubles with each further one. */
        baseDelay: duration('1s'),
        /** The longest delay. */
        maxDelay: duration('15m'),
        /** Failures older than this are forgotten. */
        window: duration('1h'),
      })
      .strict()
      .prefault({}),
    authorization: z
      .object({
        /** Authorization code lifetime. */
        codeTtl: duration('60s'),
        /** How long a pending sign-in or consent may take. */
        interactionTtl: duration('10m'),
        /** Refresh tokens: absolute lifetime of a lineage, and the longest pause between uses. */
        refreshTokenTtl: duration('30d'),
        refreshTokenIdleTtl: duration('14d'),
        /** Reuse of a rotated refresh token inside this window succeeds without revoking (0: never). */
        refreshTokenGracePeriod: duration('0s'),
        /** ID token lifetime. */
        idTokenTtl: duration('10m'),
      })
      .strict()
      .prefault({}),
    device: z
      .object({
        /** RFC 8628 §3.2 expires_in: how long a device code and its user code stay valid. */
        codeTtl: duration('10m').refine((v) => v >= 60 && v <= 3600, 'between 1 minute and 1 hour'),
        /** RFC 8628 §3.2 interval: the least time between polls; each slow_down adds 5 seconds. */
        pollInterval: duration('5s').refine((v) => v >= 1 && v <= 60, 'between 1 and 60 seconds'),
        /** Wrong user codes typed against one pending request before it is locked (the device is told access_denied). */
        userCodeAttempts: z.number().int().min(1).max(20).default(5),
      })
      .strict()
      .prefault({}),
    ui: z
      .object({
        /** Product name, logo and colours on the login, consent, device and account pages. */
        brand: z
          .object({
            name: z.string().min(1).max(100).default('Gatehouse'),
            logoUrl: z.url({ protocol: /^https$/ }).optional(),
            primaryColor: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'a colour like #1a73e8').default('#1f5fbf'),
            backgroundColor: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'a colour like #f5f7fa').default('#f5f7fa'),
          })
          .strict()
          .prefault({}),
        /** A directory whose templates replace the built-in ones, file by file. */
        templatesDir: z.string().optional(),
      })
      .strict()
      .prefault({}),
    introspection: z
      .object({
        /**
         * A caller may introspect only its own tokens and tokens for resources it represents
         * (`resources create --client`). Turning it off lets any client read any token's claims.
         */
        restrictToOwnResources: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    registration: z
      .object({
        enabled: z.boolean().default(true),
        /** DANGEROUS: lets anyone register a client without an initial access token. */
        dangerouslyAllowOpenRegistration: z.boolean().default(false),
        allowedGrantTypes: z
          .array(z.enum(GRANT_TYPES))
          .default([...GRANT_TYPES]),
        allowedAuthMethods: z
          .array(z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']))
          .default(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']),
        /** Scopes a client registered without an initial access token's own scope list may receive. */
        openRegistrationScopes: z.array(z.string()).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;

/** The validated configuration with derived values filled in. */
export interface GatehouseConfig extends ParsedConfig {
  issuer: string;
}

export function finishConfig(parsed: ParsedConfig): { ok: true; config: GatehouseConfig } | { ok: false; problems: string[] } {
  const issuerValue = parsed.issuer ?? `http://${parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host}:${parsed.port}`;
  const verdict = checkIssuer(issuerValue);
  if (!verdict.ok) {
    const hint = parsed.issuer === undefined ? ' — it was derived from host and port; set issuer (GATEHOUSE_ISSUER)' : '';
    return { ok: false, problems: [`issuer (GATEHOUSE_ISSUER) ${issuerValue}: ${verdict.reason}${hint}`] };
  }
  const problems: string[] = [];
  if (parsed.tokens.accessTokenTtl > parsed.tokens.maxAccessTokenTtl) {
    problems.push('tokens.accessTokenTtl: must not exceed tokens.maxAccessTokenTtl');
  }
  if (parsed.tokens.accessTokenTtl < 1) problems.push('tokens.accessTokenTtl: must be at least 1 second');
  if (parsed.keys.refreshInterval > parsed.keys.prePublication && parsed.keys.prePublication > 0) {
    problems.push('keys.refreshInterval: must not exceed keys.prePublication, or instances would sign before others publish');
  }
  if (parsed.metrics.enabled && parsed.metrics.port !== 0 && parsed.metrics.port === parsed.port) {
    problems.push('metrics.port: must differ from port (metrics are never served on the public listener)');
  }
  if (parsed.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(parsed.databaseUrl)) {
    problems.push('databaseUrl (DATABASE_URL): must be a postgres:// URL; leave it unset for SQLite');
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: { ...parsed, issuer: verdict.issuer } };
}
