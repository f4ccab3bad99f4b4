import type { JSONWebKeySet } from 'jose';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Client, ClientInput, ClientSummary, TokenEndpointAuthMethod } from '../../model.js';
import { parseJsonList, splitScope } from '../json.js';
import { PreparedRead } from '../prepared-query.js';
import { bumpGeneration, ChangeListeners } from '../changes.js';
import type { ReadRows } from '../database.js';
import type { ClientTable, Database } from '../schema.js';
import { recordLastUse } from './last-use.js';

function toClient(row: Selectable<ClientTable>): Client {
  return {
    clientId: row.client_id,
    clientName: row.client_name,
    owner: row.owner,
    grantTypes: parseJsonList(row.grant_types),
    redirectUris: parseJsonList(row.redirect_uris),
    postLogoutRedirectUris: parseJsonList(row.post_logout_redirect_uris),
    firstParty: row.first_party === 1,
    alwaysIssueRefreshToken: row.always_issue_refresh_token === 1,
    idTokenSignedResponseAlg: row.id_token_signed_response_alg,
    scope: splitScope(row.scope),
    tokenEndpointAuthMethod: row.token_endpoint_auth_method as TokenEndpointAuthMethod,
    tokenEndpointAuthSigningAlg: row.token_endpoint_auth_signing_alg,
    jwks: row.jwks === null ? null : (JSON.parse(row.jwks) as JSONWebKeySet),
    jwksUri: row.jwks_uri,
    contacts: parseJsonList(row.contacts),
    accessTokenTtl: row.access_token_ttl,
    disabled: row.disabled === 1,
    dynamicallyRegistered: row.dynamically_registered === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastUsedAt: row.last_used_at,
  };
}

function toRow(input: ClientInput): Omit<ClientTable, 'created_at' | 'updated_at' | 'last_used_at' | 'registration_token_hash'> {
  return {
    client_id: input.clientId,
    client_name: input.clientName,
    owner: input.owner,
    grant_types: JSON.stringify(input.grantTypes),
    redirect_uris: JSON.stringify(input.redirectUris),
    post_logout_redirect_uris: JSON.stringify(input.postLogoutRedirectUris),
    first_party: input.firstParty ? 1 : 0,
    always_issue_refresh_token: input.alwaysIssueRefreshToken ? 1 : 0,
    id_token_signed_response_alg: input.idTokenSignedResponseAlg,
    scope: input.scope.join(' '),
    token_endpoint_auth_method: input.tokenEndpointAuthMethod,
    token_endpoint_auth_signing_alg: input.tokenEndpointAuthSigningAlg,
    jwks: input.jwks === null ? null : JSON.stringify(input.jwks),
    jwks_uri: input.jwksUri,
    contacts: JSON.stringify(input.contacts),
    access_token_ttl: input.accessTokenTtl,
    disabled: input.disabled ? 1 : 0,
    dynamically_registered: input.dynamicallyRegistered ? 1 : 0,
  };
}

/** The initial access token expired or was used up between validation and registration. */
export class InitialAccessTokenRejectedError extends Error {
  constructor() {
    super('initial access token is no longer valid');
    this.name = 'InitialAccessTokenRejectedError';
  }
}

export interface ClientWithSecrets {
  client: Client;
  /** SHA-256 digests (base64url) of every secret valid now. */
  secretHashes: string[];
}

/** A client and all its secret digests with their ends (null: current), as cached in memory. */
export interface ClientCredentials {
  client: Client;
  secrets: { hash: string; expiresAt: number | null }[];
}

/** The digests of the secrets still valid at `now`. */
export function validSecretHashes(credentials: ClientCredentials, now: number): string[] {
  const out: string[] = [];
  for (const s of credentials.secrets) if (s.expiresAt === null || s.expiresAt > now) out.push(s.hash);
  return out;
}

/** Clients and their secrets. Secrets are only ever handled as SHA-256 digests. */
export class ClientRepository {
  readonly #credentials: PreparedRead<[string], Selectable<ClientTable> & { secret_hash: string | null; secret_expires_at: number | null }>;
  readonly #changes = new ChangeListeners();

