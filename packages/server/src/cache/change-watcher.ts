import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging.js';
import type { CachedTable } from '../storage/changes.js';

/**
 * Polls the generation counters (one small query per interval, whatever the request rate) and
 * tells the caches when a table changed, wherever the change was made: this instance, another
 * instance, or the CLI. Fails closed: the first failed poll turns `fresh` false and the caches
 * stop serving, so requests go to the database and fail there while it is down. An interval of
 * 0 disables caching altogether: every request reads the database.
 */
export class ChangeWatcher {
  #values = new Map<string, number>();
  #lastSuccess = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Map<CachedTable, (() => void)[]>();

  constructor(
    private readonly readGenerations: () => Promise<Map<string, number>>,
    private readonly intervalMs: number,
    private readonly logger?: Logger,
  ) {}

  /** Whether cached rows may be served: the last poll succeeded, at most three intervals ago. */
  get fresh(): boolean {
    return this.intervalMs > 0 && performance.now() - this.#lastSuccess < 3 * this.intervalMs;
  }

  onChange(table: CachedTable, listener: () => void): void {
    const list = this.#listeners.get(table) ?? [];
    list.push(listener);
    this.#listeners.set(table, list);
  }

  async poll(): Promise<void> {
    const started = performance.now();
    let values: Map<string, number>;
    try {
      values = await this.readGenerations();
    } catch (err) {
      this.#lastSuccess = Number.NEGATIVE_INFINITY;
      throw err;
    }
    for (const [table, value] of values) {
      const previous = this.#values.get(table);
      this.#values.set(table, value);
      if (previous !== undefined && previous !== value) for (const listener of this.#listeners.get(table as CachedTable) ?? []) listener();
    }
    this.#lastSuccess = started;
  }

  async start(): Promise<void> {
    if (this.intervalMs <= 0) return;
    await this.poll();
    this.#timer = setInterval(() => {
      this.poll().catch((err: unknown) => this.logger?.warn({ err }, 'cache change poll failed; serving from the database'));
    }, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
