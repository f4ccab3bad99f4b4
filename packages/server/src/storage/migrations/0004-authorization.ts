import type { Kysely } from 'kysely';

/**
 * Delegated authorization: pending interactions, durable grants (consent), single-use codes,
 * token families (one per code redemption; access tokens name theirs) and rotating refresh tokens.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('interactions')
    .addColumn('interaction_id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('binding_hash', 'varchar(64)', (c) => c.notNull())
    .addColumn('request', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('interactions_expires').on('interactions').column('expires_at').execute();

  await db.schema
    .createTable('grants')
    .addColumn('grant_id', 'varchar(64)', (c) => c.primaryKey())
    // Deleting a user or a client deletes their grants, and with them everything issued.
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull().references('users.user_id').onDelete('cascade'))
    .addColumn('client_id', 'varchar(128)', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('resources', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addUniqueConstraint('grants_user_client', ['user_id', 'client_id'])
    .execute();
  await db.schema.createIndex('grants_client').on('grants').column('client_id').execute();

  await db.schema
    .createTable('authorization_codes')
    .addColumn('code_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('client_id', 'varchar(128)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('grant_id', 'varchar(64)', (c) => c.notNull().references('grants.grant_id').onDelete('cascade'))
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('redirect_uri_sent', 'integer', (c) => c.notNull())
    .addColumn('code_challenge', 'varchar(128)', (c) => c.notNull())
    .addColumn('nonce', 'text')
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('resources', 'text', (c) => c.notNull())
    .addColumn('sid', 'varchar(64)')
    .addColumn('auth_time', 'bigint', (c) => c.notNull())
    .addColumn('acr', 'text')
    .addColumn('amr', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .addColumn('family_id', 'varchar(64)')
    .addColumn('access_token_jti', 'varchar(64)')
    .addColumn('access_token_expires_at', 'bigint')
    .execute();
  await db.schema.createIndex('authorization_codes_expires').on('authorization_codes').column('expires_at').execute();
  await db.schema.createIndex('authorization_codes_grant').on('authorization_codes').column('grant_id').execute();

  await db.schema
    .createTable('token_families')
    .addColumn('family_id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('grant_id', 'varchar(64)', (c) => c.notNull().references('grants.grant_id').onDelete('cascade'))
    .addColumn('client_id', 'varchar(128)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('token_families_grant').on('token_families').column('grant_id').execute();
  await db.schema.createIndex('token_families_expires').on('token_families').column('expires_at').execute();

  await db.schema
    .createTable('refresh_tokens')
    .addColumn('token_hash', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('family_id', 'varchar(64)', (c) => c.notNull().references('token_families.family_id').onDelete('cascade'))
    .addColumn('client_id', 'varchar(128)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('grant_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('resources', 'text', (c) => c.notNull())
    .addColumn('sid', 'varchar(64)')
    .addColumn('auth_time', 'bigint', (c) => c.notNull())
    .addColumn('acr', 'text')
    .addColumn('amr', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('idle_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('rotated_at', 'bigint')
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('refresh_tokens_family').on('refresh_tokens').column('family_id').execute();
  // Clients of the code flow: consent-free first-party apps, and RP-initiated logout targets.
  await db.schema.alterTable('clients').addColumn('first_party', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('clients').addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull().defaultTo('[]')).execute();
  // RFC 7591 §2 token_endpoint_auth_signing_alg: the one algorithm the client's assertions use.
  await db.schema.alterTable('clients').addColumn('token_endpoint_auth_signing_alg', 'varchar(16)').execute();
  // OIDC Dynamic Registration §2 id_token_signed_response_alg, and whether the client always gets
  // a refresh token (without offline_access).
  await db.schema.alterTable('clients').addColumn('id_token_signed_response_alg', 'varchar(16)').execute();
  await db.schema.alterTable('clients').addColumn('always_issue_refresh_token', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  // Opaque access tokens issued for a user name their family, so revoking it ends them too.
  await db.schema.alterTable('opaque_access_tokens').addColumn('family_id', 'varchar(64)').execute();
  await db.schema.createIndex('refresh_tokens_expires').on('refresh_tokens').column('expires_at').execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported; restore a backup instead');
}
