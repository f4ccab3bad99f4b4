#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerAdminCommands } from './commands/admin.js';
import { registerClientCommands } from './commands/clients.js';
import { registerGrantCommands } from './commands/grants.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerRegistrationTokenCommands } from './commands/registration-tokens.js';
import { registerResourceCommands } from './commands/resources.js';
import { registerStartCommand } from './commands/start.js';
import { registerUserCommands } from './commands/users.js';
import { CliError } from './shared.js';
import { ConfigError } from '../config/load.js';

const program = new Command()
  .name('gatehouse')
  .description('Gatehouse: an OAuth 2.1 and OpenID Connect authorization server')
  .option('-c, --config <file>', 'configuration file (default: ./gatehouse.config.json when present)')
  .showHelpAfterError()
  .exitOverride();

registerStartCommand(program);
registerAdminCommands(program);
registerClientCommands(program);
registerResourceCommands(program);
registerRegistrationTokenCommands(program);
registerKeyCommands(program);
registerUserCommands(program);
registerGrantCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof CliError) {
    process.stderr.write(`gatehouse: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    process.stderr.write(`gatehouse: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
