/**
 * The `gatehouse-client` command: `login`, `token`, `whoami`, `logout`. Prompts and messages go
 * to standard error; standard output carries only what a script consumes (the access token, or
 * the `--json` document, or whoami's report). Exit status: 0 success, 1 failure, 2 bad usage
 * (or a session directory or file other users can tamper with), 3 login required, 130
 * interrupted. Whatever the server said is printed with its control characters escaped.
 */
import { Command, CommanderError, Option } from 'commander';
import { GatehouseClientError, LoginRequiredError } from './errors.js';
import { CONFIG_DIR_ENV, SessionStore } from './session-store.js';
import { login, openSession, type LoginMethod, type LogoutResult, type Session, type SessionDescription, type SessionOptions } from './session.js';
import { escapeControlChars, terminalSafeJson } from './terminal.js';

/** A failure with its exit status. */
class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface CommonFlags {
  issuer?: string;
  clientId?: string;
  clientSecret?: string;
  configDir?: string;
}

/**
 * Text on standard error, its control characters escaped line by line: our own messages may span
 * lines (the list of sessions to choose from); server-supplied text in them is escaped where it is
 * put in (error descriptions by OAuthResponseError, the signed-in name below), newlines included.
 */
const write = (text: string) => process.stderr.write(`${text.split('\n').map(escapeControlChars).join('\n')}\n`);
const interrupt = new AbortController();

function commonOptions(command: Command): Command {
  return command
    .addOption(new Option('--issuer <url>', 'issuer identifier (discovery is used)').env('GATEHOUSE_ISSUER'))
    .addOption(new Option('--client-id <id>', 'client_id of this application').env('GATEHOUSE_CLIENT_ID'))
    .addOption(
      new Option('--client-secret <secret>', 'client secret of a confidential client (discouraged: prefer a public client; the environment variable keeps it out of the process list)').env(
        'GATEHOUSE_CLIENT_SECRET',
      ),
    )
    .addOption(new Option('--config-dir <dir>', 'where sessions are stored').env(CONFIG_DIR_ENV));
}

function warnAboutSecretFlag(): void {
  if (process.argv.some((arg) => arg === '--client-secret' || arg.startsWith('--client-secret='))) {
    write('warning: a secret on the command line is visible to other users of this machine; set GATEHOUSE_CLIENT_SECRET instead');
  }
}

function sessionOptions(flags: CommonFlags): SessionOptions {
  return { issuer: flags.issuer, clientId: flags.clientId, clientSecret: flags.clientSecret, configDir: flags.configDir };
}

async function open(flags: CommonFlags): Promise<Session> {
  warnAboutSecretFlag();
  return openSession(sessionOptions(flags));
}

/** A whole number of seconds from a flag, between `min` and `max` (decimal digits only: no `1e9`, `0x10` or empty string). */
const seconds = (flag: string, value: string, min: number, max: number): number => {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) throw new CliFailure(`${flag} takes a whole number of seconds from ${min} to ${max}, not ${JSON.stringify(value)}`, 2);
  return n;
};
/** The longest --timeout: a day (timers cannot go beyond 24.8 days anyway). */
const MAX_TIMEOUT = 86_400;
/** The largest --min-validity: a year. */
const MAX_MIN_VALIDITY = 31_536_000;

/** RFC 6749 Appendix A.12: `access-token = 1*VSCHAR`, VSCHAR = %x20-7E. Anything else is not printed. */
const ACCESS_TOKEN_SYNTAX = /^[\x20-\x7e]+$/;

const when = (epochSeconds: number | undefined) => (epochSeconds === undefined ? 'unknown' : new Date(epochSeconds * 1000).toISOString());

