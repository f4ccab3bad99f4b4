import type { Logger } from './logging.js';

/**
 * Governance: records when each client last obtained a token, or each grant was last used. An id
 * is noted at most once per `interval` seconds, and the notes are written behind the token path,
 * every `flushInterval` milliseconds, by `write` (the repositories write one statement per 500
 * ids), so a crash forgets at most that much of the last-use record, never a grant or a token.
 */
export class UsageRecorder {
  readonly #noted = new Map<string, number>();
  /** Ids used since the last flush, with the latest time. */
  #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    /** Writes the last use of these ids (the same time for all). */
    private readonly write: (ids: readonly string[], at: number) => Promise<void>,
    private readonly logger: Logger,
    /** What the ids are, for the log line of a failed write: `client`, `grant`. */
    private readonly what: string,
    private readonly interval = 60,
    private readonly flushInterval = 1000,
  ) {}

  record(id: string, now: number): void {
    // A request still finishing after close (the shutdown deadline) has nowhere to write.
    if (this.#closed) return;
    const last = this.#noted.get(id);
    if (last !== undefined && now - last < this.interval) return;
    if (this.#noted.size > 100_000) this.#noted.clear();
    this.#noted.set(id, now);
    this.#pending.set(id, now);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer === undefined && !this.#closed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.flushInterval);
      this.#timer.unref();
    }
  }

  /** Writes what is pending (also on close); a failed write is tried again at the next flush. */
  flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = new Map();
    if (batch.size === 0) return this.#flushing;
    this.#flushing = this.#flushing.then(async () => {
      const byTime = new Map<number, string[]>();
      for (const [id, at] of batch) {
        const ids = byTime.get(at);
        if (ids === undefined) byTime.set(at, [id]);
        else ids.push(id);
      }
      try {
        for (const [at, ids] of byTime) await this.write(ids, at);
      } catch (err) {
        // Back into the next batch, unless a later use is already there.
        for (const [id, at] of batch) if ((this.#pending.get(id) ?? -Infinity) < at) this.#pending.set(id, at);
        this.#schedule();
        this.logger.warn({ err, [`${this.what}s`]: batch.size }, `could not record ${this.what} use`);
      }
    });
    return this.#flushing;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
