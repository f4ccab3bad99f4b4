import type { Kysely, Selectable } from 'kysely';
import type { AccessTokenFormat, Resource, ResourceScope } from '../../model.js';
import { scopesOverlap } from '../../protocol/scope.js';
import type { Database, ResourceTable } from '../schema.js';
import { bumpGeneration, ChangeListeners } from '../changes.js';

export class ScopeConflictError extends Error {
  constructor(readonly scope: string, readonly existing: string) {
    super(`scope '${scope}' overlaps scope '${existing}' of another resource`);
    this.name = 'ScopeConflictError';
  }
}

function toResource(row: Selectable<ResourceTable>, scopes: ResourceScope[]): Resource {
  return {
    identifier: row.identifier,
    name: row.name,
    scopes,
    accessTokenTtl: row.access_token_ttl,
    accessTokenFormat: row.access_token_format as AccessTokenFormat,
    clientId: row.client_id,
    createdAt: row.created_at,
  };
}

/**
 * Resources (APIs) and the scopes they define. A scope name belongs to at most one resource,
 * and no scope of one resource may be an ancestor or descendant of another resource's scope,
 * so a scope always names one audience.
 */
export class ResourceRepository {
  readonly #changes = new ChangeListeners();

  constructor(private readonly db: Kysely<Database>) {}

  /** Called after every committed change through this repository (caches listen). */
  onChange(listener: () => void): void {
    this.#changes.add(listener);
  }

  async findResource(identifier: string): Promise<Resource | undefined> {
    const row = await this.db.selectFrom('resources').selectAll().where('identifier', '=', identifier).executeTakeFirst();
    if (!row) return undefined;
    const scopes = await this.db.selectFrom('resource_scopes').select(['name', 'description']).where('resource', '=', identifier).orderBy('name').execute();
    return toResource(row, scopes);
  }

  async createResource(resource: Omit<Resource, 'createdAt'>, now: number): Promise<Resource> {
    await this.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('resource_scopes').select(['name', 'resource']).execute();
      for (const scope of resource.scopes) {
        const clash = existing.find((e) => e.resource !== resource.identifier && scopesOverlap(e.name, scope.name));
        if (clash) throw new ScopeConflictError(scope.name, clash.name);
      }
      await trx
        .insertInto('resources')
        .values({
          identifier: resource.identifier,
          name: resource.name,
          access_token_ttl: resource.accessTokenTtl,
          access_token_format: resource.accessTokenFormat,
          client_id: resource.clientId,
          created_at: now,
        })
        .execute();
      if (resource.scopes.length > 0) {
        await trx
          .insertInto('resource_scopes')
          .values(resource.scopes.map((s) => ({ resource: resource.identifier, name: s.name, description: s.description })))
          .execute();
      }
      await bumpGeneration(trx, 'resources');
    });
    this.#changes.notify();
    const created = await this.findResource(resource.identifier);
    if (!created) throw new Error('resource vanished after creation');
    return created;
  }

  async listResources(): Promise<Resource[]> {
    const rows = await this.db.selectFrom('resources').selectAll().orderBy('identifier').execute();
    const scopes = await this.db.selectFrom('resource_scopes').selectAll().orderBy('name').execute();
    return rows.map((row) =>
      toResource(
        row,
        scopes.filter((s) => s.resource === row.identifier).map((s) => ({ name: s.name, description: s.description })),
      ),
    );
  }

  /** Resources a client represents (for introspection restrictions). */
  async listResourcesRepresentedBy(clientId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('resources').select('identifier').where('client_id', '=', clientId).execute();
    return rows.map((r) => r.identifier);
  }

  async deleteResource(identifier: string): Promise<boolean> {
    const deleted = await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('resource_scopes').where('resource', '=', identifier).execute();
      const result = await trx.deleteFrom('resources').where('identifier', '=', identifier).executeTakeFirst();
      await bumpGeneration(trx, 'resources');
      return result.numDeletedRows > 0n;
    });
    this.#changes.notify();
    return deleted;
  }
}
