import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Set by CI (and .ci/run); without it the PostgreSQL suites are skipped, and the run says so. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

export interface PostgresSchema {
  /** A connection URL whose search_path is a fresh, empty schema. */
  url: string;
  drop(): Promise<void>;
}

/** A throwaway schema per test file, so suites never see each other's rows. */
export async function createPostgresSchema(): Promise<PostgresSchema> {
  if (TEST_DATABASE_URL === undefined) throw new Error('TEST_DATABASE_URL is not set');
  const schema = `gh_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}
