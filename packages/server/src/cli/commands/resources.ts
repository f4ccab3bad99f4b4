import type { Command } from 'commander';
import type { AccessTokenFormat, Resource } from '../../model.js';
import { isValidResourceIndicator } from '../../protocol/resource-indicator.js';
import { isValidScopeToken } from '../../protocol/scope.js';
import { ScopeConflictError } from '../../storage/repositories/resource-repository.js';
import { CliError, collect, durationOption, isoTime, now, output, table, withStorage } from '../shared.js';

function describe(resource: Resource): Record<string, unknown> {
  return {
    identifier: resource.identifier,
    name: resource.name,
    scopes: resource.scopes,
    access_token_format: resource.accessTokenFormat,
    access_token_ttl: resource.accessTokenTtl,
    client_id: resource.clientId,
    created_at: isoTime(resource.createdAt),
  };
}

interface CreateOptions {
  identifier: string;
  name: string;
  scope?: string[];
  describe?: string[];
  format: string;
  accessTokenTtl?: number;
  client?: string;
  json?: boolean;
}

export function registerResourceCommands(program: Command): void {
  const resources = program.command('resources').description('manage resources (APIs): audiences and the scopes they define');

  resources
    .command('create')
    .description('define an API: its identifier (the token audience) and its scopes')
    .requiredOption('--identifier <uri>', 'absolute URI used as the aud of its tokens (RFC 8707)')
    .requiredOption('--name <name>', 'display name')
    .option('--scope <name>', 'a scope the resource defines, repeatable (space-separated also works)', collect)
    .option('--describe <scope=text>', 'a scope description, repeatable', collect)
    .option('--format <format>', 'access token format: jwt or opaque', 'jwt')
    .option('--access-token-ttl <duration>', 'access-token lifetime for this resource (e.g. 5m)', durationOption)
    .option('--client <client_id>', 'the client that represents this API (may introspect its tokens)')
    .option('--json', 'machine-readable output')
    .action(async (opts: CreateOptions, command: Command) => {
      if (!isValidResourceIndicator(opts.identifier)) throw new CliError('--identifier must be an absolute URI without a fragment', 2);
      if (opts.format !== 'jwt' && opts.format !== 'opaque') throw new CliError('--format must be jwt or opaque', 2);
      const names = [...new Set((opts.scope ?? []).flatMap((s) => s.split(/\s+/)).filter((s) => s !== ''))];
      for (const name of names) if (!isValidScopeToken(name)) throw new CliError(`not a valid scope name: ${name}`, 2);
      const descriptions = new Map<string, string>();
      for (const entry of opts.describe ?? []) {
        const eq = entry.indexOf('=');
        if (eq <= 0) throw new CliError(`--describe takes scope=text, got: ${entry}`, 2);
        descriptions.set(entry.slice(0, eq), entry.slice(eq + 1));
      }
      await withStorage(command, async (storage, config) => {
        if (opts.accessTokenTtl !== undefined && (opts.accessTokenTtl < 1 || opts.accessTokenTtl > config.tokens.maxAccessTokenTtl)) {
          throw new CliError(`--access-token-ttl must be between 1s and tokens.maxAccessTokenTtl (${config.tokens.maxAccessTokenTtl}s)`, 2);
        }
        if (await storage.resources.findResource(opts.identifier)) throw new CliError(`resource ${opts.identifier} already exists`);
        try {
          const created = await storage.resources.createResource(
            {
              identifier: opts.identifier,
              name: opts.name,
              scopes: names.map((name) => ({ name, description: descriptions.get(name) ?? null })),
              accessTokenFormat: opts.format as AccessTokenFormat,
              accessTokenTtl: opts.accessTokenTtl ?? null,
              clientId: opts.client ?? null,
            },
            now(),
          );
          output(opts.json, describe(created));
        } catch (err) {
          if (err instanceof ScopeConflictError) throw new CliError(err.message, 2);
          throw err;
        }
      });
    });

  resources
    .command('list')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const list = await storage.resources.listResources();
        if (opts.json) return output(true, { resources: list.map(describe) });
        process.stdout.write(
          `${table(list.map((r) => ({ identifier: r.identifier, name: r.name, format: r.accessTokenFormat, scopes: r.scopes.map((s) => s.name).join(' ') })))}\n`,
        );
      });
    });

  resources
    .command('show <identifier>')
    .option('--json', 'machine-readable output')
    .action(async (identifier: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const resource = await storage.resources.findResource(identifier);
        if (!resource) throw new CliError(`no resource ${identifier}`);
        output(opts.json, describe(resource));
      });
    });

  resources
    .command('delete <identifier>')
    .option('--json', 'machine-readable output')
    .action(async (identifier: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        if (!(await storage.resources.deleteResource(identifier))) throw new CliError(`no resource ${identifier}`);
        output(opts.json, { identifier, deleted: true });
      });
    });
}
