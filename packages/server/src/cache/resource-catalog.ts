import type { Resource } from '../model.js';
import type { ResourceRepository } from '../storage/repositories/resource-repository.js';
import type { ChangeWatcher } from './change-watcher.js';

export interface CatalogSnapshot {
  resources: ReadonlyMap<string, Resource>;
  /** Scope name → identifier of the resource that defines it. */
  owners: ReadonlyMap<string, string>;
}

/**
 * Resources and their scopes, read by every token request: few, rarely changed, so each
 * instance keeps one snapshot, dropped whenever the resources generation moves (see
 * ChangeWatcher) and re-read from the database while the watcher is not fresh.
 */
export class ResourceCatalog {
  #snapshot: CatalogSnapshot | undefined;
  #loading: Promise<CatalogSnapshot> | undefined;
  #epoch = 0;

  constructor(
    private readonly repository: ResourceRepository,
    private readonly watcher: ChangeWatcher,
  ) {
    const invalidate = () => this.invalidate();
    repository.onChange(invalidate);
    watcher.onChange('resources', invalidate);
  }

  invalidate(): void {
    this.#snapshot = undefined;
    this.#loading = undefined;
    this.#epoch++;
  }

  async snapshot(): Promise<CatalogSnapshot> {
    if (this.#snapshot !== undefined && this.watcher.fresh) return this.#snapshot;
    if (this.#loading === undefined) {
      const loading = this.#load();
      this.#loading = loading;
      const settle = () => {
        if (this.#loading === loading) this.#loading = undefined;
      };
      loading.then(settle, settle);
    }
    return this.#loading;
  }

  async #load(): Promise<CatalogSnapshot> {
    const epoch = this.#epoch;
    const list = await this.repository.listResources();
    const snapshot: CatalogSnapshot = {
      resources: new Map(list.map((r) => [r.identifier, r])),
      owners: new Map(list.flatMap((r) => r.scopes.map((s) => [s.name, r.identifier] as const))),
    };
    // A change during the load: serve this result once, but do not keep it.
    if (epoch === this.#epoch && this.watcher.fresh) this.#snapshot = snapshot;
    return snapshot;
  }
}
