/**
 * Where CLI sessions live: one JSON file per issuer + client in the user's configuration
 * directory, mode 0600 in a 0700 directory, replaced atomically (temporary file, fsync, rename),
 * with a lock file so two processes never refresh the same session at once (a rotated refresh
 * token presented twice would end the session: RFC 9700 §4.14.2).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GatehouseClientError } from './errors.js';
import { sleep } from './http.js';

/** The environment variable that overrides the configuration directory. */
export const CONFIG_DIR_ENV = 'GATEHOUSE_CLIENT_CONFIG_DIR';

/**
 * A signed-in CLI session as stored on disk. Wire names keep their RFC spelling. The file holds
 * the refresh token: that is why it is readable by its owner only.
 */
export interface StoredSession {
  /** Format version of this file. */
  version: 1;
  /** The issuer identifier, exactly as its metadata says. */
  issuer: string;
  client_id: string;
  /** Endpoints from the issuer's metadata at login, so `token` needs no discovery request. */
  token_endpoint: string;
  revocation_endpoint?: string | undefined;
  userinfo_endpoint?: string | undefined;
  /** From the metadata too: how ID tokens returned by a refresh are checked. */
  id_token_signing_alg_values_supported?: string[] | undefined;
  access_token: string;
  /** Lowercased (`bearer`). */
  token_type: string;
  /** Seconds since the epoch when the access token expires, when the server said. */
  expires_at?: number | undefined;
  refresh_token?: string | undefined;
  /** The granted scope. */
  scope?: string | undefined;
  /** The RFC 8707 resources asked for at login. */
  resource?: string[] | undefined;
  /** Claims of the ID token received at login (or at the last refresh that returned one). */
  id_token_claims?: Record<string, unknown> | undefined;
  /** Seconds since the epoch: login, last change. */
  created_at: number;
  updated_at: number;
}

/**
 * The configuration directory: `$GATEHOUSE_CLIENT_CONFIG_DIR` when set; otherwise
 * `$XDG_CONFIG_HOME/gatehouse-client` or `~/.config/gatehouse-client` on Linux and other Unixes,
 * `~/Library/Application Support/gatehouse-client` on macOS, `%APPDATA%\gatehouse-client` on
 * Windows.
 */
export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home: string = homedir()): string {
  const override = env[CONFIG_DIR_ENV];
  if (override !== undefined && override !== '') return override;
  if (platform === 'win32') return join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'gatehouse-client');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'gatehouse-client');
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(home, '.config'), 'gatehouse-client');
}

/** The issuer as a key: parsed and serialised, so `https://id.example.com` and `https://id.example.com/` are one. */
function issuerKey(issuer: string): string {
  try {
    return new URL(issuer).href;
  } catch {
    return issuer;
  }
}

/** The session file name for an issuer and client: a SHA-256 digest, so no URL character reaches the file system. */
export function sessionFileName(issuer: string, clientId: string): string {
  return `${createHash('sha256').update(`${issuerKey(issuer)}\n${clientId}`).digest('hex').slice(0, 32)}.json`;
}

const SESSION_FILE = /^[0-9a-f]{32}\.json$/;

function optionalString(value: unknown): value is string | undefined {
  return value === undefined || typeof value === 'string';
}

/** Narrows parsed JSON to a {@link StoredSession}; undefined when it is not one. */
function asSession(value: unknown): StoredSession | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const ok =
    v.version === 1 &&
    typeof v.issuer === 'string' &&
    typeof v.client_id === 'string' &&
    typeof v.token_endpoint === 'string' &&
    typeof v.access_token === 'string' &&
    typeof v.token_type === 'string' &&
    typeof v.created_at === 'number' &&
    typeof v.updated_at === 'number' &&
    (v.expires_at === undefined || typeof v.expires_at === 'number') &&
    [v.refresh_token, v.scope, v.revocation_endpoint, v.userinfo_endpoint].every(optionalString) &&
    [v.resource, v.id_token_signing_alg_values_supported].every((list) => list === undefined || (Array.isArray(list) && list.every((r) => typeof r === 'string'))) &&
    (v.id_token_claims === undefined || (typeof v.id_token_claims === 'object' && v.id_token_claims !== null));
  return ok ? (v as unknown as StoredSession) : undefined;
}

