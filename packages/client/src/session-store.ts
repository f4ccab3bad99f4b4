/**
 * Where CLI sessions live: one JSON file per issuer + client in the user's configuration
 * directory, mode 0600 in a 0700 directory, replaced atomically (temporary file, fsync, rename),
 * with a lock file so two processes never refresh the same session at once (a rotated refresh
 * token presented twice would end the session: RFC 9700 §4.14.2). Like ssh with its keys, a
 * directory others can write to, or a file others can read or write, is refused.
 */
import type { Stats } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GatehouseClientError } from './errors.js';
import { abortError, clampDelay, sleep } from './http.js';

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
/** Temporary files of {@link SessionStore.write} and of lock removal: `<session>.json[.lock].<12 hex>.tmp`. */
const TEMPORARY_FILE = /^[0-9a-f]{32}\.json(?:\.lock)?\.[0-9a-f]{12}\.tmp$/;
/** Temporary files older than this are left over from a crash and deleted, milliseconds. */
const STALE_TEMPORARY = 60_000;

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

/**
 * Refuses a session directory or file others could tamper with or read, as ssh refuses a private
 * key: a directory must belong to this user and not be writable by group or others (whoever can
 * write there can replace the session — its endpoints, and so where the refresh token and any
 * client secret are sent); a file must belong to this user and be neither readable nor writable by
 * group or others (it holds the refresh token). Not checked on Windows, where these mode bits do
 * not exist.
 */
function checkPermissions(path: string, info: Stats, kind: 'directory' | 'file'): void {
  if (process.platform === 'win32' || typeof process.getuid !== 'function') return;
  const mode = info.mode & 0o777;
  const octal = mode.toString(8).padStart(4, '0');
  if (info.uid !== process.getuid()) {
    throw new GatehouseClientError('insecure_permissions', `the session ${kind} ${path} belongs to another user (uid ${info.uid}); refusing to use it`);
  }
  if (kind === 'directory' && (mode & 0o022) !== 0) {
    throw new GatehouseClientError('insecure_permissions', `the session directory ${path} is writable by other users (mode ${octal}); refusing to use it. Fix it with: chmod 700 ${path}`);
  }
  if (kind === 'file' && (mode & 0o077) !== 0) {
    throw new GatehouseClientError(
      'insecure_permissions',
      `the session file ${path} is accessible to other users (mode ${octal}); refusing to use it. Fix it with: chmod 600 ${path} (its tokens may have been read: consider logging out)`,
    );
  }
}

/** Timing of the session lock (milliseconds); the defaults suit real use, tests shorten them. */
export interface SessionStoreOptions {
  /** How long {@link SessionStore.withLock} waits for another process unless told otherwise, default 15 000. */
  lockTimeout?: number | undefined;
  /** A lock file not touched for this long is taken as abandoned (its process died), default 30 000. */
  staleLockAfter?: number | undefined;
  /** How often the holder touches its lock file while it works, default 5 000. */
  heartbeatInterval?: number | undefined;
  /**
   * The longest a holder may work under the lock, default 20 000: its {@link HeldLock.signal}
   * fires then. Kept well below `staleLockAfter`, so a holder stops before anyone could think it
   * dead even if its heartbeat were not seen.
   */
  maxLockHold?: number | undefined;
}

/** How {@link SessionStore.withLock} waits for the lock (at most the store's `lockTimeout`, 15 000 ms by default; then a `timeout` error). */
export interface LockOptions {
  /** Stops waiting (an `aborted` error). It does not interrupt the work once the lock is held. */
  signal?: AbortSignal | undefined;
}

