import type { Client } from '../model.js';
import type { ClientCredentials, ClientRepository } from '../storage/repositories/client-repository.js';
import type { ChangeWatcher } from './change-watcher.js';

/** How client authentication and introspection read clients. */
export interface ClientLookup {
  loadClientCredentials(clientId: string): Promise<ClientCredentials | undefined>;
}

/**
 * Clients and their secret digests in memory, dropped whenever the clients generation moves
 * (any write, on any instance or the CLI, seen within one poll interval; writes through this
 * process at once). Bounded. Unknown ids are cached as unknown too, so a made-up client_id costs
 * the same as a known one (no timing oracle for which clients exist). The database stays the
 * only source of truth.
 */
export class ClientCache implements ClientLookup {
  #entries = new Map<string, ClientCredentials | null>();
  #epoch = 0;

  constructor(
    private readonly repository: ClientRepository,
    private readonly watcher: ChangeWatcher,
    private readonly maxEntries = 10_000,
  ) {
    const clear = () => this.clear();
    repository.onChange(clear);
    watcher.onChange('clients', clear);
  }

  clear(): void {
    this.#entries.clear();
    this.#epoch++;
  }

  async loadClientCredentials(clientId: string): Promise<ClientCredentials | undefined> {
    // Client ids are printable (generated as hex, or chosen by an administrator); one with a
    // control character (a NUL, which PostgreSQL refuses in text) names no client.
    if (!isPlausibleClientId(clientId)) return undefined;
    if (this.watcher.fresh) {
      const hit = this.#entries.get(clientId);
      if (hit !== undefined) return hit ?? undefined;
    }
    const epoch = this.#epoch;
    const loaded = await this.repository.loadClientCredentials(clientId);
    // Keep it only if nothing changed while it was read, so a stale row never outlives a change.
    if (epoch === this.#epoch && this.watcher.fresh && clientId.length <= 128) {
      if (this.#entries.size >= this.maxEntries) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      this.#entries.set(clientId, loaded ?? null);
    }
    return loaded;
  }

  async findClient(clientId: string): Promise<Client | undefined> {
    return (await this.loadClientCredentials(clientId))?.client;
  }
}

/** At most 255 characters, none of them a control character. */
function isPlausibleClientId(clientId: string): boolean {
  // eslint-disable-next-line no-control-regex
  return clientId.length > 0 && clientId.length <= 255 && !/[\u0000-\u001f\u007f]/.test(clientId);
}
