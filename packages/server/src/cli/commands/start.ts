import type { Command } from 'commander';
import { createAuthorizationServer } from '../../server.js';
import { configFrom } from '../shared.js';
import { sqliteFile } from '../../server.js';
import { DEVICE_CODE_GRANT_TYPE } from '../../model.js';

/**
 * The longest a graceful shutdown may take. Requests finish well within it: receiving one is
 * bounded by http.requestTimeout (10 s), its database work by the pool's connection (5 s) and
 * statement (10 s) timeouts.
 */
const SHUTDOWN_GRACE_MS = 30_000;

function banner(issuer: string, storage: string, metricsUrl: string | undefined): string {
  const cli = 'npx gatehouse';
  return [
    '',
    'Gatehouse is running.',
    `  issuer:    ${issuer}`,
    `  metadata:  ${issuer}/.well-known/oauth-authorization-server`,
    `  storage:   ${storage}`,
    `  metrics:   ${metricsUrl ?? 'off (metrics.enabled is false)'}`,
    '',
    'Try it from another terminal in this directory:',
    `  ${cli} resources create --identifier https://api.example.com --name "Example API" --scope example:read`,
    `  ${cli} clients create --name demo --scope example:read      # prints client_id and client_secret once`,
    `  curl -s -u "CLIENT_ID:CLIENT_SECRET" -d grant_type=client_credentials -d scope=example:read ${issuer}/token`,
    '',
    'Sign a user in from a command line (the device flow):',
    `  ${cli} users create --username alice                          # asks for a password`,
    `  ${cli} clients create --name cli --auth-method none --grant-type ${DEVICE_CODE_GRANT_TYPE} --scope "openid example:read"`,
    `  npx gatehouse-client login --issuer ${issuer} --client-id CLIENT_ID --scope "openid example:read"`,
    '  npx gatehouse-client token                                      # a fresh access token',
    '',
  ].join('\n');
}

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('start the authorization server')
    .action(async (_opts: unknown, command: Command) => {
      const config = configFrom(command);
      const server = await createAuthorizationServer(config);
      try {
        await server.listen();
      } catch (err) {
        await server.close();
        throw err;
      }
      const storage = config.databaseUrl === undefined ? `SQLite ${sqliteFile(config)}` : `PostgreSQL ${server.storage.handle.location}`;
      server.logger.info({ issuer: config.issuer, storage, metrics: server.metricsUrl }, 'gatehouse started');
      process.stderr.write(`${banner(config.issuer, storage, server.metricsUrl)}\n`);
      // Graceful shutdown (SIGTERM from an orchestrator, SIGINT from a terminal): stop accepting
      // connections, answer the requests in flight, close the database pool, exit 0. A second
      // signal changes nothing: the drain under way continues (close() is one shutdown however
      // often it is called). Should the drain not end within SHUTDOWN_GRACE_MS (a request stuck
      // on an unreachable database), the process exits 1 rather than hang.
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          server.logger.info({ signal }, 'already shutting down');
          return;
        }
        stopping = true;
        server.logger.info({ signal }, 'shutting down');
        setTimeout(() => {
          process.stderr.write(`gatehouse: shutdown did not finish within ${SHUTDOWN_GRACE_MS / 1000} s; exiting\n`);
          process.exit(1);
        }, SHUTDOWN_GRACE_MS).unref();
        server
          .close()
          .then(() => process.exit(0))
          .catch((err: unknown) => {
            server.logger.error({ err }, 'shutdown failed');
            process.exit(1);
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
