import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { clientInformation, createClient, metadataToClientInput, rotateClientSecret, usesSecret } from '../../admin/client-admin.js';
import type { Client } from '../../model.js';
import { GRANT_TYPES, TOKEN_ENDPOINT_AUTH_METHODS } from '../../model.js';
import { validateClientMetadata } from '../../protocol/client-metadata.js';
import type { Storage } from '../../storage/storage.js';
import type { GatehouseConfig } from '../../config/schema.js';
import { CliError, ageDays, collect, durationOption, isoTime, now, output, table, withStorage } from '../shared.js';

interface ClientOptions {
  name?: string;
  owner?: string;
  scope?: string;
  grantType?: string[];
  authMethod?: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  firstParty?: boolean;
  alwaysRefreshToken?: boolean;
  jwksFile?: string;
  jwksUri?: string;
  contact?: string[];
  accessTokenTtl?: number;
  json?: boolean;
}

function withMetadataOptions(command: Command): Command {
  return command
    .option('--name <name>', 'display name')
    .option('--owner <owner>', 'who answers for this client (team, person)')
    .option('--scope <scopes>', 'space-separated scopes the client may be granted')
    .option('--grant-type <type>', `grant type, repeatable (${GRANT_TYPES.join(', ')})`, collect)
    .option('--auth-method <method>', `token endpoint auth method (${TOKEN_ENDPOINT_AUTH_METHODS.join(', ')})`)
    .option('--redirect-uri <uri>', 'redirect URI, repeatable', collect)
    .option('--post-logout-redirect-uri <uri>', 'where users may be sent after signing out, repeatable', collect)
    .option('--first-party', 'an application of your own: users are not asked to consent')
    .option('--no-first-party', 'ask users to consent (the default)')
    .option('--always-refresh-token', 'a refresh token with every sign-in, even without offline_access (needs the refresh_token grant)')
    .option('--no-always-refresh-token', 'refresh tokens only with offline_access (the default)')
    .option('--jwks-file <file>', 'JWK Set file with the public keys for private_key_jwt')
    .option('--jwks-uri <uri>', 'https URL of the public keys for private_key_jwt')
    .option('--contact <email>', 'contact, repeatable', collect)
    .option('--access-token-ttl <duration>', 'access-token lifetime for this client (e.g. 5m)', durationOption)
    .option('--json', 'machine-readable output');
}

function readJwks(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new CliError(`cannot read a JSON JWK Set from ${file}`, 2);
  }
}

/** RFC 7591 metadata from the options, on top of an existing client's for updates. */
function metadataFrom(opts: ClientOptions, base?: Client): Record<string, unknown> {
  const m: Record<string, unknown> = base
    ? {
        client_name: base.clientName,
        owner: base.owner,
        scope: base.scope.join(' '),
        grant_types: base.grantTypes,
        token_endpoint_auth_method: base.tokenEndpointAuthMethod,
        token_endpoint_auth_signing_alg: base.tokenEndpointAuthSigningAlg,
        redirect_uris: base.redirectUris,
        post_logout_redirect_uris: base.postLogoutRedirectUris,
        first_party: base.firstParty,
        always_issue_refresh_token: base.alwaysIssueRefreshToken,
        id_token_signed_response_alg: base.idTokenSignedResponseAlg,
        jwks: base.jwks,
        jwks_uri: base.jwksUri,
        contacts: base.contacts,
        access_token_ttl: base.accessTokenTtl,
      }
    : { grant_types: ['client_credentials'] };
  if (opts.name !== undefined) m.client_name = opts.name;
  if (opts.owner !== undefined) m.owner = opts.owner;
  if (opts.scope !== undefined) m.scope = opts.scope.trim().replace(/\s+/g, ' ');
  if (opts.grantType !== undefined) m.grant_types = opts.grantType;
  if (opts.authMethod !== undefined) m.token_endpoint_auth_method = opts.authMethod;
  if (opts.redirectUri !== undefined) m.redirect_uris = opts.redirectUri;
  if (opts.postLogoutRedirectUri !== undefined) m.post_logout_redirect_uris = opts.postLogoutRedirectUri;
  if (opts.firstParty !== undefined) m.first_party = opts.firstParty;
  if (opts.alwaysRefreshToken !== undefined) m.always_issue_refresh_token = opts.alwaysRefreshToken;
  if (opts.jwksFile !== undefined) {
    m.jwks = readJwks(opts.jwksFile);
    m.jwks_uri = null;
  }
  if (opts.jwksUri !== undefined) {
    m.jwks_uri = opts.jwksUri;
    m.jwks = null;
  }
  if (opts.contact !== undefined) m.contacts = opts.contact;
  if (opts.accessTokenTtl !== undefined) m.access_token_ttl = opts.accessTokenTtl;
  return m;
}

function validate(metadata: Record<string, unknown>, config: GatehouseConfig) {
  const verdict = validateClientMetadata(metadata, {
    allowedGrantTypes: GRANT_TYPES,
    allowedAuthMethods: TOKEN_ENDPOINT_AUTH_METHODS,
    allowedScopes: null,
    administrative: true,
    idTokenSigningAlgs: [config.tokens.idTokenSigningAlg],
    maxAccessTokenTtl: config.tokens.maxAccessTokenTtl,
  });
  if (!verdict.ok) throw new CliError(`${verdict.error}: ${verdict.description}`, 2);
  return verdict.metadata;
}

