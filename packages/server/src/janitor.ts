import { randomUUID } from 'node:crypto';
import type { GatehouseConfig } from './config/schema.js';
import type { JanitorReport } from './storage/repositories/janitor-repository.js';
import type { Storage } from './storage/storage.js';

/** One instance's identity for the janitor lock. */
export const JANITOR_HOLDER = `instance:${randomUUID()}`;

/**
 * Deletes everything that has expired, if no other instance is doing it right now: codes,
 * interactions, token families (and their refresh tokens), revoked token ids, used assertion
 * ids, opaque tokens, initial access tokens, browser sessions, sign-in throttles, and signing
 * keys past their publication. Returns what it deleted, or undefined when another holds the lock.
 */
export async function runJanitor(storage: Storage, config: GatehouseConfig, now: number, holder = JANITOR_HOLDER): Promise<JanitorReport | undefined> {
  const lockTtl = Math.max(60, config.janitor.interval);
  if (!(await storage.janitor.acquireLock(holder, now, lockTtl))) return undefined;
  const report = await storage.janitor.sweepExpired(now, config.janitor.batchSize, config.janitor.maxBatches);
  report.browser_sessions = await storage.sessions.deleteExpiredSessions(now, config.sessions.idleTimeout);
  report.login_throttle = await storage.loginThrottle.deleteStaleThrottles(now - config.login.window, now);
  report.signing_keys = await storage.keys.deleteExpiredKeys(now);
  return report;
}
