import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createPostgresSchema, TEST_DATABASE_URL, type PostgresSchema } from './postgres.js';
import { freePort } from './server.js';
import { cleanEnv, collectChild, type ChildResult } from './processes.js';

/**
 * Real `gatehouse start` processes for the fault and multi-instance suites: each one the built
 * CLI (`node packages/server/bin/gatehouse.js start`) on a port of its own, all sharing one
 * database (a fresh PostgreSQL schema, or one SQLite data directory) and one key-encryption key
 * (`GATEHOUSE_SECRET`), behind one issuer as they would be behind a load balancer. Every process
 * is known by its PID: `kill()` sends SIGTERM or SIGKILL to that PID, `start()` starts it again on
 * the same port, and `stopAllGatehouseProcesses()` (call it in afterAll) kills whatever is left.
 * Build first: `npm run build -w @gatehouse/server` (`npm test` does).
 */

export const GATEHOUSE_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/gatehouse.js');
const BUILT_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');

/** How long a start may take (migrations, key generation) before it counts as failed. */
const START_TIMEOUT_MS = 20_000;
/** How long a CLI command may run. */
const COMMAND_TIMEOUT_MS = 20_000;

/** Every child process started by this module and not yet seen exiting, by PID. */
const live = new Map<number, ChildProcess>();

function track(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  live.set(pid, child);
  child.once('exit', () => live.delete(pid));
}

function isRunning(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGKILLs, by PID, every process this module started that is still running. For afterAll. */
export function stopAllGatehouseProcesses(): void {
  for (const [pid, child] of [...live]) {
    if (isRunning(child)) killPid(pid, 'SIGKILL');
    live.delete(pid);
  }
}

// Should a suite die before its afterAll (a worker killed on timeout), take the children along.
process.once('exit', stopAllGatehouseProcesses);

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from the signal (or from the call, when none was sent) to the exit. */
  ms: number;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** One `gatehouse start` process on a fixed port; start it again after it exits, on that port. */
export class GatehouseInstance {
  readonly url: string;
  #child: ChildProcess | undefined;
  #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  #output = '';
  /** How many times this instance was started. */
  starts = 0;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly args: string[],
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return isRunning(this.#child) ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    return isRunning(this.#child);
  }

  /** stdout and stderr of the current (or last) run. */
  output(): string {
    return this.#output;
  }

  /** Starts `gatehouse start` and resolves once the banner is printed and /readyz answers 200. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running (pid ${String(this.pid)})`);
    const child = spawn(process.execPath, [GATEHOUSE_BIN, ...this.args, 'start'], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    this.#child = child;
    this.#output = '';
    this.starts += 1;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.#output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#output += chunk));
    this.#exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      for (;;) {
        if (!isRunning(child)) throw new Error(`exited while starting (status ${String(child.exitCode)}, signal ${String(child.signalCode)})`);
        if (this.#output.includes('Gatehouse is running.')) {
          const ready = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
            (r) => r.status === 200,
            () => false,
          );
          if (ready) return;
        }
        if (Date.now() > deadline) throw new Error(`not ready after ${START_TIMEOUT_MS} ms`);
        await sleep(50);
      }
    } catch (err) {
      if (child.pid !== undefined) killPid(child.pid, 'SIGKILL');
      throw new Error(`${this.name} on port ${this.port}: ${(err as Error).message}\n${this.#output}`);
    }
  }

  /** Sends `signal` to the process, by PID (no waiting). */
  signal(signal: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.name} is not running`);
    killPid(pid, signal);
  }

  /**
   * Waits for the current process to exit, at most `timeoutMs`; `undefined` if it is still
   * running then. `since` is when the clock for `ms` started (default: now).
   */
  async waitForExit(timeoutMs: number, since = Date.now()): Promise<ExitStatus | undefined> {
    const exited = this.#exited;
    if (exited === undefined) throw new Error(`${this.name} was never started`);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([exited, new Promise<undefined>((done) => (timer = setTimeout(() => done(undefined), timeoutMs)))]);
    clearTimeout(timer);
    return result === undefined ? undefined : { ...result, ms: Date.now() - since };
  }

  /**
   * Sends `signal` by PID and waits for the exit. A process still running after `timeoutMs` is
   * SIGKILLed and the call fails, so a shutdown that hangs is reported, never waited for.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<ExitStatus> {
    const since = Date.now();
    this.signal(signal);
    const status = await this.waitForExit(timeoutMs, since);
    if (status !== undefined) return status;
    const pid = this.#child?.pid;
    if (pid !== undefined) killPid(pid, 'SIGKILL');
    await this.waitForExit(5000);
    throw new Error(`${this.name} did not exit within ${timeoutMs} ms of ${signal}\n${this.#output}`);
  }
}

export interface GatehouseClusterOptions {
  /** Number of instances (default 3). */
  size?: number;
  /** `postgres` (a fresh schema of TEST_DATABASE_URL, the default) or `sqlite` (one data directory). */
  dialect?: 'postgres' | 'sqlite';
  /** The configuration file's contents (merged over the defaults below). */
  config?: Record<string, unknown>;
}

export interface GatehouseCluster {
  /** The issuer every instance shares (nothing listens there: tests talk to the instances directly). */
  readonly issuer: string;
  readonly instances: GatehouseInstance[];
  /** The database URL the instances use (with its own schema); undefined on SQLite. */
  readonly databaseUrl: string | undefined;
  /** The `application_name` each instance's PostgreSQL connections carry. */
  applicationName(instance: GatehouseInstance): string;
  /** The shared data directory (the SQLite file on SQLite). */
  readonly dataDir: string;
  /** `gatehouse ARGS` against the shared database and configuration; `input` goes to standard input. */
  cli(args: string[], input?: string): Promise<ChildResult>;
  /** `gatehouse ARGS --json`, which must succeed; its parsed output. */
  cliJson<T = Record<string, unknown>>(args: string[], input?: string): Promise<T>;
  /** Starts every instance that is not running, concurrently. */
  startAll(): Promise<void>;
  /** SIGKILLs every process by PID, drops the schema, deletes the data directory. */
  close(): Promise<void>;
}

/** The defaults of every cluster: one address sends all the load, keys are re-read every second. */
const DEFAULT_CONFIG = {
  rateLimits: { enabled: false },
  // keys.refreshInterval must not exceed keys.prePublication (config/schema.ts).
  keys: { refreshInterval: '1s', prePublication: '60s' },
};

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key];
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    out[key] = isObject(prior) && isObject(value) ? merge(prior, value) : value;
  }
  return out;
}

