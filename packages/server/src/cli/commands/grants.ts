import type { Command } from 'commander';
import { CliError, isoTime, now, output, table, withStorage } from '../shared.js';

export function registerGrantCommands(program: Command): void {
  const grants = program.command('grants').description('consent records: which user let which client do what');

  grants
    .command('list')
    .description('grants, optionally of one user or one client')
    .option('--user <user_id>', 'only this user')
    .option('--client <client_id>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (opts: { user?: string; client?: string; json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        const list = await storage.grants.listGrants({
          ...(opts.user === undefined ? {} : { userId: opts.user }),
          ...(opts.client === undefined ? {} : { clientId: opts.client }),
        });
        const rows = list.map((g) => ({
          grant_id: g.grantId,
          user_id: g.userId,
          client_id: g.clientId,
          client_name: g.clientName,
          scope: g.scope.join(' '),
          resources: g.resources,
          created_at: isoTime(g.createdAt),
          last_used_at: isoTime(g.lastUsedAt),
        }));
        if (opts.json) return output(true, { grants: rows });
        process.stdout.write(`${table(rows.map((r) => ({ ...r, client_name: r.client_name ?? '', resources: r.resources.join(' ') })))}\n`);
      });
    });

  grants
    .command('revoke <grant_id>')
    .description('revoke a grant: its refresh tokens stop working and its access tokens introspect inactive')
    .option('--json', 'machine-readable output')
    .action(async (grantId: string, opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage) => {
        if (!(await storage.grants.revokeGrant(grantId, now()))) throw new CliError(`no grant ${grantId}`);
        output(opts.json, { grant_id: grantId, revoked: true });
      });
    });
}
