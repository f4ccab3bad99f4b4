/**
 * Retries with exponential backoff and full jitter: only errors marked `retryable` (network
 * failures, timeouts, 5xx, 429) are tried again, a bounded number of times, waiting at least what
 * the server's `Retry-After` asked (up to `maxDelay`). OAuth errors such as `invalid_client` or
 * `invalid_grant` are never retried: repeating them cannot succeed.
 */
import { GatehouseClientError } from './errors.js';

/**
 * How failed requests to the authorization server are retried.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3 (Retry-After)
 */
export interface RetryOptions {
  /** Attempts in all, the first one included (default 4; 1 turns retries off). */
  attempts?: number | undefined;
  /** Milliseconds: the backoff before the n-th retry is random in [0, baseDelay·2ⁿ⁻¹] (default 250). */
  baseDelay?: number | undefined;
  /** Milliseconds: the longest wait between two attempts, `Retry-After` included (default 30 000). */
  maxDelay?: number | undefined;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY = { attempts: 4, baseDelay: 250, maxDelay: 30_000 } as const;

/** What the retry loop needs besides its options: how to wait, randomness, cancellation. */
export interface RetryHooks {
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  random(): number;
  signal?: AbortSignal | undefined;
  /** Narrows which retryable errors are retried (default: all of them). */
  retryIf?: ((err: GatehouseClientError) => boolean) | undefined;
}

/** Milliseconds to wait before retry number `retry` (1-based) after `error`. */
export function backoffDelay(retry: number, error: GatehouseClientError, options: RetryOptions, random: () => number): number {
  const base = options.baseDelay ?? DEFAULT_RETRY.baseDelay;
  const max = options.maxDelay ?? DEFAULT_RETRY.maxDelay;
  const jittered = random() * Math.min(max, base * 2 ** (retry - 1));
  const asked = error.retryAfter === undefined ? 0 : error.retryAfter * 1000;
  return Math.min(max, Math.max(jittered, asked));
}

/**
 * Runs `operation` until it succeeds, throws a non-retryable error, or the attempts run out (the
 * last error is thrown). Every error must already be a {@link GatehouseClientError}.
 */
export async function withRetry<T>(operation: () => Promise<T>, options: RetryOptions, hooks: RetryHooks): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? DEFAULT_RETRY.attempts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (!(err instanceof GatehouseClientError) || !err.retryable || attempt >= attempts || hooks.signal?.aborted) throw err;
      if (hooks.retryIf !== undefined && !hooks.retryIf(err)) throw err;
      await hooks.sleep(backoffDelay(attempt, err, options, hooks.random), hooks.signal);
    }
  }
}
