import type { Command } from 'commander';
import { parseScope } from '../../protocol/scope.js';
import { randomToken, sha256 } from '../../tokens/random.js';
import { CliError, durationOption, isoTime, now, output, withStorage } from '../shared.js';

export function registerRegistrationTokenCommands(program: Command): void {
  const tokens = program.command('registration-tokens').description('initial access tokens for dynamic client registration (RFC 7591)');
  tokens
    .command('create')
    .description('create an initial access token; printed once, stored as a digest')
    .option('--scope <scopes>', 'space-separated scopes clients registered with it may have', '')
    .option('--expires-in <duration>', 'lifetime (e.g. 1d)', durationOption, 86400)
    .option('--max-uses <n>', 'how many registrations it allows (default: unlimited until expiry)')
    .option('--description <text>', 'what it is for')
    .option('--json', 'machine-readable output')
    .action(async (opts: { scope: string; expiresIn: number; maxUses?: string; description?: string; json?: boolean }, command: Command) => {
      const scope = opts.scope.trim() === '' ? [] : parseScope(opts.scope.trim().replace(/\s+/g, ' '));
      if (scope === null) throw new CliError('--scope is malformed', 2);
      const maxUses = opts.maxUses === undefined ? null : Number(opts.maxUses);
      if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses < 1)) throw new CliError('--max-uses must be a positive whole number', 2);
      if (opts.expiresIn < 1) throw new CliError('--expires-in must be positive', 2);
      await withStorage(command, async (storage, config) => {
        const at = now();
        const token = randomToken();
        await storage.initialAccessTokens.createInitialAccessToken(sha256(token), {
          description: opts.description ?? null,
          scope,
          createdAt: at,
          expiresAt: at + opts.expiresIn,
          maxUses,
        });
        output(opts.json, {
          initial_access_token: token,
          registration_endpoint: `${config.issuer}/register`,
          scope: scope.join(' '),
          expires_at: isoTime(at + opts.expiresIn),
          max_uses: maxUses ?? 'unlimited',
        });
        if (!opts.json) process.stderr.write('\nThe token is shown only this once. Send it as "Authorization: Bearer <token>" to the registration endpoint.\n');
      });
    });
}
