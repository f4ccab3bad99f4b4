import type { ThrottleVerdict } from '../users/login-throttle.js';

/**
 * Rate-limit rules, pure: fixed windows counted per key. A window of `window` seconds starts at
 * a multiple of `window`; at most `limit` hits are admitted in it. Fixed windows may admit up to
 * twice the limit across a window boundary; they cost one counter per key and window, which is
 * what lets every instance share them through one row (or one Redis key) per window.
 */
export interface RateRule {
  /** Hits admitted per window. */
  limit: number;
  /** Window length, seconds. */
  window: number;
}

export function windowStart(now: number, window: number): number {
  return now - (now % window);
}

/** Seconds until the window that contains `now` ends (at least 1). */
export function secondsLeft(now: number, window: number): number {
  return Math.max(1, windowStart(now, window) + window - now);
}

/** The same verdict as sign-in throttling's: allowed, or refused with seconds to wait. */
export type RateVerdict = ThrottleVerdict;

/** Whether one more hit fits, given the hits already counted in this window. */
export function admit(counted: number, rule: RateRule, now: number): RateVerdict {
  return counted < rule.limit ? { allowed: true } : { allowed: false, retryAfter: secondsLeft(now, rule.window) };
}
