import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, randomToken } from '../../src/tokens/random.js';
import { verifyPassword } from '../../src/users/passwords.js';
import { cleanEnv, killChild } from '../helpers/processes.js';

/**
 * `gatehouse users …` as an administrator runs it: `node packages/server/bin/gatehouse.js`
 * as a child process on a throwaway SQLite data directory, passwords through standard input
 * (and, where `script` can give the command a terminal, through the hidden prompt). The built
 * CLI is needed: `npm run build -w @gatehouse/server` (`npm test` builds first).
 */

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/gatehouse.js');
const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');
const COMMAND_TIMEOUT_MS = 20_000;
const HASH_PREFIX = '$argon2id$v=19$m=19456,t=2,p=1$';

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
let work: string;
let dataDir: string;
/** Every password used here: none may ever appear in output or in the database files. */
const passwords: string[] = [];

function newPassword(label: string): string {
  const password = `${label}-${randomBytes(9).toString('base64url')}`;
  passwords.push(password);
  return password;
}

/** A clean environment (helpers/processes.ts) for this test's data directory. */
function childEnv(): NodeJS.ProcessEnv {
  return { ...cleanEnv(), GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_LOG_LEVEL: 'warn' };
}

function stop(child: ChildProcess): void {
  killChild(child);
  children.delete(child);
}

/** Runs a spawned command to its end, feeding `stdin` (undefined: standard input at end of file). */
async function runProcess(file: string, args: string[], stdin: string | undefined, onOutput?: (all: string, child: ChildProcess) => void): Promise<RunResult> {
  const child = spawn(file, args, { cwd: work, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    onOutput?.(stdout + stderr, child);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    onOutput?.(stdout + stderr, child);
  });
  if (stdin !== undefined) child.stdin?.write(stdin);
  if (onOutput === undefined) child.stdin?.end();
  const timer = setTimeout(() => stop(child), COMMAND_TIMEOUT_MS);
  try {
    const status = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('close', (code) => done(code));
    });
    return { status, stdout, stderr };
  } finally {
    clearTimeout(timer);
    stop(child);
  }
}

/** `gatehouse ARGS` with `stdin` on standard input. */
function gatehouse(args: string[], stdin?: string): Promise<RunResult> {
  return runProcess(process.execPath, [BIN, ...args], stdin);
}

async function gatehouseJson<T = Record<string, unknown>>(args: string[], stdin?: string): Promise<T> {
  const result = await gatehouse([...args, '--json'], stdin);
  if (result.status !== 0) throw new Error(`gatehouse ${args.join(' ')} → ${String(result.status)}\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

function expectNoPassword(result: RunResult): void {
  for (const p of passwords) {
    expect(result.stdout).not.toContain(p);
    expect(result.stderr).not.toContain(p);
  }
  expect(result.stdout).not.toContain('$argon2');
  expect(result.stderr).not.toContain('$argon2');
}

function openDb(readonly = true): Database.Database {
  return new Database(join(dataDir, 'gatehouse.db'), { readonly, fileMustExist: true });
}

function storedHash(username: string): string | null | undefined {
  const db = openDb();
  try {
    const row = db.prepare('select password_hash from users where username = ?').get(username) as { password_hash: string | null } | undefined;
    return row?.password_hash;
  } finally {
    db.close();
  }
}

interface UserJson {
  user_id: string;
  username: string;
  email: string | null;
  email_verified: boolean;
  name: string | null;
  has_password: boolean;
  disabled: boolean;
  active_sessions?: number;
}

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

beforeAll(() => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} does not exist: build the server first with \`npm run build -w @gatehouse/server\` (\`npm test\` does this before vitest)`);
  }
  work = mkdtempSync(join(tmpdir(), 'gatehouse-users-cli-'));
  dataDir = join(work, 'data');
});

