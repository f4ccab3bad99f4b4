import { createAuthorizationServer, type AuthorizationServer } from '../../../server/src/server.js';
import { createLogger } from '../../../server/src/logging.js';
import type { TestServer } from '../../../server/test/helpers/server.js';


/**
 * Real failures for the retry tests: a Gatehouse instance on a fixed port that can be stopped and
 * started again (connection refused in between). The cuttable proxy in front of PostgreSQL (then
 * Gatehouse answers 503 temporarily_unavailable) is the server tests' helpers/cuttable-proxy.ts.
 */

/** Another Gatehouse instance on `port`, sharing `storage`'s database and keys. */
export async function startInstanceAt(storage: TestServer, port: number): Promise<AuthorizationServer> {
  const server = await createAuthorizationServer(
    {
      port,
      host: '127.0.0.1',
      dataDir: storage.dataDir,
      logLevel: 'silent',
      ...(storage.databaseUrl ? { databaseUrl: storage.databaseUrl } : {}),
    },
    { clock: storage.clock.now, logger: createLogger('silent') },
  );
  await server.listen();
  return server;
}

