import type { Command } from 'commander';
import { maskConfig } from '../../config/load.js';
import { migrateToLatest } from '../../storage/database.js';
import { openConfiguredStorage } from '../../server.js';
import { configFrom, output, withStorage } from '../shared.js';
import { runJanitor } from '../../janitor.js';

export function registerAdminCommands(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const config = configFrom(command);
      const storage = openConfiguredStorage(config);
      try {
        const { applied } = await migrateToLatest(storage.handle.db);
        output(opts.json, { database: storage.handle.location, applied }, () =>
          applied.length === 0 ? 'database is up to date' : `applied: ${applied.join(', ')}`,
        );
      } finally {
        await storage.close();
      }
    });

  program
    .command('janitor')
    .description('delete expired codes, tokens, sessions and the like now (start also does it every janitor.interval)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, command: Command) => {
      await withStorage(command, async (storage, config) => {
        const report = await runJanitor(storage, config, Math.floor(Date.now() / 1000), `cli:${process.pid}`);
        if (report === undefined) {
          output(opts.json, { skipped: 'another instance is sweeping right now' });
          return;
        }
        output(opts.json, { deleted: report });
      });
    });

  program
    .command('config')
    .description('configuration')
    .command('print')
    .description('the effective configuration, secrets masked')
    .action((_opts: unknown, command: Command) => {
      process.stdout.write(`${JSON.stringify(maskConfig(configFrom(command)), null, 2)}\n`);
    });
}
