import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ClientKeyResolver } from './client-auth/client-keys.js';
import { UsageRecorder } from './usage-recorder.js';
import { resolveConfig } from './config/load.js';
import type { ConfigInput, GatehouseConfig } from './config/schema.js';
import { endpointPaths, endpointUrls, systemClock, type Clock, type EndpointPaths, type ServerContext } from './context.js';
import { registerDiscoveryEndpoints } from './endpoints/discovery.js';
import { registerHealthEndpoints } from './endpoints/health.js';
import { registerIntrospectionEndpoint } from './endpoints/introspect.js';
import { registerJwksEndpoint } from './endpoints/jwks.js';
import { registerRegistrationEndpoints } from './endpoints/registration.js';
import { registerRevocationEndpoint } from './endpoints/revoke.js';
import { registerTokenEndpoint } from './endpoints/token.js';
import { createClientCredentialsGrant } from './grants/client-credentials.js';
import { createAuthorizationCodeGrant } from './grants/authorization-code.js';
import { createRefreshTokenGrant } from './grants/refresh-token.js';
import { createDeviceCodeGrant } from './grants/device-code.js';
import { registerDeviceEndpoints } from './endpoints/device.js';
import { registerAuthorizationEndpoints } from './endpoints/authorize.js';
import { registerUserinfoEndpoint } from './endpoints/userinfo.js';
import { registerLogoutEndpoint } from './endpoints/logout.js';
import { registerAccountEndpoints } from './endpoints/account.js';
import { IdTokenService } from './tokens/id-token.js';
import { createCookies, registerCookies } from './interaction/cookies.js';
import { createCsrf, CSRF_KEY_INFO } from './interaction/csrf.js';
import { USER_CODE_KEY_INFO } from './protocol/user-code.js';
import { createPageRenderer, registerAssets } from './interaction/pages.js';
import { BrowserSessions } from './interaction/browser-sessions.js';
import { LoginThrottle } from './users/login-throttle.js';
import { runJanitor } from './janitor.js';
import { createGrantRegistry } from './grants/grant-handler.js';
import { createHttpApp } from './http/app.js';
import { loadKeyEncryptionKey, type KeyEncryptionKey } from './keys/key-encryption.js';
import { KeySet } from './keys/key-set.js';
import { createLogger, type Logger } from './logging.js';
import { migrateToLatest, pendingMigrations } from './storage/database.js';
import { openStorage, type Storage } from './storage/storage.js';
import { AccessTokenService } from './tokens/access-token.js';
import { ResourceCatalog } from './cache/resource-catalog.js';
import { ChangeWatcher } from './cache/change-watcher.js';
import { ClientCache } from './cache/client-cache.js';
import { listenMetrics, Metrics, type MetricsListener } from './metrics.js';
import { RateLimiter } from './rate-limit/limiter.js';
import { RateLimits } from './rate-limit/rate-limits.js';
import { RedisRateLimitStore } from './rate-limit/redis-store.js';
import { addressRateLimits } from './rate-limit/http.js';
import type { JanitorReport } from './storage/repositories/janitor-repository.js';

export interface ServerOptions {
  /** Seconds since the epoch; tests pass their own. */
  clock?: Clock;
  logger?: Logger;
}

export interface AuthorizationServer {
  readonly config: GatehouseConfig;
  readonly storage: Storage;
  readonly keys: KeySet;
  readonly app: FastifyInstance;
  readonly logger: Logger;
  /** This instance's Prometheus metrics; served on `metrics.host:metrics.port` once listening, when enabled. */
  readonly metrics: Metrics;
  /** Where the metrics listener serves `GET /metrics`; undefined before `listen()` or when disabled. */
  readonly metricsUrl: string | undefined;
  /**
   * Starts listening on the configured host and port, and the metrics listener on its own
   * address when enabled; resolves to the bound public URL.
   */
  listen(): Promise<string>;
  /**
   * One janitor run, as the `janitor.interval` schedule does it: deletes expired rows if this
   * instance gets the lock, and counts them in the metrics. Undefined when another holds the lock.
   */
  runJanitor(): Promise<JanitorReport | undefined>;
  /** Stops accepting, finishes in-flight requests, stops timers, closes the database. */
  close(): Promise<void>;
}