  constructor(
    private readonly db: Kysely<Database>,
    readRows: ReadRows,
  ) {
    this.#credentials = new PreparedRead(
      readRows,
      (clientId: string) =>
        db
          .selectFrom('clients')
          .leftJoin('client_secrets', 'client_secrets.client_id', 'clients.client_id')
          .selectAll('clients')
          .select(['client_secrets.secret_hash', 'client_secrets.expires_at as secret_expires_at'])
          .where('clients.client_id', '=', clientId),
      ['\u0000client_id'],
    );
  }

  /** Called after every committed change to a client or its secrets through this repository. */
  onChange(listener: () => void): void {
    this.#changes.add(listener);
  }

  /** The client and every secret digest with its end, in one round trip (the token endpoint's lookup). */
  async loadClientCredentials(clientId: string): Promise<ClientCredentials | undefined> {
    const rows = await this.#credentials.execute(clientId);
    const first = rows[0];
    if (first === undefined) return undefined;
    const secrets: ClientCredentials['secrets'] = [];
    for (const r of rows) if (r.secret_hash !== null) secrets.push({ hash: r.secret_hash, expiresAt: r.secret_expires_at });
    return { client: toClient(first), secrets };
  }

  async findClient(clientId: string): Promise<Client | undefined> {
    return (await this.loadClientCredentials(clientId))?.client;
  }

  /** The client and its secret digests valid at `now`. */
  async findClientForAuthentication(clientId: string, now: number): Promise<ClientWithSecrets | undefined> {
    const credentials = await this.loadClientCredentials(clientId);
    return credentials && { client: credentials.client, secretHashes: validSecretHashes(credentials, now) };
  }

  /**
   * Replaces a client's registration access token digest if it is still `currentHash`; false
   * when another request rotated it first.
   */
  async rotateRegistrationToken(clientId: string, currentHash: string, nextHash: string): Promise<boolean> {
    const result = await this.db
      .updateTable('clients')
      .set({ registration_token_hash: nextHash })
      .where('client_id', '=', clientId)
      .where('registration_token_hash', '=', currentHash)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async findClientByRegistrationToken(tokenHash: string): Promise<Client | undefined> {
    const row = await this.db.selectFrom('clients').selectAll().where('registration_token_hash', '=', tokenHash).executeTakeFirst();
    return row && toClient(row);
  }

  /**
   * Creates a client with its first secret digest and registration token digest, atomically.
   * With `initialAccessTokenHash`, one use of that initial access token is counted in the same
   * transaction, and nothing is created when the token is no longer valid.
   */
  async createClient(
    input: ClientInput,
    now: number,
    secrets: { secretHash: string | null; registrationTokenHash?: string | null; initialAccessTokenHash?: string },
  ): Promise<Client> {
    await this.db.transaction().execute(async (trx) => {
      if (secrets.initialAccessTokenHash !== undefined) {
        const used = await trx
          .updateTable('initial_access_tokens')
          .set((eb) => ({ uses: eb('uses', '+', 1) }))
          .where('token_hash', '=', secrets.initialAccessTokenHash)
          .where('expires_at', '>', now)
          .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
          .executeTakeFirst();
        if (used.numUpdatedRows === 0n) throw new InitialAccessTokenRejectedError();
      }
      await trx
        .insertInto('clients')
        .values({ ...toRow(input), created_at: now, updated_at: now, last_used_at: null, registration_token_hash: secrets.registrationTokenHash ?? null })
        .execute();
      if (secrets.secretHash !== null) {
        await trx.insertInto('client_secrets').values({ client_id: input.clientId, secret_hash: secrets.secretHash, created_at: now, expires_at: null }).execute();
      }
      await bumpGeneration(trx, 'clients');
    });
    this.#changes.notify();
    const created = await this.findClient(input.clientId);
    if (!created) throw new Error('client vanished after creation');
    return created;
  }

  /** Replaces a client's metadata; returns false when the client does not exist. */
  async updateClient(input: ClientInput, now: number): Promise<boolean> {
    const { client_id: _id, disabled: _d, dynamically_registered: _r, ...values } = toRow(input);
    return this.#change(async (trx) => {
      const result = await trx
        .updateTable('clients')
        .set({ ...values, updated_at: now })
        .where('client_id', '=', input.clientId)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  /** A write to clients or secrets: one transaction that also bumps the generation, then listeners. */
  async #change<T>(write: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    const result = await this.db.transaction().execute(async (trx) => {
      const value = await write(trx);
      await bumpGeneration(trx, 'clients');
      return value;
    });
    this.#changes.notify();
    return result;
  }

  async setClientDisabled(clientId: string, disabled: boolean, now: number): Promise<boolean> {
    return this.#change(async (trx) => {
      const result = await trx
        .updateTable('clients')
        .set({ disabled: disabled ? 1 : 0, updated_at: now })
        .where('client_id', '=', clientId)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  async deleteClient(clientId: string): Promise<boolean> {
    return this.#change(async (trx) => {
      await trx.deleteFrom('client_secrets').where('client_id', '=', clientId).execute();
      const result = await trx.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }

  /**
   * Adds a new secret. Secrets that were current get `expires_at = now + overlap` (0 ends them at
   * once); secrets already past their end are deleted. One transaction.
   */
  async rotateClientSecret(clientId: string, secretHash: string, now: number, overlapSeconds: number): Promise<boolean> {
    return this.#change(async (trx) => {
      const exists = await trx.selectFrom('clients').select('client_id').where('client_id', '=', clientId).executeTakeFirst();
      if (!exists) return false;
      await trx.deleteFrom('client_secrets').where('client_id', '=', clientId).where('expires_at', '<=', now).execute();
      const end = now + overlapSeconds;
      await trx
        .updateTable('client_secrets')
        .set({ expires_at: end })
        .where('client_id', '=', clientId)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', end)]))
        .execute();
      if (overlapSeconds === 0) await trx.deleteFrom('client_secrets').where('client_id', '=', clientId).execute();
      await trx.insertInto('client_secrets').values({ client_id: clientId, secret_hash: secretHash, created_at: now, expires_at: null }).execute();
      await trx.updateTable('clients').set({ updated_at: now }).where('client_id', '=', clientId).execute();
      return true;
    });
  }

  /** Governance: when these clients last obtained a token (see recordLastUse). */
  async recordClientsUse(clientIds: readonly string[], now: number): Promise<void> {
    await recordLastUse(this.db, 'clients', 'client_id', clientIds, now);
  }

  async listClients(now: number): Promise<ClientSummary[]> {
    const rows = await this.db.selectFrom('clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
    const secrets = await this.db
      .selectFrom('client_secrets')
      .select(['client_id', 'created_at'])
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .execute();
    return rows.map((row) => {
      const own = secrets.filter((s) => s.client_id === row.client_id);
      return {
        ...toClient(row),
        secretCreatedAt: own.length === 0 ? null : Math.max(...own.map((s) => s.created_at)),
        activeSecrets: own.length,
      };
    });
  }
}
