import type { Command } from 'commander';
import type { Storage } from '../../storage/storage.js';
import { InvalidUsernameError, looksLikeUserId, UsernameTakenError, usernameProblem, type User } from '../../storage/repositories/user-repository.js';
import { hashPassword, passwordPolicyProblem } from '../../users/passwords.js';
import { CliError, isoTime, now, output, table, withStorage } from '../shared.js';

/**
 * `gatehouse users …`: local accounts. A password is read from standard input (its first line)
 * when that is not a terminal, or typed twice at a hidden prompt when it is; never from an
 * argument (arguments end up in shell history and process listings). Nothing prints a password
 * or a hash.
 */

const MAX_STDIN_LINE_BYTES = 16 * 1024;

function describe(user: User, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    user_id: user.userId,
    username: user.username,
    email: user.email,
    email_verified: user.emailVerified,
    name: user.name,
    has_password: user.hasPassword,
    disabled: user.disabled,
    created_at: isoTime(user.createdAt),
    updated_at: isoTime(user.updatedAt),
    ...extra,
  };
}

/** A user by id (32 hex digits; usernames can never have that shape) or by username. */
async function requireUser(storage: Storage, ref: string): Promise<User> {
  const user = looksLikeUserId(ref) ? await storage.users.findUserById(ref) : await storage.users.findUserByUsername(ref);
  if (!user) throw new CliError(`no user ${ref}`);
  return user;
}

function checkEmail(email: string): void {
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/u.test(email)) throw new CliError(`not an email address: ${email}`, 2);
}

/** The first line of standard input (without its line ending), reading no further than needed. */
async function readFirstLine(input: NodeJS.ReadStream): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let done = false;
    const finish = (line: string | undefined, err?: Error) => {
      if (done) return;
      done = true;
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      const newline = buffer.indexOf(0x0a);
      chunks.push(newline === -1 ? buffer : buffer.subarray(0, newline));
      length += newline === -1 ? buffer.length : newline;
      if (length > MAX_STDIN_LINE_BYTES) finish(undefined, new CliError('the password on standard input is too long', 2));
      else if (newline !== -1) finish(text());
    };
    const onEnd = () => finish(length === 0 && chunks.length === 0 ? undefined : text());
    const onError = (err: Error) => finish(undefined, err);
    const text = () => Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.resume();
  });
}

/** Keys typed ahead of the next hidden prompt (both answers pasted at once). */
let typedAhead = '';

/** Reads a line at the terminal without echoing it. */
async function promptHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  // Echo off before the prompt shows, so nothing typed in response is ever echoed.
  input.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    let finished = false;
    const finish = (err?: Error) => {
      finished = true;
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      const chars = [...chunk];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i] ?? '';
        if (ch === '\r' || ch === '\n') {
          typedAhead = chars.slice(i + 1).join('');
          return finish();
        }
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) return finish(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch === '\u0015') value = '';
        else if (ch >= ' ') value += ch;
      }
    };
    input.setEncoding('utf8');
    const ahead = typedAhead;
    typedAhead = '';
    if (ahead !== '') onData(ahead);
    if (finished) return;
    input.on('data', onData);
    input.resume();
  });
}

/**
 * A new password: the first line of standard input when it is not a terminal, else typed twice
 * at a hidden prompt. Checked against the policy; the reason is printed, never the password.
 */
async function readNewPassword(username: string): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await promptHidden('New password: ');
    const problem = passwordPolicyProblem(password, { username });
    if (problem !== undefined) throw new CliError(`password ${problem}`, 2);
    if ((await promptHidden('Repeat the password: ')) !== password) throw new CliError('the passwords do not match', 2);
  } else {
    const line = await readFirstLine(process.stdin);
    if (line === undefined || line === '') throw new CliError('no password on standard input (give its first line, or use --no-password)', 2);
    password = line;
  }
  const problem = passwordPolicyProblem(password, { username });
  if (problem !== undefined) throw new CliError(`password ${problem}`, 2);
  return password;
}

