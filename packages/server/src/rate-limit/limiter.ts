import type { Logger } from '../logging.js';
import { sha256 } from '../tokens/random.js';
import { admit, windowStart, type RateRule, type RateVerdict } from './policy.js';
import type { RateLimitStore } from './store.js';

interface Counter {
  /** SHA-256 of the counter's name: what the shared store knows it by. */
  counterKey: string;
  window: number;
  windowEnd: number;
  limit: number;
  /** The shared total at the last report (every instance's hits, this one's reported ones included). */
  shared: number;
  /** Hits admitted here since the last report. */
  pending: number;
  /** Hits being reported right now. */
  reporting: number;
}

export interface RateLimiterOptions {
  store: RateLimitStore;
  /** How often this instance reports its hits and learns the shared totals, milliseconds. */
  syncInterval: number;
  /** Counters kept in memory; the oldest go first when full. */
  maxCounters: number;
  logger: Logger;
  /** Seconds since the epoch. */
  clock: () => number;
}

/**
 * Rate limits shared by every instance, without a round trip per request: each instance admits
 * against the last shared total it learned plus its own hits since, and every `syncInterval`
 * adds its hits to the shared counters (the database, or Redis) in one batch and learns the new
 * totals — also of the counters past half their limit that it has no new hits for. A single
 * instance is exact; N instances together may admit at most what each admits in one sync
 * interval beyond the limit. A failed report keeps the hits for the next one, and
 * each instance keeps enforcing what it counts itself: an outage never lifts the limits.
 */
export class RateLimiter {
  readonly #counters = new Map<string, Counter>();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;

  constructor(private readonly options: RateLimiterOptions) {}

  /** Counts one hit under `bucket` and `key` if the rule admits it; refused hits are not counted. */
  hit(bucket: string, key: string, rule: RateRule, now: number): RateVerdict {
    const start = windowStart(now, rule.window);
    // In memory by the plain name; the shared store gets its digest, computed once per window.
    const id = `${bucket}:${start}:${key}`;
    let counter = this.#counters.get(id);
    if (counter === undefined) {
      if (this.#counters.size >= this.options.maxCounters) this.#evict(now);
      counter = { counterKey: sha256(id), window: rule.window, windowEnd: start + rule.window, limit: rule.limit, shared: 0, pending: 0, reporting: 0 };
      this.#counters.set(id, counter);
    }
    const verdict = admit(counter.shared + counter.pending + counter.reporting, rule, now);
    if (verdict.allowed) counter.pending++;
    return verdict;
  }

  /** Reports pending hits and learns shared totals; one report at a time. */
  sync(): Promise<void> {
    this.#syncing ??= this.#report().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  start(): void {
    this.#timer = setInterval(() => void this.sync(), this.options.syncInterval);
    this.#timer.unref();
  }

  /** Stops the timer and reports what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.sync();
    await this.options.store.close();
  }

  async #report(): Promise<void> {
    const now = this.options.clock();
    // Counters with hits to report, and counters past half their limit (reported with 0 hits,
    // to learn what the other instances counted: those are the ones a refusal may soon depend on).
    const batch: Counter[] = [];
    for (const [key, counter] of this.#counters) {
      if (counter.windowEnd <= now && counter.pending === 0) {
        if (counter.reporting === 0) this.#counters.delete(key);
      } else if (counter.pending > 0 || (counter.windowEnd > now && counter.shared * 2 >= counter.limit)) {
        batch.push(counter);
      }
    }
    if (batch.length === 0) return;
    for (const c of batch) {
      c.reporting = c.pending;
      c.pending = 0;
    }
    try {
      // A shared counter outlives its window by one window, so a late report still lands in it.
      const totals = await this.options.store.addHits(batch.map((c) => ({ counterKey: c.counterKey, hits: c.reporting, expiresAt: c.windowEnd + c.window })));
      batch.forEach((c, i) => {
        c.shared = Math.max(c.shared, totals[i] ?? 0);
        c.reporting = 0;
      });
    } catch (err) {
      for (const c of batch) {
        c.pending += c.reporting;
        c.reporting = 0;
      }
      this.options.logger.warn({ err, store: this.options.store.kind }, 'rate-limit counters could not be shared; limits are enforced per instance until they can');
    }
  }

  /** Drops ended windows, then the oldest counters, to make room. */
  #evict(now: number): void {
    for (const [key, counter] of this.#counters) if (counter.windowEnd <= now && counter.pending === 0 && counter.reporting === 0) this.#counters.delete(key);
    for (const [key, counter] of this.#counters) {
      if (this.#counters.size < this.options.maxCounters) break;
      if (counter.pending === 0 && counter.reporting === 0) this.#counters.delete(key);
    }
  }
}
