import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { methodNotAllowed } from '../http/app.js';
import { noStore } from '../http/reply.js';

/** `/healthz`: the process answers. `/readyz`: the database answers and signing keys are loaded. */
export function registerHealthEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/healthz', async (_request, reply) => noStore(reply).send({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    noStore(reply);
    const checks: Record<string, 'ok' | 'failing'> = { database: 'ok', keys: 'ok' };
    try {
      await ctx.storage.ping();
    } catch (err) {
      request.log.warn({ err }, 'readiness: database unreachable');
      checks.database = 'failing';
    }
    if (ctx.keys.signingKey('access_token', ctx.clock()) === undefined) checks.keys = 'failing';
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
  // RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405 response".
  methodNotAllowed(app, '/healthz', ['GET', 'HEAD']);
  methodNotAllowed(app, '/readyz', ['GET', 'HEAD']);
}