interface CreateOptions {
  username: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  password: boolean;
  json?: boolean;
}

export function registerUserCommands(program: Command): void {
  const users = program.command('users').description('manage local user accounts');

  users
    .command('create')
    .description('create a user; the password is read from standard input or a hidden prompt, never from an argument')
    .requiredOption('--username <username>', 'the name the user signs in with (compared without regard to case or width)')
    .option('--email <email>', 'email address')
    .option('--email-verified', 'the email address is known to belong to the user')
    .option('--name <name>', 'display name')
    .option('--no-password', 'create the user without a password (cannot sign in until set-password)')
    .option('--json', 'machine-readable output')
    .action(async (opts: CreateOptions, command: Command) => {
      const problem = usernameProblem(opts.username);
      if (problem !== undefined) throw new CliError(`username ${problem}`, 2);
      if (opts.email !== undefined) checkEmail(opts.email);
      if (opts.emailVerified && opts.email === undefined) throw new CliError('--email-verified needs --email', 2);
      await withStorage(command, async (storage) => {
        if (await storage.users.findUserByUsername(opts.username)) throw new CliError(`username ${opts.username} is already taken`);
        const passwordHash = opts.password ? await hashPassword(await readNewPassword(opts.username)) : null;
        try {
          const user = await storage.users.createUser(
            { username: opts.username, email: opts.email ?? null, emailVerified: opts.emailVerified === true, name: opts.name ?? null },
            passwordHash,
            now(),
          );
          output(opts.json, describe(user));
        } catch (err) {
          if (err instanceof UsernameTakenError) throw new CliError(`username ${opts.username} is already taken`);
          if (err instanceof InvalidUsernameError) throw new CliError(err.message, 2);
          throw err;
        }
      });
    });

  users
    .command('list')
    .description('every local user')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const list = await storage.users.listUsers();
        if (opts.json) {
          output(true, { users: list.map((u) => describe(u)) });
          return;
        }
        process.stdout.write(
          `${table(
            list.map((u) => ({
              user_id: u.userId,
              username: u.username,
              email: u.email === null ? '' : `${u.email}${u.emailVerified ? '' : ' (unverified)'}`,
              name: u.name ?? '',
              password: u.hasPassword ? 'set' : 'none',
              status: u.disabled ? 'disabled' : 'enabled',
              created: isoTime(u.createdAt),
            })),
          )}\n`,
        );
      });
    });

  users
    .command('show <user>')
    .description('one user, by username or user id')
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage, config) => {
        const user = await requireUser(storage, ref);
        const sessions = await storage.sessions.countSessionsOfUser(user.userId, now(), config.sessions.idleTimeout);
        output(opts.json, describe(user, { active_sessions: sessions }));
      });
    });

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    users
      .command(`${name} <user>`)
      .description(disabled ? 'stop the user from signing in and end their browser sessions' : 'allow a disabled user to sign in again')
      .option('--json', 'machine-readable output')
      .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
        await withStorage(command, async (storage) => {
          const user = await requireUser(storage, ref);
          if (!(await storage.users.setUserDisabled(user.userId, disabled, now()))) throw new CliError(`no user ${ref}`);
          output(opts.json, { user_id: user.userId, username: user.username, disabled });
        });
      });
  }

  users
    .command('delete <user>')
    .description('delete a user and their browser sessions')
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const user = await requireUser(storage, ref);
        if (!(await storage.users.deleteUser(user.userId))) throw new CliError(`no user ${ref}`);
        output(opts.json, { user_id: user.userId, username: user.username, deleted: true });
      });
    });

  users
    .command('set-password <user>')
    .description('set a new password (standard input or a hidden prompt) and end the user\'s browser sessions')
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const user = await requireUser(storage, ref);
        const passwordHash = await hashPassword(await readNewPassword(user.username));
        if (!(await storage.users.setPasswordHash(user.userId, passwordHash, now()))) throw new CliError(`no user ${ref}`);
        output(opts.json, { user_id: user.userId, username: user.username, password_set: true, sessions_ended: true });
      });
    });
}