/** What the work done under {@link SessionStore.withLock} is given. */
export interface HeldLock {
  /**
   * Fires when the work must stop: `maxLockHold` has passed, or the lock file is no longer ours
   * (another process took it over). Its `reason` is a `timeout` {@link GatehouseClientError}.
   * Pass it to requests made under the lock, so none is sent once the lock may be someone else's.
   */
  readonly signal: AbortSignal;
}

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
  readonly #lockTimeout: number;
  readonly #staleLockAfter: number;
  readonly #heartbeatInterval: number;
  readonly #maxLockHold: number;

  constructor(dir: string = defaultConfigDir(), options: SessionStoreOptions = {}) {
    this.dir = dir;
    this.#lockTimeout = options.lockTimeout ?? 15_000;
    this.#staleLockAfter = options.staleLockAfter ?? 30_000;
    this.#heartbeatInterval = options.heartbeatInterval ?? 5_000;
    this.#maxLockHold = options.maxLockHold ?? 20_000;
  }

  /** The file of the session for `issuer` and `clientId`. */
  pathFor(issuer: string, clientId: string): string {
    return join(this.dir, sessionFileName(issuer, clientId));
  }

  /**
   * The stored session, or undefined when there is none. A file that is not a session is an
   * `invalid_configuration` error; a directory or file others can tamper with or read is an
   * `insecure_permissions` error.
   */
  async read(issuer: string, clientId: string): Promise<StoredSession | undefined> {
    if (!(await this.checkDirectory())) return undefined;
    return this.#readFile(this.pathFor(issuer, clientId));
  }

  /**
   * Checks that the directory, when it exists, belongs to this user and is not writable by group
   * or others (an `insecure_permissions` error otherwise); resolves to whether it exists.
   */
  async checkDirectory(): Promise<boolean> {
    let info: Stats;
    try {
      info = await stat(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    if (!info.isDirectory()) throw new GatehouseClientError('invalid_configuration', `the session directory ${this.dir} is not a directory`);
    checkPermissions(this.dir, info, 'directory');
    return true;
  }

  async #readFile(file: string): Promise<StoredSession | undefined> {
    let text: string;
    try {
      const handle = await open(file, 'r');
      try {
        // The owner and mode of what was opened, not of whatever the name points to a moment later.
        checkPermissions(file, await handle.stat(), 'file');
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      if (err instanceof GatehouseClientError) throw err;
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
   * The directory is created with mode 0700 when missing (an existing one others can write to is
   * refused); temporary files a crash left behind (older than a minute) are deleted.
   */
  async write(session: StoredSession): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.checkDirectory();
    await this.#removeStaleTemporaryFiles();
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

  /** Deletes `*.tmp` files of this store older than {@link STALE_TEMPORARY} (a crash between create and rename). Best effort. */
  async #removeStaleTemporaryFiles(): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => TEMPORARY_FILE.test(n))) {
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (info !== undefined && Date.now() - info.mtimeMs > STALE_TEMPORARY) await unlink(path).catch(() => undefined);
    }
  }

  /**
   * Deletes the session file; resolves to whether there was one. Works whatever the file holds
   * and whatever its mode (deleting is how a damaged or exposed session is got rid of).
   */
  async delete(issuer: string, clientId: string): Promise<boolean> {
    try {
      await unlink(this.pathFor(issuer, clientId));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Every stored session (damaged files are skipped; files others can read are an `insecure_permissions` error). */
  async list(): Promise<StoredSession[]> {
    if (!(await this.checkDirectory())) return [];
    const names = await readdir(this.dir);
    const sessions: StoredSession[] = [];
    for (const name of names.filter((n) => SESSION_FILE.test(n)).sort()) {
      const session = await this.#readFile(join(this.dir, name)).catch((err: unknown) => {
        if (err instanceof GatehouseClientError && err.code === 'insecure_permissions') throw err;
        return undefined;
      });
      if (session !== undefined) sessions.push(session);
    }
    return sessions;
  }

  /**
   * Runs `fn` holding the session's lock file, so that one process at a time refreshes (or
   * replaces, or deletes) the session.
   *
   * - The lock file is created exclusively and holds a random nonce: only its owner deletes it
   *   (the nonce is checked first), so a holder that was taken over cannot delete its successor's
   *   lock.
   * - While `fn` runs, the holder touches the file every `heartbeatInterval` (5 s) and checks the
   *   nonce is still its own; `fn` gets a {@link HeldLock} whose signal fires when the lock is lost
   *   or after `maxLockHold` (20 s).
   * - A lock file untouched for `staleLockAfter` (30 s) belongs to a dead process and is taken
   *   over: renamed away (of several waiters only one rename succeeds), checked (still that stale
   *   file? otherwise it is put back), deleted; then the waiters race to create a new one.
   *
   * Waits up to the store's `lockTimeout` (default 15 000 ms) for another process, then fails
   * with a `timeout` error. A directory others can write to is an `insecure_permissions` error.
   */
  async withLock<T>(issuer: string, clientId: string, fn: (lock: HeldLock) => Promise<T>, { signal }: LockOptions = {}): Promise<T> {
    const timeout = this.#lockTimeout;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.checkDirectory();
    const lock = `${this.pathFor(issuer, clientId)}.lock`;
    const mine = `${process.pid} ${randomBytes(16).toString('hex')}\n`;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      try {
        const handle = await open(lock, 'wx', 0o600);
        try {
          await handle.writeFile(mine);
        } finally {
          await handle.close();
        }
        break;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
        // Content first, then age: if the file is replaced in between, the age is the new file's (fresh).
        const content = await readFile(lock, 'utf8').catch(() => undefined);
        const info = await stat(lock).catch(() => undefined);
        if (content !== undefined && info !== undefined && Date.now() - info.mtimeMs > this.#staleLockAfter) {
          await this.#removeLock(lock, content, true);
          continue;
        }
        if (Date.now() > deadline) throw new GatehouseClientError('timeout', `another process holds the session lock (${lock})`);
        // Gone meanwhile (released): try again at once; held: poll.
        await sleep(content === undefined || info === undefined ? Math.random() * 5 : 25 + Math.random() * 50, signal);
      }
    }

    const controller = new AbortController();
    const stop = (message: string) => {
      if (!controller.signal.aborted) controller.abort(new GatehouseClientError('timeout', message));
    };
    const budget = setTimeout(() => stop(`the work under the session lock took longer than ${this.#maxLockHold} ms`), clampDelay(this.#maxLockHold));
    budget.unref();
    let beating = false;
    const heartbeat = setInterval(() => {
      if (beating) return;
      beating = true;
      void (async () => {
        // Gone, or someone else's nonce: lost. Could not read it (too many open files, say): next beat.
        const content = await readFile(lock, 'utf8').catch((err: unknown) => (isErrno(err, 'ENOENT') ? '' : undefined));
        if (content === undefined) return;
        if (content !== mine) return stop('the session lock was taken over by another process');
        const now = new Date();
        await utimes(lock, now, now).catch(() => undefined);
      })().finally(() => {
        beating = false;
      });
    }, clampDelay(this.#heartbeatInterval));
    heartbeat.unref();
    try {
      return await fn({ signal: controller.signal });
    } finally {
      clearTimeout(budget);
      clearInterval(heartbeat);
      await this.#removeLock(lock, mine, false).catch(() => undefined);
    }
  }

  /**
   * Deletes the lock file if it still is the one expected — holding `expected`, and (for a
   * takeover) still stale — as atomically as a file system allows: the file is first renamed to a
   * name of our own (one rename wins; the file cannot change under us after that), checked, then
   * deleted or, when it was not the expected one, linked back under the lock name (unless a new
   * lock was created meanwhile: then its owner notices at its next heartbeat).
   */
  async #removeLock(lock: string, expected: string, mustBeStale: boolean): Promise<void> {
    const taken = `${lock}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await rename(lock, taken);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    const content = await readFile(taken, 'utf8').catch(() => undefined);
    const info = await stat(taken).catch(() => undefined);
    const expectedOne = content === expected && (!mustBeStale || (info !== undefined && Date.now() - info.mtimeMs > this.#staleLockAfter));
    if (!expectedOne) {
      // Someone else's live lock: put it back without overwriting a lock created in the meantime.
      await link(taken, lock).catch(async (err: unknown) => {
        if (!isErrno(err, 'EEXIST')) await copyFile(taken, lock, fsConstants.COPYFILE_EXCL).catch(() => undefined);
      });
    }
    await unlink(taken).catch(() => undefined);
  }
}
