import type { Logger } from './logging.js';
import type { ClientRepository } from './storage/repositories/client-repository.js';

/**
 * Governance: records when each client last obtained a token. A client is noted at most once per
 * `interval` seconds, and the notes are written behind the token path, every `flushInterval`
 * milliseconds, in one statement per 500 clients (so a crash forgets at most that much of the
 * last-use record, never a grant or a token).
 */
export class ClientUsageRecorder {
  readonly #noted = new Map<string, number>();
  /** Clients used since the last flush, with the latest time. */
  #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly clients: Pick<ClientRepository, 'recordClientsUse'>,
    private readonly logger: Logger,
    private readonly interval = 60,
    private readonly flushInterval = 1000,
  ) {}

  record(clientId: string, now: number): void {
    const last = this.#noted.get(clientId);
    if (last !== undefined && now - last < this.interval) return;
    if (this.#noted.size > 100_000) this.#noted.clear();
    this.#noted.set(clientId, now);
    this.#pending.set(clientId, now);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.flushInterval);
      this.#timer.unref();
    }
  }

  /** Writes what is pending (also on close); a failed write is noted again at the next use. */
  flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = new Map();
    if (batch.size === 0) return this.#flushing;
    this.#flushing = this.#flushing.then(async () => {
      const byTime = new Map<number, string[]>();
      for (const [clientId, at] of batch) byTime.set(at, [...(byTime.get(at) ?? []), clientId]);
      try {
        for (const [at, ids] of byTime) await this.clients.recordClientsUse(ids, at);
      } catch (err) {
        for (const clientId of batch.keys()) this.#noted.delete(clientId);
        this.logger.warn({ err, clients: batch.size }, 'could not record client use');
      }
    });
    return this.#flushing;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