/** Routes of pages a person sees (their errors are pages): authorization, interaction, device, logout, account. */
export function isPageRoute(paths: EndpointPaths, route: string): boolean {
  const under = (base: string) => route === base || route.startsWith(`${base}/`);
  return [paths.authorization, paths.interaction, paths.device, paths.endSession, paths.account].some(under);
}

export function sqliteFile(config: GatehouseConfig): string {
  return join(config.dataDir, 'gatehouse.db');
}

/** Opens storage for the CLI and the server alike. */
export function openConfiguredStorage(config: GatehouseConfig): Storage {
  return openStorage({ databaseUrl: config.databaseUrl, sqliteFile: sqliteFile(config) });
}

/** Builds the key set (loading or generating the key-encryption key). */
export function createKeySet(config: GatehouseConfig, storage: Storage): { keys: KeySet; kek: KeyEncryptionKey; kekOrigin: string } {
  const { kek, origin } = loadKeyEncryptionKey({ secret: config.secret, secretFile: config.secretFile, dataDir: config.dataDir });
  const keys = new KeySet(storage.keys, kek, {
    algs: { access_token: config.tokens.accessTokenSigningAlg, id_token: config.tokens.idTokenSigningAlg },
    rotationInterval: config.keys.rotationInterval,
    prePublication: config.keys.prePublication,
    // A retired key stays published while tokens it signed may live: the longest lifetime, plus
    // how late an instance may learn of the retirement, plus clock skew.
    retention: config.tokens.maxAccessTokenTtl + config.keys.refreshInterval + config.clientAuth.clockTolerance,
  });
  return { keys, kek, kekOrigin: origin };
}

/**
 * The composition root: configuration → storage → keys → grants → endpoints. Everything that
 * matters lives in the database, so any number of these may share one PostgreSQL database.
 */