function describe(client: Client, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...clientInformation(client),
    owner: client.owner,
    first_party: client.firstParty,
    always_issue_refresh_token: client.alwaysIssueRefreshToken,
    access_token_ttl: client.accessTokenTtl,
    disabled: client.disabled,
    dynamically_registered: client.dynamicallyRegistered,
    created_at: isoTime(client.createdAt),
    updated_at: isoTime(client.updatedAt),
    last_used_at: isoTime(client.lastUsedAt),
    ...extra,
  };
}

async function requireClient(storage: Storage, clientId: string): Promise<Client> {
  const client = await storage.clients.findClient(clientId);
  if (!client) throw new CliError(`no client ${clientId}`);
  return client;
}

export function registerClientCommands(program: Command): void {
  const clients = program.command('clients').description('manage OAuth clients');

  withMetadataOptions(clients.command('create').description('create a client; prints its secret once')).action(async (opts: ClientOptions, command: Command) => {
    await withStorage(command, async (storage, config) => {
      const metadata = validate(metadataFrom(opts), config);
      const created = await createClient(storage.clients, metadata, now(), { dynamicallyRegistered: false, registrationToken: false });
      const value = { ...describe(created.client), client_secret: created.clientSecret };
      output(opts.json, value);
      if (!opts.json && created.clientSecret !== undefined) {
        process.stderr.write('\nThe client secret is shown only this once; only its SHA-256 digest is stored.\n');
      }
    });
  });

  clients
    .command('list')
    .description('every client that can mint tokens: owner, scopes, secret age, last use')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const at = now();
        const list = await storage.clients.listClients(at);
        if (opts.json) {
          output(true, {
            clients: list.map((c) => describe(c, { secret_created_at: c.secretCreatedAt === null ? null : isoTime(c.secretCreatedAt), active_secrets: c.activeSecrets })),
          });
          return;
        }
        process.stdout.write(
          `${table(
            list.map((c) => ({
              client_id: c.clientId,
              name: c.clientName ?? '',
              owner: c.owner ?? '',
              grants: c.grantTypes.join(','),
              scope: c.scope.join(' '),
              auth: c.tokenEndpointAuthMethod,
              secret_age: ageDays(c.secretCreatedAt, at),
              last_used: c.lastUsedAt === null ? 'never' : isoTime(c.lastUsedAt),
              status: c.disabled ? 'disabled' : 'enabled',
            })),
          )}\n`,
        );
      });
    });

  clients
    .command('show <client_id>')
    .description('one client in full')
    .option('--json', 'machine-readable output')
    .action(async (clientId: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const client = await requireClient(storage, clientId);
        const summary = (await storage.clients.listClients(now())).find((c) => c.clientId === clientId);
        output(opts.json, describe(client, { secret_created_at: summary?.secretCreatedAt ? isoTime(summary.secretCreatedAt) : null, active_secrets: summary?.activeSecrets ?? 0 }));
      });
    });

  withMetadataOptions(clients.command('update <client_id>').description('change a client; unspecified settings stay')).action(
    async (clientId: string, opts: ClientOptions, command: Command) => {
      await withStorage(command, async (storage, config) => {
        const client = await requireClient(storage, clientId);
        const metadata = validate(metadataFrom(opts, client), config);
        const before = client.tokenEndpointAuthMethod;
        const after = metadata.token_endpoint_auth_method;
        if (before !== after && !(usesSecret(before) && usesSecret(after))) {
          throw new CliError(`token_endpoint_auth_method cannot change from ${before} to ${after}; create a new client`, 2);
        }
        await storage.clients.updateClient(metadataToClientInput(clientId, metadata, client.dynamicallyRegistered), now());
        output(opts.json, describe(await requireClient(storage, clientId)));
      });
    },
  );

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    clients
      .command(`${name} <client_id>`)
      .description(disabled ? 'stop the client from authenticating; its tokens stop introspecting as active' : 'allow a disabled client again')
      .option('--json', 'machine-readable output')
      .action(async (clientId: string, opts: { json?: boolean }, command: Command) => {
        await withStorage(command, async (storage) => {
          if (!(await storage.clients.setClientDisabled(clientId, disabled, now()))) throw new CliError(`no client ${clientId}`);
          output(opts.json, { client_id: clientId, disabled });
        });
      });
  }

  clients
    .command('delete <client_id>')
    .description('delete a client and its secrets')
    .option('--json', 'machine-readable output')
    .action(async (clientId: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        if (!(await storage.clients.deleteClient(clientId))) throw new CliError(`no client ${clientId}`);
        output(opts.json, { client_id: clientId, deleted: true });
      });
    });

  clients
    .command('rotate-secret <client_id>')
    .description('issue a new secret (printed once); old secrets stay valid for --overlap')
    .option('--overlap <duration>', 'how long the previous secret keeps working (e.g. 7d); default 0', durationOption, 0)
    .option('--json', 'machine-readable output')
    .action(async (clientId: string, opts: { overlap: number; json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const client = await requireClient(storage, clientId);
        if (!usesSecret(client.tokenEndpointAuthMethod)) throw new CliError(`client ${clientId} does not authenticate with a secret`, 2);
        const at = now();
        const secret = await rotateClientSecret(storage.clients, clientId, at, opts.overlap);
        if (secret === undefined) throw new CliError(`no client ${clientId}`);
        output(opts.json, { client_id: clientId, client_secret: secret, previous_secret_valid_until: opts.overlap > 0 ? isoTime(at + opts.overlap) : 'revoked now' });
      });
    });
}