afterAll(() => {
  for (const child of [...children]) stop(child);
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

describe('gatehouse users', { timeout: 60_000 }, () => {
  let alice: UserJson;
  const alicePassword = newPassword('alice');

  it('create reads the password from standard input and stores only an argon2id hash', async () => {
    const result = await gatehouse(['users', 'create', '--username', 'Alice', '--email', 'alice@example.com', '--email-verified', '--name', 'Alice Liddell', '--json'], `${alicePassword}\nsecond line ignored\n`);
    expect(result.status).toBe(0);
    expectNoPassword(result);
    alice = JSON.parse(result.stdout) as UserJson;
    expect(alice).toMatchObject({ username: 'Alice', email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', has_password: true, disabled: false });
    expect(alice.user_id).toMatch(/^[0-9a-f]{32}$/);
    expect(Object.keys(alice).some((k) => k.includes('hash'))).toBe(false);

    const stored = storedHash('Alice');
    expect(stored?.startsWith(HASH_PREFIX)).toBe(true);
    expect(await verifyPassword(stored ?? '', alicePassword)).toBe(true);
    // Only the first line is the password.
    expect(await verifyPassword(stored ?? '', `${alicePassword}\nsecond line ignored`)).toBe(false);
  });

  it('a password line ending in CRLF loses only the line ending', async () => {
    const password = newPassword('  spaced  ');
    const result = await gatehouse(['users', 'create', '--username', 'crlf-user', '--json'], `${password}\r\n`);
    expect(result.status).toBe(0);
    expectNoPassword(result);
    expect(await verifyPassword(storedHash('crlf-user') ?? '', password)).toBe(true);
  });

  it('refuses a password argument, an empty standard input and a weak password, without echoing it', async () => {
    const asArgument = newPassword('argument');
    const argument = await gatehouse(['users', 'create', '--username', 'bob', '--password', asArgument]);
    expect(argument.status).toBe(2);
    expect(argument.stderr).toContain("unknown option '--password'");

    const empty = await gatehouse(['users', 'create', '--username', 'bob']);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain('no password on standard input');

    const blankLine = await gatehouse(['users', 'create', '--username', 'bob'], '\n');
    expect(blankLine.status).toBe(2);

    passwords.push('short-1');
    const short = await gatehouse(['users', 'create', '--username', 'bob'], 'short-1\n');
    expect(short.status).toBe(2);
    expect(short.stderr).toContain('password must be at least 8 characters');
    expectNoPassword(short);

    passwords.push('bob-the-builder');
    const sameAsUsername = await gatehouse(['users', 'create', '--username', 'Bob-The-Builder'], 'bob-the-builder\n');
    expect(sameAsUsername.status).toBe(2);
    expect(sameAsUsername.stderr).toContain('must not be the username');
    expectNoPassword(sameAsUsername);

    const spaces = await gatehouse(['users', 'create', '--username', 'bob'], '           \n');
    expect(spaces.status).toBe(2);
    expect(spaces.stderr).toContain('white space');

    // None of these created anything.
    const list = await gatehouseJson<{ users: UserJson[] }>(['users', 'list']);
    expect(list.users.map((u) => u.username)).toEqual(['Alice', 'crlf-user']);
  });

  it('refuses a taken username (compared without case or width) and a bad username or email', async () => {
    const again = newPassword('again');
    const taken = await gatehouse(['users', 'create', '--username', 'ＡＬＩＣＥ'], `${again}\n`);
    expect(taken.status).toBe(1);
    expect(taken.stderr).toContain('already taken');
    expectNoPassword(taken);

    const badName = await gatehouse(['users', 'create', '--username', ' padded', '--no-password']);
    expect(badName.status).toBe(2);
    expect(badName.stderr).toContain('username must not start or end with white space');

    const idShaped = await gatehouse(['users', 'create', '--username', 'ab'.repeat(16), '--no-password']);
    expect(idShaped.status).toBe(2);

    const badEmail = await gatehouse(['users', 'create', '--username', 'bob', '--email', 'not an email', '--no-password']);
    expect(badEmail.status).toBe(2);
    expect(badEmail.stderr).toContain('not an email address');
  });

  it('--no-password creates a user who cannot sign in yet, without reading standard input', async () => {
    const carol = await gatehouseJson<UserJson>(['users', 'create', '--username', 'carol', '--no-password'], 'this-is-not-read\n');
    expect(carol).toMatchObject({ username: 'carol', has_password: false, email: null, email_verified: false });
    expect(storedHash('carol')).toBeNull();
  });

  it('list and show, by username or user id; an unknown user is status 1', async () => {
    const list = await gatehouseJson<{ users: UserJson[] }>(['users', 'list']);
    expect(list.users.map((u) => u.username).sort()).toEqual(['Alice', 'carol', 'crlf-user']);
    const human = await gatehouse(['users', 'list']);
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/^user_id\s+username\s+email/);
    expect(human.stdout).toContain(alice.user_id);
    expectNoPassword(human);

    const byName = await gatehouseJson<UserJson>(['users', 'show', 'alice']);
    const byId = await gatehouseJson<UserJson>(['users', 'show', alice.user_id]);
    expect(byName).toEqual(byId);
    expect(byName).toMatchObject({ ...alice, active_sessions: 0 });

    const unknown = await gatehouse(['users', 'show', 'nobody']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('no user nobody');
    expect((await gatehouse(['users', 'show', 'f'.repeat(32)])).status).toBe(1);
  });

  it('disable ends the sessions; enable allows sign-in again', async () => {
    const sessionHash = insertSession(alice.user_id);
    expect((await gatehouseJson<UserJson>(['users', 'show', 'alice'])).active_sessions).toBe(1);
    expect(await gatehouseJson(['users', 'disable', 'alice'])).toEqual({ user_id: alice.user_id, username: 'Alice', disabled: true });
    expect(sessionExists(sessionHash)).toBe(false);
    expect((await gatehouseJson<UserJson>(['users', 'show', alice.user_id])).disabled).toBe(true);
    expect(await gatehouseJson(['users', 'enable', alice.user_id])).toEqual({ user_id: alice.user_id, username: 'Alice', disabled: false });
    expect((await gatehouseJson<UserJson>(['users', 'show', 'alice'])).disabled).toBe(false);
    expect((await gatehouse(['users', 'disable', 'nobody'])).status).toBe(1);
  });

  it('set-password replaces the hash from standard input and ends the browser sessions', async () => {
    const before = storedHash('Alice');
    const sessionHash = insertSession(alice.user_id);
    const next = newPassword('alice-next');
    const result = await gatehouse(['users', 'set-password', 'ALICE', '--json'], `${next}\n`);
    expect(result.status).toBe(0);
    expectNoPassword(result);
    expect(JSON.parse(result.stdout)).toEqual({ user_id: alice.user_id, username: 'Alice', password_set: true, sessions_ended: true });
    const after = storedHash('Alice') ?? '';
    expect(after).not.toBe(before);
    expect(after.startsWith(HASH_PREFIX)).toBe(true);
    expect(await verifyPassword(after, next)).toBe(true);
    expect(await verifyPassword(after, alicePassword)).toBe(false);
    expect(sessionExists(sessionHash)).toBe(false);

    // A weak new password changes nothing.
    passwords.push('tiny-pw');
    const weak = await gatehouse(['users', 'set-password', 'alice'], 'tiny-pw\n');
    expect(weak.status).toBe(2);
    expect(storedHash('Alice')).toBe(after);

    // A user created without a password gets one.
    const carolPassword = newPassword('carol');
    expect((await gatehouse(['users', 'set-password', 'carol'], `${carolPassword}\n`)).status).toBe(0);
    expect((await gatehouseJson<UserJson>(['users', 'show', 'carol'])).has_password).toBe(true);
    expect((await gatehouse(['users', 'set-password', 'nobody'], `${newPassword('x')}\n`)).status).toBe(1);
  });

  it.skipIf(!hasScript)('on a terminal, asks twice at a hidden prompt and refuses a mismatch', async () => {
    const password = newPassword('typed');
    const command = (args: string) => `'${process.execPath}' '${BIN}' ${args}`;
    const answer = (answers: string[]) => {
      let asked = 0;
      return (all: string, child: ChildProcess) => {
        const prompts = (all.match(/New password: |Repeat the password: /g) ?? []).length;
        while (asked < prompts) {
          child.stdin?.write(`${answers[asked] ?? ''}\r`);
          asked++;
        }
      };
    };
    // util-linux `script` runs the command on a pseudo-terminal: stdin is a TTY there.
    const ok = await runProcess('script', ['-qec', command('users create --username dana --json'), '/dev/null'], undefined, answer([password, password]));
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('New password: ');
    expect(ok.stdout).toContain('Repeat the password: ');
    expectNoPassword(ok);
    expect(await verifyPassword(storedHash('dana') ?? '', password)).toBe(true);

    const mismatch = await runProcess('script', ['-qec', command('users create --username erin'), '/dev/null'], undefined, answer([password, `${password}x`]));
    expect(mismatch.status).toBe(2);
    expect(mismatch.stdout).toContain('the passwords do not match');
    expectNoPassword(mismatch);
    expect(storedHash('erin')).toBeUndefined();
  });

  it('delete removes the user and their sessions', async () => {
    const sessionHash = insertSession(alice.user_id);
    expect(await gatehouseJson(['users', 'delete', 'alice'])).toEqual({ user_id: alice.user_id, username: 'Alice', deleted: true });
    expect(sessionExists(sessionHash)).toBe(false);
    expect((await gatehouse(['users', 'show', 'alice'])).status).toBe(1);
    expect((await gatehouse(['users', 'delete', 'alice'])).status).toBe(1);
  });

  it('no password appears anywhere in the database files', () => {
    const files = readdirSync(dataDir).filter((f) => f.startsWith('gatehouse.db'));
    expect(files).toContain('gatehouse.db');
    const bytes = Buffer.concat(files.map((f) => readFileSync(join(dataDir, f))));
    for (const p of passwords) {
      expect(bytes.includes(Buffer.from(p, 'utf8'))).toBe(false);
      expect(bytes.includes(Buffer.from(p, 'utf16le'))).toBe(false);
    }
    // The hashes are there (so the search above would have found a clear-text column).
    expect(bytes.includes(Buffer.from(HASH_PREFIX, 'utf8'))).toBe(true);
  });
});

/** A browser session row as the login pages would store it; returns its digest. */
function insertSession(userId: string): string {
  const db = openDb(false);
  try {
    const now = Math.floor(Date.now() / 1000);
    const sessionHash = sha256(randomToken());
    db.prepare(
      'insert into browser_sessions (session_hash, sid, user_id, auth_time, amr, acr, created_at, last_seen_at, expires_at) values (?, ?, ?, ?, ?, null, ?, ?, ?)',
    ).run(sessionHash, randomToken(), userId, now, '["pwd"]', now, now, now + 3600);
    return sessionHash;
  } finally {
    db.close();
  }
}

function sessionExists(sessionHash: string): boolean {
  const db = openDb();
  try {
    return db.prepare('select 1 from browser_sessions where session_hash = ?').get(sessionHash) !== undefined;
  } finally {
    db.close();
  }
}
