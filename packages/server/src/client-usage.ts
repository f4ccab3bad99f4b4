import type { Logger } from './logging.js';
import type { ClientRepository } from './storage/repositories/client-repository.js';

/**
 * Governance: records when each client last obtained a token, writing at most once per
 * interval per client so the token path does not pay a write per request.
 */
export class ClientUsageRecorder {
  #written = new Map<string, number>();

  constructor(
    private readonly clients: ClientRepository,
    private readonly logger: Logger,
    private readonly interval = 60,
  ) {}

  record(clientId: string, now: number): void {
    const last = this.#written.get(clientId);
    if (last !== undefined && now - last < this.interval) return;
    if (this.#written.size > 100_000) this.#written.clear();
    this.#written.set(clientId, now);
    this.clients.recordClientUse(clientId, now).catch((err: unknown) => {
      this.#written.delete(clientId);
      this.logger.warn({ err, client_id: clientId }, 'could not record client use');
    });
  }
}
