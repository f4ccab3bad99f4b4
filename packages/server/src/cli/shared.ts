import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import type { GatehouseConfig } from '../config/schema.js';
import { parseDuration } from '../protocol/duration.js';
import { migrateToLatest } from '../storage/database.js';
import type { Storage } from '../storage/storage.js';
import { openConfiguredStorage } from '../server.js';

/** A failure meant for the person at the terminal: message, exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface GlobalOptions {
  config?: string;
}

export function configFrom(command: Command): GatehouseConfig {
  const opts = command.optsWithGlobals<GlobalOptions>();
  try {
    return loadConfig(opts.config === undefined ? {} : { file: opts.config });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

/** Opens storage (migrating when configured to), runs `fn`, and always closes it. */
export async function withStorage<T>(command: Command, fn: (storage: Storage, config: GatehouseConfig) => Promise<T>): Promise<T> {
  const config = configFrom(command);
  const storage = openConfiguredStorage(config);
  try {
    if (config.migrateOnStart) await migrateToLatest(storage.handle.db);
    return await fn(storage, config);
  } finally {
    await storage.close();
  }
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

export function durationOption(value: string): number {
  const seconds = parseDuration(value);
  if (seconds === null) throw new CliError(`not a duration: ${value} (use seconds, or 30s, 10m, 12h, 7d)`, 2);
  return seconds;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Prints a value as JSON (`--json`) or as aligned `key: value` lines. */
export function output(json: boolean | undefined, value: Record<string, unknown>, human?: () => string): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    return;
  }
  if (human) {
    process.stdout.write(`${human()}\n`);
    return;
  }
  const width = Math.max(...Object.keys(value).map((k) => k.length));
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const text = Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(' ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    process.stdout.write(`${`${key}:`.padEnd(width + 2)}${text}\n`);
  }
}

/** A plain table for list commands. */
export function table(rows: Record<string, string>[]): string {
  if (rows.length === 0) return '(none)';
  const headers = Object.keys(rows[0] ?? {});
  const widths = headers.map((h) => Math.max(h.length, ...rows.map((r) => (r[h] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map((r) => line(headers.map((h) => r[h] ?? '')))].join('\n');
}

export function isoTime(seconds: number | null): string {
  return seconds === null ? 'never' : new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

export function ageDays(seconds: number | null, at: number): string {
  return seconds === null ? '-' : `${Math.floor((at - seconds) / 86400)}d`;
}
