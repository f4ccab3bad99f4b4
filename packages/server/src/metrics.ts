import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { Logger } from './logging.js';
import type { PoolStats } from './storage/database.js';

/**
 * Prometheus metrics of one server instance. Every label value is bounded and carries nothing
 * from the request but its route pattern, method, status and RFC `error` code: never a raw URL,
 * client id, user id, token or code.
 */

/** Latency buckets, seconds: the token endpoint answers in about a millisecond, sign-ins (argon2id) in tens to hundreds. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKET_LABELS = [...DURATION_BUCKETS.map(String), '+Inf'];

/** Methods reported by name; anything else Node's parser accepts is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** The `route` label of a request that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

export interface MetricsOptions {
  /**
   * Connection pool usage, read at scrape time. PostgreSQL only: SQLite has no pool (one
   * writing connection, one reading), so there the pool gauges are not exported at all rather
   * than made up.
   */
  poolStats?: (() => PoolStats) | undefined;
  /** Export the process metrics (CPU, memory, event loop, GC) too; off for servers nobody scrapes. */
  processMetrics?: boolean;
}

/**
 * Process metrics (prom-client's default metrics, prefixed `gatehouse_`) describe the process,
 * not a server, and `collectDefaultMetrics` starts a GC observer and an event-loop monitor that
 * are never stopped: so one registry per process, shared by the servers it runs (tests start
 * dozens), separate from prom-client's global default registry.
 */
let processRegistry: Registry | undefined;

function processMetricsRegistry(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'gatehouse_' });
  }
  return processRegistry;
}

/**
 * The per-request series, counted with plain numbers: prom-client's `inc` and `observe` hash
 * their label objects on every call, which cost about 2.5 % of the server's CPU on the token
 * endpoint. These are read at scrape time instead.
 */
interface RequestSeries {
  /** `{ route, method }`, shared by every line of the series. */
  readonly labels: Readonly<{ route: string; method: string }>;
  /** Requests by status, and how many of them the requests counter has been told of. */
  readonly statuses: Map<number, { answered: number; reported: number }>;
  /** Non-cumulative: buckets[i] counts durations in (DURATION_BUCKETS[i-1], DURATION_BUCKETS[i]]; the last one is above them all. */
  readonly buckets: Float64Array;
  count: number;
  sum: number;
}

/**
 * A prom-client counter fed with plain numbers that are handed over at scrape time (its
 * `collect`), so a flood of requests (tokens, errors, rate-limit refusals) costs a map lookup
 * each rather than prom-client's label hashing.
 */
class BufferedCounter<L extends string> {
  readonly #labelNames: readonly L[];
  readonly #pending = new Map<string, { labels: Record<L, string>; n: number; known: boolean }>();

  constructor(registry: Registry, config: { name: string; help: string; labelNames: readonly L[] }) {
    this.#labelNames = config.labelNames;
    const pending = this.#pending;
    new Counter<L>({
      ...config,
      registers: [registry],
      collect() {
        for (const e of pending.values()) {
          if (e.n === 0 && e.known) continue;
          this.inc(e.labels, e.n);
          e.n = 0;
          e.known = true;
        }
      },
    });
  }

  /** Adds `n` (0 makes the series appear) to the series of these label values. */
  inc(labels: Record<L, string>, n = 1): void {
    const key = this.#labelNames.length === 1 ? (labels[this.#labelNames[0] as L] as string) : this.#labelNames.map((l) => labels[l]).join('\n');
    const e = this.#pending.get(key);
    if (e === undefined) this.#pending.set(key, { labels, n, known: false });
    else e.n += n;
  }
}

/** A line of a metric family, as a registry reads it from `get()`. */
interface SampleValue {
  metricName: string;
  labels: Readonly<Record<string, string | number>>;
  value: number;
}

/**
 * `gatehouse_http_request_duration_seconds` read from the request series at scrape time, in the
 * shape prom-client's own histograms give the registry from `get()` (their declared TypeScript
 * type, an enum for `type`, is not what they return, hence the cast where it is registered).
 */
class DurationHistogram {
  readonly name = 'gatehouse_http_request_duration_seconds';
  readonly help = 'Time from receiving a request to the end of its response, by route pattern and method';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(private readonly series: () => Iterable<RequestSeries>) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: SampleValue[] }> {
    const values: SampleValue[] = [];
    for (const s of this.series()) {
      let cumulative = 0;
      for (let i = 0; i < BUCKET_LABELS.length; i++) {
        cumulative += s.buckets[i] ?? 0;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: BUCKET_LABELS[i] as string }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    // Counted by the request series, which only grow.
  }
}

