import pino, { type Logger } from 'pino';

/** Field names whose values never reach a log line, wherever they appear. */
export const REDACTED_FIELDS = [
  'authorization',
  'cookie',
  'set-cookie',
  'client_secret',
  'client_assertion',
  'code',
  'code_verifier',
  'refresh_token',
  'access_token',
  'id_token',
  'token',
  'password',
  'registration_access_token',
  'initial_access_token',
  'secret',
] as const;

const SENSITIVE = new Set<string>(REDACTED_FIELDS);
const CENSOR = '[redacted]';
const MAX_DEPTH = 8;

/**
 * Replaces the value of every sensitive key at any depth. Copy-on-write: objects without
 * sensitive keys are returned as they are, so the common request line costs one key scan.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const r = redact(item, depth + 1);
      if (r !== item) (copy ??= [...value])[i] = r;
    });
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  const isError = value instanceof Error;
  for (const key of Object.keys(record)) {
    const item = record[key];
    // An error's `code` is its error code (ECONNREFUSED, 23505), never an authorization code.
    const sensitive = SENSITIVE.has(key.toLowerCase()) && !(isError && key === 'code');
    const r = sensitive ? CENSOR : redact(item, depth + 1);
    if (r !== item) {
      if (copy === undefined) {
        // Keep errors recognisable to pino's serializer: copy their message and stack too.
        copy = value instanceof Error ? { type: value.name, message: value.message, stack: value.stack, ...record } : { ...record };
      }
      copy[key] = r;
    }
  }
  return copy ?? value;
}

export type { Logger };

let stampedAt = -1;
let stamp = '';
/**
 * pino's ISO-8601 `time`, formatted once per millisecond: under load several lines share a
 * millisecond, and `toISOString` was a visible part of every request's cost.
 */
export function isoTimestamp(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/**
 * JSON lines on stdout (or `destination`), redacted. Writes are asynchronous and batched, and
 * what a quiet server still holds is written out every second; the server flushes on close, so a
 * clean stop loses nothing (a crash may lose the last second's lines, at most 4 KiB of them).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      timestamp: isoTimestamp,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redact(object) as Record<string, unknown>,
      },
    },
    // Batched: one write per 4 KiB instead of one per line, and at least one a second (no fsync).
    destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1000 }),
  );
}