export async function createAuthorizationServer(input: ConfigInput | GatehouseConfig = {}, options: ServerOptions = {}): Promise<AuthorizationServer> {
  const config = resolveConfig(input as ConfigInput);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const storage = openConfiguredStorage(config);
  let timer: NodeJS.Timeout | undefined;
  let janitorTimer: NodeJS.Timeout | undefined;
  let watcher: ChangeWatcher | undefined;
  let metricsListener: MetricsListener | undefined;
  let limiter: RateLimiter | undefined;
  try {
    if (config.migrateOnStart) {
      const { applied } = await migrateToLatest(storage.handle.db);
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    } else {
      const pending = await pendingMigrations(storage.handle.db);
      if (pending.length > 0) throw new Error(`database has pending migrations (${pending.join(', ')}); run: gatehouse migrate`);
    }
    const { keys, kek, kekOrigin } = createKeySet(config, storage);
    const rotated = await keys.ensureKeys(clock());
    await keys.refresh(clock());
    logger.info({ kek: kekOrigin, generated: rotated }, 'signing keys loaded');
    if (config.clientAuth.dangerouslyAllowPrivateJwksUri) {
      logger.warn('clientAuth.dangerouslyAllowPrivateJwksUri is on: client key-set URLs may reach private addresses');
    }
    if (config.registration.dangerouslyAllowOpenRegistration) {
      logger.warn('registration.dangerouslyAllowOpenRegistration is on: anyone can register a client');
    }

    watcher = new ChangeWatcher(() => storage.readGenerations(), config.cache.refreshInterval * 1000, logger);
    await watcher.start();
    const clientCache = new ClientCache(storage.clients, watcher);
    const catalog = new ResourceCatalog(storage.resources, watcher);
    const skew = config.clientAuth.clockTolerance;
    const accessTokens = new AccessTokenService(config.issuer, keys, storage.accessTokens, config.tokens.maxAccessTokenTtl + skew, config.keys.refreshInterval + skew);
    const idTokens = new IdTokenService(config.issuer, keys, config.authorization.idTokenTtl);
    const isUserActive = async (userId: string) => {
      const user = await storage.users.findUserById(userId);
      return user !== undefined && !user.disabled;
    };
    // Governance: last use of clients and grants, written behind the token path.
    const usage = new UsageRecorder((ids, at) => storage.clients.recordClientsUse(ids, at), logger, 'client');
    const grantUsage = new UsageRecorder((ids, at) => storage.grants.recordGrantsUse(ids, at), logger, 'grant');
    const delegated = {
      issuer: config.issuer,
      catalog,
      accessTokens,
      idTokens,
      accessTokenTtl: config.tokens.accessTokenTtl,
      maxAccessTokenTtl: config.tokens.maxAccessTokenTtl,
      grantUsage,
    };
    const lineage = {
      ...delegated,
      isUserActive,
      refreshTokens: storage.refreshTokens,
      revokedAccessTokens: storage.accessTokens,
      refreshTokenTtl: config.authorization.refreshTokenTtl,
      refreshTokenIdleTtl: config.authorization.refreshTokenIdleTtl,
    };
    const metrics = new Metrics({ poolStats: storage.handle.poolStats, processMetrics: config.metrics.enabled });
    const grants = createGrantRegistry([
      createAuthorizationCodeGrant({ ...lineage, codes: storage.codes }),
      createDeviceCodeGrant({ ...lineage, deviceCodes: storage.deviceCodes }),
      createRefreshTokenGrant({ ...lineage, gracePeriod: config.authorization.refreshTokenGracePeriod }),
      createClientCredentialsGrant({
        catalog,
        accessTokens,
        defaultAudience: config.tokens.defaultAudience ?? config.issuer,
        accessTokenTtl: config.tokens.accessTokenTtl,
        maxAccessTokenTtl: config.tokens.maxAccessTokenTtl,
      }),
    ]);
    metrics.declareGrantTypes(grants.keys());
    // Rate-limit counters shared through Redis when configured, else the database.
    limiter = new RateLimiter({
      store: config.rateLimits.redisUrl === undefined ? storage.rateLimits : new RedisRateLimitStore(config.rateLimits.redisUrl),
      syncInterval: config.rateLimits.syncInterval,
      maxCounters: config.rateLimits.maxCounters,
      logger,
      clock,
    });
    limiter.start();
    const urls = endpointUrls(config.issuer);
    const cookies = createCookies(config.issuer);
    const pages = createPageRenderer({ issuer: config.issuer, ui: config.ui });
    const ctx: ServerContext = {
      config,
      storage,
      keys,
      accessTokens,
      grants,
      clientCache,
      catalog,
      idTokens,
      web: {
        pages,
        cookies,
        csrf: createCsrf({ key: kek.deriveKey(CSRF_KEY_INFO), cookies }),
        sessions: new BrowserSessions(storage.sessions, cookies, config.sessions),
        loginThrottle: new LoginThrottle(storage.loginThrottle, config.login),
        userCodeKey: kek.deriveKey(USER_CODE_KEY_INFO),
      },
      clientAuth: {
        clients: clientCache,
        assertions: storage.assertions,
        clientKeys: new ClientKeyResolver({ allowPrivateAddresses: config.clientAuth.dangerouslyAllowPrivateJwksUri }),
        issuer: config.issuer,
        assertionMaxLifetime: config.clientAuth.assertionMaxLifetime,
        clockTolerance: config.clientAuth.clockTolerance,
      },
      usage,
      rateLimits: new RateLimits(limiter, config.rateLimits, (bucket) => metrics.rateLimited(bucket)),
      metrics,
      logger,
      clock,
      urls,
      paths: endpointPaths(config.issuer),
    };

    const app = createHttpApp({
      logger,
      metrics,
      bodyLimit: config.http.bodyLimit,
      requestTimeout: config.http.requestTimeout,
      maxConnections: config.http.maxConnections,
      trustedProxies: config.trustedProxies,
      admit: addressRateLimits(ctx),
      pageErrors: {
        isPage: (route) => isPageRoute(ctx.paths, route),
        render: pages.renderError,
      },
    });
    registerAssets(app, pages);
    registerHealthEndpoints(app, ctx);
    registerDiscoveryEndpoints(app, ctx);
    registerJwksEndpoint(app, ctx);
    registerTokenEndpoint(app, ctx);
    registerIntrospectionEndpoint(app, ctx);
    registerRevocationEndpoint(app, ctx);
    if (config.registration.enabled) registerRegistrationEndpoints(app, ctx);
    registerUserinfoEndpoint(app, ctx);
    // The endpoints that keep browser cookies, in a scope of their own: the protocol endpoints
    // (token, introspection, …) neither read nor set cookies, so they skip parsing them.
    await app.register(async (browser) => {
      await registerCookies(browser);
      registerAuthorizationEndpoints(browser, ctx);
      registerDeviceEndpoints(browser, ctx);
      registerLogoutEndpoint(browser, ctx);
      registerAccountEndpoints(browser, ctx);
    });
    await app.ready();

    // Every instance re-reads the key set and rotates when due; rotation is idempotent across instances.
    timer = setInterval(() => {
      const now = clock();
      keys
        .ensureKeys(now)
        .then((r) => (r.length > 0 ? logger.info({ rotated: r }, 'signing keys rotated') : undefined))
        .then(() => keys.refresh(now))
        .catch((err: unknown) => logger.warn({ err }, 'key refresh failed'));
    }, config.keys.refreshInterval * 1000);
    timer.unref();

    // The janitor keeps tables bounded; instances take turns through a lock.
    const janitorRun = async (): Promise<JanitorReport | undefined> => {
      const report = await runJanitor(storage, config, clock());
      if (report === undefined) return undefined;
      metrics.janitorDeleted(report);
      if (Object.values(report).some((n) => n > 0)) logger.info({ deleted: report }, 'janitor deleted expired rows');
      return report;
    };
    if (config.janitor.interval > 0) {
      janitorTimer = setInterval(() => {
        janitorRun().catch((err: unknown) => logger.warn({ err }, 'janitor run failed'));
      }, config.janitor.interval * 1000);
      janitorTimer.unref();
    }

    let closing: Promise<void> | undefined;
    return {
      config,
      storage,
      keys,
      app,
      logger,
      metrics,
      get metricsUrl() {
        return metricsListener?.url;
      },
      async listen() {
        const url = await app.listen({ host: config.host, port: config.port });
        if (config.metrics.enabled && metricsListener === undefined) {
          metricsListener = await listenMetrics(metrics, { host: config.metrics.host, port: config.metrics.port, logger });
        }
        return url;
      },
      runJanitor: janitorRun,
      close() {
        // One shutdown however often it is asked for (a second SIGTERM, SIGINT after SIGTERM):
        // every caller waits for the same one to finish.
        closing ??= (async () => {
          clearInterval(timer);
          clearInterval(janitorTimer);
          watcher?.stop();
          await metricsListener?.close();
          // app.close() stops accepting connections, answers requests that arrive on kept-alive
          // connections with 503 and `Connection: close` (return503OnClosing), and waits for the
          // requests in flight. It closes only the connections idle at that moment, though: one
          // whose request finishes later is kept alive for the client's next request, and holds
          // the close until the client or keepAliveTimeout ends it, seconds later. So connections
          // are closed as they become idle, until the last in-flight request has been answered
          // (what Go's http.Server.Shutdown does).
          const reaper = setInterval(() => app.server.closeIdleConnections(), 10);
          // Node stops enforcing http.requestTimeout once its server is closing, so a client that
          // never sends the rest of its request would hold the drain for ever. Every request in
          // flight began before now, so after requestTimeout any still being received is overdue:
          // the remaining connections are closed then (a request still being handled that long,
          // stuck on the database, goes too; nothing is answered to it, as to a crash).
          const deadline = setTimeout(() => {
            logger.warn({ requestTimeout: config.http.requestTimeout }, 'shutdown: closing connections with requests unfinished after http.requestTimeout');
            app.server.closeAllConnections();
          }, config.http.requestTimeout);
          try {
            await app.close();
          } finally {
            clearInterval(reaper);
            clearTimeout(deadline);
          }
          await limiter?.stop();
          await usage.close();
          await grantUsage.close();
          // Only now, with no request left that could need it: the pool ends its connections.
          await storage.close();
          await new Promise<void>((resolve) => logger.flush(() => resolve()));
        })();
        return closing;
      },
    };
  } catch (err) {
    clearInterval(timer);
    clearInterval(janitorTimer);
    watcher?.stop();
    await limiter?.stop().catch(() => undefined);
    await storage.close().catch(() => undefined);
    throw err;
  }
}
