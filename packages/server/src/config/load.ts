import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import { configSchema, finishConfig, type ConfigInput, type GatehouseConfig } from './schema.js';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Environment variables and the settings they override. */
export const ENV_VARIABLES = {
  GATEHOUSE_ISSUER: 'issuer',
  GATEHOUSE_PORT: 'port',
  GATEHOUSE_HOST: 'host',
  GATEHOUSE_DATA_DIR: 'dataDir',
  DATABASE_URL: 'databaseUrl',
  GATEHOUSE_SECRET: 'secret',
  GATEHOUSE_SECRET_FILE: 'secretFile',
  GATEHOUSE_LOG_LEVEL: 'logLevel',
  GATEHOUSE_METRICS_PORT: 'metrics.port',
  GATEHOUSE_METRICS_ENABLED: 'metrics.enabled',
  REDIS_URL: 'rateLimits.redisUrl',
} as const satisfies Record<string, string>;

function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.join('.') || '(root)';
    const env = Object.entries(ENV_VARIABLES).find(([, key]) => key === path)?.[0];
    return `${path}${env ? ` (${env})` : ''}: ${issue.message}`;
  });
}

/** Validates an in-memory configuration (as given to `createAuthorizationServer`). */
export function resolveConfig(input: ConfigInput = {}): GatehouseConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error));
  const finished = finishConfig(parsed.data);
  if (!finished.ok) throw new ConfigError(finished.problems);
  return finished.config;
}

/**
 * Loads the configuration file (`--config FILE`, else `gatehouse.config.json` in the working
 * directory when present), then applies environment overrides, then validates.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): GatehouseConfig {
  const env = options.env ?? process.env;
  let fromFile: Record<string, unknown> = {};
  const file = options.file ?? (existsSync('gatehouse.config.json') ? 'gatehouse.config.json' : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(resolve(file), 'utf8');
    } catch (err) {
      throw new ConfigError([`config file ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
      fromFile = value as Record<string, unknown>;
    } catch {
      throw new ConfigError([`config file ${file}: must be a JSON object`]);
    }
  }
  const merged: Record<string, unknown> = { ...fromFile };
  for (const [name, path] of Object.entries(ENV_VARIABLES)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    // A dotted path sets a nested setting, keeping the file's other settings of that section.
    const [section, key] = path.split('.') as [string, string | undefined];
    if (key === undefined) merged[section] = value;
    else merged[section] = { ...(merged[section] as Record<string, unknown> | undefined), [key]: value === 'true' ? true : value === 'false' ? false : value };
  }
  return resolveConfig(merged as ConfigInput);
}

const SECRET_KEYS = new Set(['secret', 'databaseUrl']);

/** The effective configuration with secrets masked, for `gatehouse config print`. */
export function maskConfig(config: GatehouseConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (!SECRET_KEYS.has(key) || value === undefined) out[key] = value;
    // The userinfo ends at the authority's last '@' (pg accepts an unencoded '@' in the password).
    else if (key === 'databaseUrl') out[key] = maskDatabaseUrl(String(value));
    else out[key] = '***';
  }
  return out;
}

/** A database URL with its password masked, in the authority and in query parameters. */
function maskDatabaseUrl(value: string): string {
  const masked = value.replace(/([?&](?:password|sslpassword|sslkey)=)[^&#]*/gi, '$1***');
  return masked.replace(/\/\/([^/?#]*)@/, (_m, cred: string) => `//${cred.includes(':') ? `${cred.split(':')[0]}:***` : cred}@`);
}
