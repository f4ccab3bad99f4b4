/**
 * The `gatehouse-client` command: `login`, `token`, `whoami`, `logout`. Prompts and messages go
 * to standard error; standard output carries only what a script consumes (the access token, or
 * the `--json` document, or whoami's report). Exit status: 0 success, 1 failure, 2 bad usage,
 * 3 login required, 130 interrupted.
 */
import { Command, CommanderError, Option } from 'commander';
import { GatehouseClientError, LoginRequiredError } from './errors.js';
import { CONFIG_DIR_ENV } from './session-store.js';
import { login, openSession, type LoginMethod, type Session, type SessionDescription, type SessionOptions } from './session.js';

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

const write = (line: string) => process.stderr.write(`${line}\n`);
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

const seconds = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new CliFailure(`not a number of seconds: ${value}`, 2);
  return n;
};

const when = (epochSeconds: number | undefined) => (epochSeconds === undefined ? 'unknown' : new Date(epochSeconds * 1000).toISOString());

function printDescription(d: SessionDescription): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
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
  .option('--timeout <seconds>', 'how long to wait for the browser (loopback)', '300')
  .option('--json', 'print the session summary as JSON on standard output')
  .action(async (flags: CommonFlags & { scope?: string; resource?: string[]; device?: boolean; loopback?: boolean; browser: boolean; timeout: string; json?: boolean }) => {
    warnAboutSecretFlag();
    if (flags.issuer === undefined || flags.clientId === undefined) throw new CliFailure('login needs --issuer and --client-id (or GATEHOUSE_ISSUER and GATEHOUSE_CLIENT_ID)', 2);
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
      timeout: seconds(flags.timeout) * 1000,
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
    write(`Signed in to ${session.issuer}${who === undefined ? '' : ` as ${who}`} (${outcome.method}). Session saved to ${outcome.file}`);
    if (flags.json === true) {
      const { issuer, client_id, scope, expires_at } = session;
      process.stdout.write(`${JSON.stringify({ issuer, client_id, scope, expires_at, method: outcome.method, file: outcome.file })}\n`);
    }
  });

commonOptions(program.command('token'))
  .description('print a valid access token (refreshed when needed): curl -H "Authorization: Bearer $(gatehouse-client token)"')
  .option('--min-validity <seconds>', 'refresh when the token has less than this left', '60')
  .action(async (flags: CommonFlags & { minValidity: string }) => {
    const session = await open(flags);
    const token = await session.getToken({ minValidity: seconds(flags.minValidity), signal: interrupt.signal });
    process.stdout.write(`${token}\n`);
  });

commonOptions(program.command('whoami'))
  .description('show who is signed in: access token claims, ID token claims and userinfo')
  .option('--json', 'print JSON on standard output')
  .action(async (flags: CommonFlags & { json?: boolean }) => {
    const session = await open(flags);
    const description = await session.describe({ signal: interrupt.signal });
    if (flags.json === true) process.stdout.write(`${JSON.stringify(description, null, 2)}\n`);
    else printDescription(description);
  });

commonOptions(program.command('logout'))
  .description('revoke the session at the server and delete it')
  .option('--json', 'print the outcome as JSON on standard output')
  .action(async (flags: CommonFlags & { json?: boolean }) => {
    const session = await open(flags);
    const result = await session.logout({ signal: interrupt.signal });
    const failures = result.revoked.filter((r) => r.error !== undefined);
    if (flags.json === true) {
      const revoked = result.revoked.map((r) => ({ token_type_hint: r.token_type_hint, ok: r.error === undefined, ...(r.error === undefined ? {} : { error: r.error.code }) }));
      process.stdout.write(`${JSON.stringify({ issuer: result.issuer, client_id: result.client_id, deleted: result.deleted, revocation_supported: result.revocationSupported, revoked })}\n`);
    }
    for (const failure of failures) write(`warning: ${failure.error?.message ?? ''}`);
    if (!result.revocationSupported) write('warning: the server has no revocation endpoint; the tokens stay valid until they expire');
    write(`Deleted the session file ${result.file}${failures.length === 0 && result.revocationSupported ? ' (tokens revoked at the server)' : ''}.`);
    if (failures.length > 0) throw new CliFailure('the session was deleted here but the server could not revoke every token', 1);
  });

process.once('SIGINT', () => {
  interrupt.abort();
  process.exitCode = 130;
  // Whatever does not watch the signal (a lock wait) gets two seconds; session files are replaced atomically.
  setTimeout(() => process.exit(130), 2_000).unref();
});

function exitCodeOf(err: unknown): number {
  if (err instanceof CliFailure) return err.exitCode;
  if (err instanceof LoginRequiredError) return 3;
  if (err instanceof GatehouseClientError) {
    if (err.code === 'aborted') return 130;
    if (err.code === 'invalid_configuration' || err.code === 'ambiguous_session') return 2;
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