const isErrno = (err: unknown, code: string) => err instanceof Error && (err as NodeJS.ErrnoException).code === code;

/** How long a lock may be held before another process takes it over, milliseconds. */
const STALE_LOCK = 30_000;

/**
 * The session files of one configuration directory.
 *
 * @example
 * ```ts
 * const store = new SessionStore();            // the default directory
 * for (const s of await store.list()) console.error(s.issuer, s.client_id);
 * ```
 */
export class SessionStore {
  /** The directory holding the session files. */
  readonly dir: string;

  constructor(dir: string = defaultConfigDir()) {
    this.dir = dir;
  }

  /** The file of the session for `issuer` and `clientId`. */
  pathFor(issuer: string, clientId: string): string {
    return join(this.dir, sessionFileName(issuer, clientId));
  }

  /** The stored session, or undefined when there is none. A file that is not a session is an `invalid_configuration` error. */
  async read(issuer: string, clientId: string): Promise<StoredSession | undefined> {
    return this.#readFile(this.pathFor(issuer, clientId));
  }

  async #readFile(file: string): Promise<StoredSession | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw new GatehouseClientError('invalid_configuration', `cannot read the session file ${file}`, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const session = asSession(parsed);
    if (session === undefined) throw new GatehouseClientError('invalid_configuration', `the session file ${file} is damaged; delete it and log in again`);
    return session;
  }

  /**
   * Saves a session atomically: a new file (mode 0600) in the same directory is written, flushed
   * to disk and renamed over the old one, so a reader sees the old or the new session, never half.
   * The directory is created with mode 0700 when missing.
   */
  async write(session: StoredSession): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.pathFor(session.issuer, session.client_id);
    const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await open(temp, 'wx', 0o600);
    try {
      try {
        await handle.writeFile(`${JSON.stringify(session, null, 2)}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    await this.#syncDir();
    return file;
  }

  /** Makes the rename durable (POSIX); not possible, and not needed, on Windows. */
  async #syncDir(): Promise<void> {
    if (process.platform === 'win32') return;
    const dir = await open(this.dir, 'r').catch(() => undefined);
    if (dir === undefined) return;
    await dir.sync().catch(() => undefined);
    await dir.close();
  }

  /** Deletes the session file; resolves to whether there was one. */
  async delete(issuer: string, clientId: string): Promise<boolean> {
    try {
      await unlink(this.pathFor(issuer, clientId));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Every stored session (damaged files are skipped). */
  async list(): Promise<StoredSession[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const sessions: StoredSession[] = [];
    for (const name of names.filter((n) => SESSION_FILE.test(n)).sort()) {
      const session = await this.#readFile(join(this.dir, name)).catch(() => undefined);
      if (session !== undefined) sessions.push(session);
    }
    return sessions;
  }

  /**
   * Runs `fn` holding the session's lock file (created exclusively; a lock older than 30 s is
   * taken as abandoned). Waits up to `timeout` milliseconds (default 15 000) for another process.
   */
  async withLock<T>(issuer: string, clientId: string, fn: () => Promise<T>, timeout = 15_000): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const lock = `${this.pathFor(issuer, clientId)}.lock`;
    const deadline = Date.now() + timeout;
    for (;;) {
      try {
        const handle = await open(lock, 'wx', 0o600);
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        break;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
        const info = await stat(lock).catch(() => undefined);
        if (info !== undefined && Date.now() - info.mtimeMs > STALE_LOCK) {
          await unlink(lock).catch(() => undefined);
          continue;
        }
        if (Date.now() > deadline) throw new GatehouseClientError('timeout', `another process holds the session lock (${lock})`);
        await sleep(25 + Math.random() * 50);
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }
}