/** One server's counters, histogram and gauges, in a registry of its own. */
export class Metrics {
  /** This server's metrics (process metrics live in a registry shared by the process). */
  readonly registry = new Registry();
  readonly #process: Registry | undefined;
  /** Request series by route, then method. */
  readonly #series = new Map<string, Map<string, RequestSeries>>();
  readonly #tokens: BufferedCounter<'grant_type'>;
  readonly #errors: BufferedCounter<'endpoint' | 'error'>;
  readonly #rateLimited: BufferedCounter<'limit'>;
  readonly #janitor: Counter<'table'>;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    const series = () => this.#allSeries();
    new Counter({
      name: 'gatehouse_http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
      collect() {
        for (const s of series()) {
          for (const [status, n] of s.statuses) {
            if (n.answered === n.reported) continue;
            this.inc({ ...s.labels, status }, n.answered - n.reported);
            n.reported = n.answered;
          }
        }
      },
    });
    this.registry.registerMetric(new DurationHistogram(series) as unknown as Metric);
    this.#tokens = new BufferedCounter(this.registry, {
      name: 'gatehouse_tokens_issued_total',
      help: 'Successful token endpoint responses, by grant_type',
      labelNames: ['grant_type'],
    });
    this.#errors = new BufferedCounter(this.registry, {
      name: 'gatehouse_oauth_errors_total',
      help: 'Error responses in the OAuth JSON error model, by route pattern and RFC error code',
      labelNames: ['endpoint', 'error'],
    });
    this.#rateLimited = new BufferedCounter(this.registry, {
      name: 'gatehouse_rate_limited_total',
      help: 'Requests refused by a rate limit, by limit (token, introspection, revocation, deviceAuthorization, registration, pages)',
      labelNames: ['limit'],
    });
    this.#janitor = new Counter({
      name: 'gatehouse_janitor_deleted_rows_total',
      help: 'Expired rows deleted by the janitor on this instance, by table',
      labelNames: ['table'],
      registers,
    });
    const poolStats = options.poolStats;
    if (poolStats !== undefined) {
      new Gauge({
        name: 'gatehouse_db_pool_connections',
        help: 'Database pool connections: total open, idle, and requests waiting for one',
        labelNames: ['state'],
        registers,
        collect() {
          const stats = poolStats();
          this.set({ state: 'total' }, stats.total);
          this.set({ state: 'idle' }, stats.idle);
          this.set({ state: 'waiting' }, stats.waiting);
        },
      });
      new Gauge({
        name: 'gatehouse_db_pool_max_connections',
        help: 'The most connections the database pool opens',
        registers,
        collect() {
          this.set(poolStats().max);
        },
      });
    }
    this.#process = options.processMetrics === true ? processMetricsRegistry() : undefined;
  }

  /**
   * One answered request. `route` is Fastify's route pattern (`/interaction/:id`) or
   * {@link UNMATCHED_ROUTE}, never the URL.
   */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    const m = METHODS.has(method) ? method : 'other';
    let byMethod = this.#series.get(route);
    if (byMethod === undefined) this.#series.set(route, (byMethod = new Map()));
    let s = byMethod.get(m);
    if (s === undefined) {
      s = { labels: { route, method: m }, statuses: new Map(), buckets: new Float64Array(BUCKET_LABELS.length), count: 0, sum: 0 };
      byMethod.set(m, s);
    }
    const n = s.statuses.get(status);
    if (n === undefined) s.statuses.set(status, { answered: 1, reported: 0 });
    else n.answered++;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++;
    s.buckets[i] = (s.buckets[i] as number) + 1;
    s.count++;
    s.sum += seconds;
  }

  *#allSeries(): Iterable<RequestSeries> {
    for (const byMethod of this.#series.values()) yield* byMethod.values();
  }

  /** Starts the issuance counters of these grant types at zero, so every series exists from the start. */
  declareGrantTypes(grantTypes: Iterable<string>): void {
    for (const grantType of grantTypes) this.#tokens.inc({ grant_type: grantType }, 0);
  }

  /** A successful token response for a registered grant type. */
  tokenIssued(grantType: string): void {
    this.#tokens.inc({ grant_type: grantType });
  }

  /** An OAuth error response: the route pattern and the RFC `error` code, nothing else. */
  oauthError(endpoint: string, error: string): void {
    this.#errors.inc({ endpoint, error });
  }

  /** A request refused by a rate limit; `limit` names the limit (rate-limit/rate-limits.ts RATE_BUCKETS): never a client id or an address. */
  rateLimited(limit: string): void {
    this.#rateLimited.inc({ limit });
  }

  /** What one janitor run deleted, by table (tables with nothing deleted count zero). */
  janitorDeleted(report: Readonly<Record<string, number>>): void {
    for (const [table, rows] of Object.entries(report)) this.#janitor.inc({ table }, rows);
  }

  /** The exposition format's content type (text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of this server's metrics, and of the process's when enabled. */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    return this.#process === undefined ? own : `${own}\n${await this.#process.metrics()}`;
  }
}

/** The admin listener serving `GET /metrics`. */
export interface MetricsListener {
  /** Where Prometheus scrapes, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** Stops listening and drops the scrapers' kept-alive connections. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` on its own address, apart from the public listener, so the public
 * issuer never exposes operational data; anything else is 404. Rejects when the address is
 * taken.
 */
export async function listenMetrics(metrics: Metrics, options: { host: string; port: number; logger: Logger }): Promise<MetricsListener> {
  const { logger } = options;
  const plain = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const path = req.url?.split('?', 1)[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, plain).end('not found\n');
      return;
    }
    metrics.render().then(
      (body) => res.writeHead(200, { ...plain, 'content-type': metrics.contentType }).end(body),
      (err: unknown) => {
        logger.error({ err }, 'metrics scrape failed');
        res.writeHead(500, plain).end('metrics unavailable\n');
      },
    );
  });
  server.maxConnections = 100;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) =>
      reject(new Error(`the metrics listener cannot listen on ${options.host}:${options.port} (${err.code ?? err.message}); set metrics.port, or metrics.enabled: false`, { cause: err }));
    server.once('error', fail);
    server.listen(options.port, options.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'metrics listener failed'));
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`;
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