/**
 * Starts `size` instances sharing one database and one issuer; resolves when every one answers
 * /readyz. On failure everything started so far is stopped again.
 */
export async function startGatehouseCluster(options: GatehouseClusterOptions = {}): Promise<GatehouseCluster> {
  if (!existsSync(BUILT_MAIN)) {
    throw new Error(`${BUILT_MAIN} does not exist: build the server first with \`npm run build -w @gatehouse/server\` (\`npm test\` does this before vitest)`);
  }
  const size = options.size ?? 3;
  const dialect = options.dialect ?? 'postgres';
  if (dialect === 'postgres' && TEST_DATABASE_URL === undefined) throw new Error('TEST_DATABASE_URL is not set');
  const work = mkdtempSync(join(tmpdir(), 'gatehouse-cluster-'));
  const dataDir = join(work, 'data');
  const configPath = join(work, 'gatehouse.json');
  writeFileSync(configPath, JSON.stringify(merge(DEFAULT_CONFIG, options.config ?? {})));
  let schema: PostgresSchema | undefined;
  const instances: GatehouseInstance[] = [];
  const close = async () => {
    stopAllOf(instances);
    await Promise.all(instances.map((i) => (i.running ? i.waitForExit(5000) : undefined)));
    await schema?.drop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    if (dialect === 'postgres') schema = await createPostgresSchema();
    // Behind a load balancer every instance has the same issuer; nothing listens on its port.
    const issuer = `http://127.0.0.1:${await freePort()}`;
    // One key-encryption key for all: each instance decrypts the signing keys the others made.
    const secret = randomBytes(32).toString('base64url');
    const ports: number[] = [];
    while (ports.length < size) {
      const port = await freePort();
      if (!ports.includes(port) && port !== Number(new URL(issuer).port)) ports.push(port);
    }
    const applicationName = (name: string) => `gatehouse-${name}-${new URL(issuer).port}`;
    const databaseUrlFor = (name: string | undefined): string | undefined => {
      if (schema === undefined) return undefined;
      const url = new URL(schema.url);
      if (name !== undefined) url.searchParams.set('application_name', applicationName(name));
      return url.toString();
    };
    const envFor = (name: string | undefined, port: number | undefined) => (): NodeJS.ProcessEnv => {
      const databaseUrl = databaseUrlFor(name);
      return {
        ...cleanEnv(),
        GATEHOUSE_DATA_DIR: dataDir,
        GATEHOUSE_ISSUER: issuer,
        GATEHOUSE_SECRET: secret,
        GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_TEST_LOGS ? 'info' : 'warn',
        GATEHOUSE_METRICS_PORT: '0',
        ...(port === undefined ? {} : { GATEHOUSE_PORT: String(port) }),
        ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }),
      };
    };
    ports.forEach((port, index) => {
      const name = `instance-${index}`;
      instances.push(new GatehouseInstance(name, port, envFor(name, port), ['--config', configPath]));
    });
    const cliEnv = envFor('cli', undefined);

    const cli = async (args: string[], input?: string): Promise<ChildResult> => {
      const child = spawn(process.execPath, [GATEHOUSE_BIN, '--config', configPath, ...args], { env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
      track(child);
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? '');
      return collectChild(child, COMMAND_TIMEOUT_MS, () => child.pid !== undefined && killPid(child.pid, 'SIGKILL'));
    };

    const cluster: GatehouseCluster = {
      issuer,
      instances,
      databaseUrl: databaseUrlFor(undefined),
      applicationName: (instance) => applicationName(instance.name),
      dataDir,
      cli,
      async cliJson<T>(args: string[], input?: string): Promise<T> {
        const result = await cli([...args, '--json'], input);
        if (result.status !== 0) throw new Error(`gatehouse ${args.join(' ')} → status ${String(result.status)}\n${result.stderr}`);
        return JSON.parse(result.stdout) as T;
      },
      async startAll() {
        await Promise.all(instances.filter((i) => !i.running).map((i) => i.start()));
      },
      close,
    };
    // All at once on the empty database, as a fresh deployment does: each one migrates and
    // makes sure signing keys exist, and they must agree on one schema and one key set.
    await cluster.startAll();
    return cluster;
  } catch (err) {
    await close();
    throw err;
  }
}

function stopAllOf(instances: GatehouseInstance[]): void {
  for (const instance of instances) {
    const pid = instance.pid;
    if (pid !== undefined) killPid(pid, 'SIGKILL');
  }
}

/** PostgreSQL connections open under `applicationName` (any schema), counted by the server. */
export async function countConnections(applicationName: string): Promise<number> {
  if (TEST_DATABASE_URL === undefined) throw new Error('TEST_DATABASE_URL is not set');
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    const result = await client.query<{ n: string }>('select count(*) as n from pg_stat_activity where application_name = $1', [applicationName]);
    return Number(result.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}
