import type { Kysely } from 'kysely';

/**
 * The device authorization grant (RFC 8628): one row per device authorization request.
 *
 * The device code is stored as its SHA-256 digest (it is a 256-bit secret); the user code as two
 * keyed digests (HMAC with a sub-key of the server secret; a user code has only ~35 bits): of its
 * first half (`selector_hash`: a wrong code that shares it counts against the request) and of
 * the whole (`user_code_hash`, unique among pending requests). Both are cleared once the request
 * is decided or locked. What the user approved (who, which grant, how they signed in) is filled
 * in on approval; the token family the device then receives names the grant, so revoking the
 * grant ends the device's tokens.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_codes')
    .addColumn('device_code_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('selector_hash', 'varchar(64)')
    .addColumn('user_code_hash', 'varchar(64)', (c) => c.unique())
    .addColumn('client_id', 'varchar(128)', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('resources', 'text', (c) => c.notNull())
    // pending | approved | denied | locked | consumed
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('failed_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('poll_interval', 'integer', (c) => c.notNull())
    .addColumn('last_polled_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('decided_at', 'bigint')
    .addColumn('user_id', 'varchar(32)', (c) => c.references('users.user_id').onDelete('cascade'))
    .addColumn('grant_id', 'varchar(64)', (c) => c.references('grants.grant_id').onDelete('cascade'))
    .addColumn('sid', 'varchar(64)')
    .addColumn('auth_time', 'bigint')
    .addColumn('acr', 'text')
    .addColumn('amr', 'text')
    .execute();
  await db.schema.createIndex('device_codes_selector').on('device_codes').column('selector_hash').execute();
  await db.schema.createIndex('device_codes_expires').on('device_codes').column('expires_at').execute();
  await db.schema.createIndex('device_codes_grant').on('device_codes').column('grant_id').execute();
  await db.schema.createIndex('device_codes_client').on('device_codes').column('client_id').execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported; restore a backup instead');
}
