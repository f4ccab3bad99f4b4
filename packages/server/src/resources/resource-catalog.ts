import { performance } from 'node:perf_hooks';
import type { Resource } from '../model.js';
import type { ResourceRepository } from '../storage/repositories/resource-repository.js';

export interface CatalogSnapshot {
  resources: ReadonlyMap<string, Resource>;
  /** Scope name → identifier of the resource that defines it. */
  owners: ReadonlyMap<string, string>;
}

/**
 * Resources and their scopes, read by every token request. They change rarely and are few, so
 * each instance keeps a snapshot: writes through this process's repository are visible at once,
 * writes by other processes (the CLI, other instances) within `maxAgeSeconds`. Clients, whose
 * state is security-critical (disabled, secrets), are never cached.
 */
export class ResourceCatalog {
  #snapshot: CatalogSnapshot | undefined;
  #loadedAt = 0;
  #loading: Promise<CatalogSnapshot> | undefined;
  #generation = 0;

  constructor(
    private readonly repository: ResourceRepository,
    private readonly maxAgeSeconds: number,
  ) {
    repository.onChange(() => this.invalidate());
  }

  invalidate(): void {
    this.#snapshot = undefined;
    this.#generation++;
  }

  async snapshot(): Promise<CatalogSnapshot> {
    // Monotonic time: cache age must not follow a protocol clock that tests move around.
    if (this.#snapshot !== undefined && performance.now() - this.#loadedAt < this.maxAgeSeconds * 1000) return this.#snapshot;
    this.#loading ??= this.#load().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #load(): Promise<CatalogSnapshot> {
    const generation = this.#generation;
    const started = performance.now();
    const list = await this.repository.listResources();
    const snapshot: CatalogSnapshot = {
      resources: new Map(list.map((r) => [r.identifier, r])),
      owners: new Map(list.flatMap((r) => r.scopes.map((s) => [s.name, r.identifier] as const))),
    };
    // A write during the load invalidated it: serve this result once, but do not keep it.
    if (generation === this.#generation) {
      this.#snapshot = snapshot;
      this.#loadedAt = started;
    }
    return snapshot;
  }
}
