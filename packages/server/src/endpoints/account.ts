import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { FORM_FIELDS } from '../interaction/pages.js';
import { authenticateUser } from '../users/authenticate-user.js';
import { readPageForm } from './authorize.js';

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** The account page: the apps a signed-in user granted, each revocable; sign-in and sign-out. */
export function registerAccountEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  const { pages, csrf, sessions } = ctx.web;
  const { storage } = ctx;
  const path = ctx.paths.account;

  const refused = (request: FastifyRequest, reply: FastifyReply) =>
    pages.renderError(request, reply, 403, 'Request refused', 'The form expired or did not come from this site. Go back and try again.');

  const loginPage = (request: FastifyRequest, reply: FastifyReply, status = 200, error?: string, username?: string, retryAfter?: number) =>
    pages.render(
      reply,
      'login',
      {
        action: `${path}/login`,
        csrfToken: csrf.csrfTokenFor(request, reply, 'account-login'),
        ...(error ? { error } : {}),
        ...(username ? { username } : {}),
        ...(retryAfter !== undefined ? { retryAfter } : {}),
      },
      { status },
    );

  app.get(path, async (request, reply) => {
    const now = ctx.clock();
    const active = await sessions.current(request, now);
    if (active === undefined) return loginPage(request, reply);
    const grants = await storage.grants.listGrants({ userId: active.user.userId });
    const token = csrf.csrfTokenFor(request, reply, 'account');
    return pages.render(reply, 'account', {
      userName: active.user.name ?? active.user.username,
      csrfToken: token,
      logoutAction: `${path}/logout`,
      grants: grants.map((g) => ({
        grantId: g.grantId,
        clientName: g.clientName ?? g.clientId,
        scopes: g.scope,
        createdAt: iso(g.createdAt),
        lastUsedAt: g.lastUsedAt === null ? null : iso(g.lastUsedAt),
        revokeAction: `${path}/grants/${encodeURIComponent(g.grantId)}/revoke`,
      })),
    });
  });

  app.post(`${path}/login`, async (request, reply) => {
    const now = ctx.clock();
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, 'account-login', form.get(FORM_FIELDS.csrf))) return refused(request, reply);
    const username = form.get(FORM_FIELDS.username) ?? '';
    const result = await authenticateUser(
      { username, password: form.get(FORM_FIELDS.password) ?? '', ip: request.ip, now },
      { users: storage.users, throttle: ctx.web.loginThrottle },
    );
    if (!result.ok) {
      if (result.reason === 'throttled') {
        reply.header('retry-after', String(result.retryAfter));
        return loginPage(request, reply, 429, 'Too many attempts. Wait a moment and try again.', username, result.retryAfter);
      }
      // The form again, 200: a 401 would need a WWW-Authenticate challenge (RFC 9110 §15.5.2).
      return loginPage(request, reply, 200, 'The username or password is not correct.', username);
    }
    await sessions.start(request, reply, result.user, now, ['pwd']);
    return reply.header('cache-control', 'no-store').redirect(path, 303);
  });

  app.post<{ Params: { grantId: string } }>(`${path}/grants/:grantId/revoke`, async (request, reply) => {
    const now = ctx.clock();
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, 'account', form.get(FORM_FIELDS.csrf))) return refused(request, reply);
    const active = await sessions.current(request, now);
    if (active === undefined) return reply.header('cache-control', 'no-store').redirect(path, 303);
    const grant = await storage.grants.findGrantById(request.params.grantId);
    // Only the user's own grants; another id is treated as already gone.
    if (grant !== undefined && grant.userId === active.user.userId) {
      await storage.grants.revokeGrant(grant.grantId, now);
      request.log.info({ grant_id: grant.grantId, client_id: grant.clientId }, 'grant revoked by the user');
    }
    return reply.header('cache-control', 'no-store').redirect(path, 303);
  });

  app.post(`${path}/logout`, async (request, reply) => {
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, 'account', form.get(FORM_FIELDS.csrf))) return refused(request, reply);
    await sessions.end(request, reply);
    return reply.header('cache-control', 'no-store').redirect(path, 303);
  });
}