function printDescription(d: SessionDescription): void {
  // Claim names and values come from the server (userinfo) and the tokens: escaped.
  const out = (line: string) => process.stdout.write(`${escapeControlChars(line)}\n`);
  out(`issuer:     ${d.issuer}`);
  out(`client_id:  ${d.client_id}`);
  out(`scope:      ${d.scope ?? '(not stated)'}`);
  out(`expires:    ${when(d.expires_at)}`);
  const section = (title: string, claims: Record<string, unknown> | undefined) => {
    if (claims === undefined) return;
    out(`${title}:`);
    for (const [name, value] of Object.entries(claims)) out(`  ${name}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  };
  section('access token claims (not verified)', d.access_token_claims);
  section('ID token claims', d.id_token_claims);
  section('userinfo', d.userinfo);
  if (d.userinfo_error !== undefined) out(`userinfo:   unavailable (${d.userinfo_error})`);
}

/** A person's name for messages: preferred_username, email or name, the first there is. */
function displayName(claims: Record<string, unknown> | undefined): string | undefined {
  for (const name of ['preferred_username', 'email', 'name']) {
    const value = claims?.[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

const program = new Command()
  .name('gatehouse-client')
  .description('Sign in to an OAuth 2.1 / OpenID Connect server from the command line and use its tokens')
  .showHelpAfterError()
  .exitOverride();

commonOptions(program.command('login'))
  .description('sign in (device grant or browser with a loopback redirect) and store the session')
  .option('--scope <scope>', 'scopes to request, space-separated (e.g. "openid offline_access api:read")')
  .option('--resource <uri...>', 'RFC 8707 resource indicator(s): the API(s) the tokens are for')
  .addOption(new Option('--device', 'use the device authorization grant').conflicts('loopback'))
  .addOption(new Option('--loopback', 'use the browser with a redirect to 127.0.0.1'))
  .option('--no-browser', 'do not open a browser; print the URL (and code) to open by hand')
  .option('--timeout <seconds>', `how long to wait for the browser (loopback), 1 to ${MAX_TIMEOUT}`, '300')
  .option('--json', 'print the session summary as JSON on standard output')
  .action(async (flags: CommonFlags & { scope?: string; resource?: string[]; device?: boolean; loopback?: boolean; browser: boolean; timeout: string; json?: boolean }) => {
    warnAboutSecretFlag();
    if (flags.issuer === undefined || flags.clientId === undefined) throw new CliFailure('login needs --issuer and --client-id (or GATEHOUSE_ISSUER and GATEHOUSE_CLIENT_ID)', 2);
    const timeout = seconds('--timeout', flags.timeout, 1, MAX_TIMEOUT);
    const method: LoginMethod = flags.device === true ? 'device' : flags.loopback === true ? 'loopback' : 'auto';
    const outcome = await login({
      issuer: flags.issuer,
      clientId: flags.clientId,
      clientSecret: flags.clientSecret,
      configDir: flags.configDir,
      scope: flags.scope,
      resource: flags.resource,
      method,
      openBrowser: flags.browser,
      timeout: timeout * 1000,
      signal: interrupt.signal,
    });
    const { session } = outcome;
    // Who signed in, in words: from the ID token, else from userinfo (one request), else nothing.
    let who = displayName(session.id_token_claims);
    if (who === undefined && session.userinfo_endpoint !== undefined) {
      const opened = await openSession({ ...sessionOptions(flags), issuer: session.issuer, clientId: session.client_id });
      who = displayName((await opened.describe({ signal: interrupt.signal }).catch(() => undefined))?.userinfo);
    }
    const sub = session.id_token_claims?.sub;
    who ??= typeof sub === 'string' ? sub : undefined;
    write(`Signed in to ${session.issuer}${who === undefined ? '' : ` as ${escapeControlChars(who)}`} (${outcome.method}). Session saved to ${outcome.file}`);
    for (const failure of outcome.replaced?.revoked ?? []) {
      if (failure.error !== undefined) write(`warning: the session this login replaced could not be revoked: ${failure.error.message}`);
    }
    if (flags.json === true) {
      const { issuer, client_id, scope, expires_at } = session;
      process.stdout.write(`${terminalSafeJson({ issuer, client_id, scope, expires_at, method: outcome.method, file: outcome.file })}\n`);
    }
  });

commonOptions(program.command('token'))
  .description('print a valid access token (refreshed when needed): curl -H "Authorization: Bearer $(gatehouse-client token)"')
  .option('--min-validity <seconds>', 'refresh when the token has less than this left', '60')
  .action(async (flags: CommonFlags & { minValidity: string }) => {
    const minValidity = seconds('--min-validity', flags.minValidity, 0, MAX_MIN_VALIDITY);
    const session = await open(flags);
    const token = await session.getToken({ minValidity, signal: interrupt.signal });
    if (!ACCESS_TOKEN_SYNTAX.test(token)) throw new GatehouseClientError('invalid_response', 'the access token is not printable (RFC 6749 A.12: 1*VSCHAR); not printing it');
    process.stdout.write(`${token}\n`);
  });

commonOptions(program.command('whoami'))
  .description('show who is signed in: access token claims, ID token claims and userinfo')
  .option('--json', 'print JSON on standard output')
  .action(async (flags: CommonFlags & { json?: boolean }) => {
    const session = await open(flags);
    const description = await session.describe({ signal: interrupt.signal });
    if (flags.json === true) process.stdout.write(`${terminalSafeJson(description, 2)}\n`);
    else printDescription(description);
  });

commonOptions(program.command('logout'))
  .description('revoke the session at the server and delete it')
  .option('--json', 'print the outcome as JSON on standard output')
  .action(async (flags: CommonFlags & { json?: boolean }) => {
    let result: LogoutResult;
    let nothingRevoked = false;
    try {
      const session = await open(flags);
      result = await session.logout({ signal: interrupt.signal });
    } catch (err) {
      // A session that cannot be opened (a damaged file) is still deleted when named: nothing can be revoked.
      const { issuer, clientId } = flags;
      if (!(err instanceof GatehouseClientError && err.code === 'invalid_configuration') || issuer === undefined || clientId === undefined) throw err;
      const store = new SessionStore(flags.configDir);
      const deleted = await store.delete(issuer, clientId);
      if (!deleted) throw err;
      nothingRevoked = true;
      result = {
        issuer,
        client_id: clientId,
        file: store.pathFor(issuer, clientId),
        deleted,
        revocationSupported: false,
        revoked: [],
        warnings: [`${err.message}; deleted it without revoking anything`],
      };
    }
    const failures = result.revoked.filter((r) => r.error !== undefined);
    if (flags.json === true) {
      const revoked = result.revoked.map((r) => ({ token_type_hint: r.token_type_hint, ok: r.error === undefined, ...(r.error === undefined ? {} : { error: r.error.code }) }));
      process.stdout.write(
        `${terminalSafeJson({ issuer: result.issuer, client_id: result.client_id, deleted: result.deleted, revocation_supported: result.revocationSupported, revoked, warnings: result.warnings })}\n`,
      );
    }
    for (const warning of result.warnings) write(`warning: ${warning}`);
    for (const failure of failures) write(`warning: ${failure.error?.message ?? ''}`);
    if (!result.revocationSupported && !nothingRevoked) write('warning: the server has no revocation endpoint; the tokens stay valid until they expire');
    write(`Deleted the session file ${result.file}${failures.length === 0 && result.revocationSupported ? ' (tokens revoked at the server)' : ''}.`);
    if (failures.length > 0 || nothingRevoked) {
      throw new CliFailure('the session was deleted here but its tokens could not all be revoked at the server', 1);
    }
  });

process.once('SIGINT', () => {
  interrupt.abort();
  process.exitCode = 130;
  // The command stops waiting at once, but the process lives until a token refresh already sent
  // has been answered and saved (at most the lock's 20 s): killed in between, the rotated refresh
  // token would be lost with the session. A second Ctrl-C quits at once.
  process.once('SIGINT', () => process.exit(130));
  setTimeout(() => process.exit(130), 45_000).unref();
});

function exitCodeOf(err: unknown): number {
  if (err instanceof CliFailure) return err.exitCode;
  if (err instanceof LoginRequiredError) return 3;
  if (err instanceof GatehouseClientError) {
    // 130 only for an interruption by the user: any other `aborted` is a failure.
    if (err.code === 'aborted' && interrupt.signal.aborted) return 130;
    if (err.code === 'invalid_configuration' || err.code === 'ambiguous_session' || err.code === 'insecure_permissions') return 2;
  }
  return 1;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const code = exitCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    write(`gatehouse-client: ${message}`);
    if (code === 3) write('Run `gatehouse-client login` to sign in.');
    process.exitCode = code;
  }
}
