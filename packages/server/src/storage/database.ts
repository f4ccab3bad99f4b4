import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type SQLite from 'better-sqlite3';
import { CompiledQuery, Kysely, Migrator, PostgresAdapter, PostgresDialect, SqliteDialect, sql, type Migration, type MigrationProvider, type SqliteDatabase } from 'kysely';
import type pg from 'pg';
import * as foundation from './migrations/0001-foundation.js';
import * as generations from './migrations/0002-generations.js';
import * as users from './migrations/0003-users.js';
import * as authorization from './migrations/0004-authorization.js';
import * as device from './migrations/0005-device.js';
import * as rateLimits from './migrations/0006-rate-limits.js';
import type { Database } from './schema.js';
import { lazyModule } from '../lazy-module.js';

export type DialectName = 'sqlite' | 'postgres';

/**
 * Runs a read-only statement compiled by Kysely and returns its rows. On SQLite this is a second,
 * read-only connection: under WAL each statement reads a snapshot of committed data, never a
 * transaction in progress on the writing connection. On PostgreSQL it is Kysely's pool.
 */
export type ReadRows = (sqlText: string, parameters: readonly unknown[]) => Promise<unknown[]>;

/** Connection pool usage (PostgreSQL), as `pg.Pool` counts it. */
export interface PoolStats {
  /** Open connections, idle or checked out. */
  total: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
  /** The most connections the pool opens. */
  max: number;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  dialect: DialectName;
  readRows: ReadRows;
  /** A short description for logs (no credentials). */
  location: string;
  /** Pool usage now; PostgreSQL only (SQLite has no pool). */
  poolStats?: () => PoolStats;
  close(): Promise<void>;
}

// Each driver is loaded when a database of its kind is opened: a server on SQLite never holds
// the PostgreSQL driver in memory, nor one on PostgreSQL the SQLite one.
const loadPg = lazyModule<typeof pg>('pg', (driver) => {
  // PostgreSQL returns int8 as strings; every bigint here is a time in seconds, well inside 2^53.
  driver.types.setTypeParser(driver.types.builtins.INT8, (v: string) => Number(v));
});
const loadSqlite = lazyModule<typeof SQLite>('better-sqlite3');

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  sqliteFile: string;
  poolSize?: number;
}

export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  if (options.databaseUrl !== undefined) {
    const max = options.poolSize ?? 10;
    const pool = new (loadPg().Pool)({
      connectionString: options.databaseUrl,
      max,
      connectionTimeoutMillis: 5_000,
      // Short statements only: nothing on the token path should ever take this long.
      statement_timeout: 10_000,
      idle_in_transaction_session_timeout: 10_000,
    });
    // A client losing its connection must not crash the process, idle (pool 'error') or checked
    // out between queries (client 'error', which has no other listener); the query that needed
    // it reports the failure, which becomes 503 temporarily_unavailable.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const url = new URL(options.databaseUrl);
    const readRows: ReadRows = async (sqlText, parameters) => (await db.executeQuery(CompiledQuery.raw(sqlText, [...parameters]))).rows;
    const poolStats = (): PoolStats => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max });
    return { db, dialect: 'postgres', readRows, location: `postgres://${url.host}${url.pathname}`, poolStats, close: () => db.destroy() };
  }
  // The data directory also holds the generated key-encryption key: owner only.
  mkdirSync(dirname(options.sqliteFile), { recursive: true, mode: 0o700 });
  const SQLiteDatabase = loadSqlite();
  const sqlite = new SQLiteDatabase(options.sqliteFile);
  // Digests and encrypted keys only, but still nobody else's business.
  chmodSync(options.sqliteFile, 0o600);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a committed grant survives a power loss, not only a process crash.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  // Hot-path reads bypass Kysely's single-connection mutex on a connection of their own.
  let reader: SqliteDatabase | undefined;
  const readRows: ReadRows = async (sqlText, parameters) => {
    reader ??= withStatementCache(openReader(options.sqliteFile));
    return reader.prepare(sqlText).all(parameters);
  };
  const close = async () => {
    reader?.close();
    await db.destroy();
  };
  return { db, dialect: 'sqlite', readRows, location: options.sqliteFile, close };
}

function openReader(file: string): SQLite.Database {
  const reader = new (loadSqlite())(file, { readonly: true, fileMustExist: true });
  reader.pragma('busy_timeout = 5000');
  return reader;
}

/**
 * Kysely's SQLite driver prepares every statement it runs; preparing costs more than running
 * the indexed lookups on the token path. Statements are reusable, so keep them, bounded (queries
 * are parameterised, so the set of distinct SQL strings is small).
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    prepare(sqlText: string) {
      let stmt = cache.get(sqlText);
      if (stmt === undefined) {
        stmt = sqlite.prepare(sqlText);
        if (cache.size >= 500) cache.clear();
        cache.set(sqlText, stmt);
      }
      return stmt;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  };
}

const MIGRATIONS: Record<string, Migration> = {
  '0001-foundation': foundation,
  '0002-generations': generations,
  '0003-users': users,
  '0004-authorization': authorization,
  '0005-device': device,
  '0006-rate-limits': rateLimits,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

export interface MigrationReport {
  applied: string[];
}

/**
 * On PostgreSQL the migration tables live in the connection's current schema (its search_path):
 * left unset, Kysely finds them in any schema of the database and skips creating its own.
 */
async function migrator(db: Kysely<Database>): Promise<Migrator> {
  let migrationTableSchema: string | undefined;
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
    migrationTableSchema = rows[0]?.schema;
  }
  return new Migrator({
    db,
    provider,
    migrationTableName: 'gatehouse_migrations',
    migrationLockTableName: 'gatehouse_migrations_lock',
    ...(migrationTableSchema === undefined ? {} : { migrationTableSchema }),
  });
}

/** Applies every pending migration, in order, each in its own transaction. */
export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationReport> {
  const { error, results } = await (await migrator(db)).migrateToLatest();
  if (error !== undefined) throw error instanceof Error ? error : new Error('migration failed', { cause: error });
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

export async function pendingMigrations(db: Kysely<Database>): Promise<string[]> {
  const all = await (await migrator(db)).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}

// 08: connection; 53: resources; 57P01-03: shutdown; 40001/40P01: serialization failure and
// deadlock — retryable, so the client is told to retry (503), not that the server broke (500).
const UNAVAILABLE_PG_CODES = /^(08|53|57P0[1-3]|40001|40P01)/;
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);
const UNAVAILABLE_SQLITE = /^SQLITE_(BUSY|LOCKED|IOERR|CANTOPEN|FULL|READONLY|PROTOCOL|NOMEM)/;

/** True when an error means "storage cannot answer now", as opposed to a bug. */
export function isStorageUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_NODE_CODES.has(code) || UNAVAILABLE_PG_CODES.test(code) || UNAVAILABLE_SQLITE.test(code))) {
      return true;
    }
    if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|driver has already been destroyed|Cannot use a pool after calling end/i.test(e.message)) {
      return true;
    }
    if (e.name === 'AggregateError' && Array.isArray((e as AggregateError).errors)) {
      return (e as AggregateError).errors.some(isStorageUnavailable);
    }
  }
  return false;
}
