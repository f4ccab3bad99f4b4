import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { FORM_FIELDS, LOGOUT_DECISIONS } from '../interaction/pages.js';
import type { Client } from '../model.js';
import { parseForm, type FormParams } from '../protocol/form.js';
import { methodNotAllowed } from '../http/app.js';
import { readPageForm } from './authorize.js';

interface LogoutTarget {
  client: Client | undefined;
  redirectUri: string | null;
  state: string | null;
}

/**
 * OpenID Connect RP-Initiated Logout 1.0: the user confirms, the browser session ends, and the
 * browser goes to the client's registered post_logout_redirect_uri (exact match) with `state`.
 */
export function registerLogoutEndpoint(app: FastifyInstance, ctx: ServerContext): void {
  const { pages, csrf, sessions } = ctx.web;

  const errorPage = (request: FastifyRequest, reply: FastifyReply, message: string) => pages.renderError(request, reply, 400, 'Cannot sign out from here', message);

  /** Validates client_id / id_token_hint / post_logout_redirect_uri; a message when refused. */
  async function resolveTarget(params: FormParams): Promise<LogoutTarget | string> {
    const hint = params.get('id_token_hint');
    const hinted = hint === undefined ? undefined : ctx.idTokens.readHint(hint);
    if (hint !== undefined && hinted === undefined) return 'The sign-out request carries an ID token this server did not issue.';
    const clientId = params.get('client_id') ?? hinted?.aud;
    // RP-Initiated Logout §2: "When both client_id and id_token_hint are present, the OP MUST
    // verify that the Client Identifier matches the one used when issuing the ID Token."
    if (hinted !== undefined && params.get('client_id') !== undefined && params.get('client_id') !== hinted.aud) {
      return 'The sign-out request names two different applications.';
    }
    const found = clientId === undefined ? undefined : await ctx.clientCache.findClient(clientId);
    // A disabled client is not sent anyone.
    const client = found?.disabled ? undefined : found;
    const redirectUri = params.get('post_logout_redirect_uri') ?? null;
    if (redirectUri !== null) {
      // §3: "The value MUST have been previously registered with the OP"; compared exactly.
      if (client === undefined || !client.postLogoutRedirectUris.includes(redirectUri)) {
        return 'The address to return to after signing out is not registered for this application.';
      }
    }
    return { client, redirectUri, state: params.get('state') ?? null };
  }

  const confirmPage = async (request: FastifyRequest, reply: FastifyReply, params: FormParams) => {
    const target = await resolveTarget(params);
    if (typeof target === 'string') return errorPage(request, reply, target);
    const active = await sessions.current(request, ctx.clock());
    // The confirmation form carries the validated target; the POST validates it again.
    const query = new URLSearchParams();
    if (target.client) query.set('client_id', target.client.clientId);
    if (target.redirectUri !== null) query.set('post_logout_redirect_uri', target.redirectUri);
    if (target.state !== null) query.set('state', target.state);
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return pages.render(
      reply,
      'logout-confirm',
      {
        action: `${ctx.paths.endSession}/confirm${suffix}`,
        csrfToken: csrf.csrfTokenFor(request, reply, 'logout'),
        ...(target.client ? { clientName: target.client.clientName ?? target.client.clientId } : {}),
        ...(active ? { userName: active.user.name ?? active.user.username } : {}),
      },
      target.redirectUri === null ? {} : { formAction: [target.redirectUri] },
    );
  };

  const queryParams = (request: FastifyRequest) => {
    const url = request.raw.url ?? '';
    const q = url.indexOf('?');
    return parseForm(q === -1 ? '' : url.slice(q + 1));
  };

  app.get(ctx.paths.endSession, async (request, reply) => {
    const parsed = queryParams(request);
    if (!parsed.ok) return errorPage(request, reply, 'The sign-out request is malformed.');
    return confirmPage(request, reply, parsed.params);
  });
  // RP-Initiated Logout §2: "OPs MUST support the use of the HTTP GET and POST methods".
  app.post(ctx.paths.endSession, async (request, reply) => {
    const form = readPageForm(request);
    if (form === undefined) return errorPage(request, reply, 'The sign-out request is malformed.');
    return confirmPage(request, reply, form);
  });
  methodNotAllowed(app, ctx.paths.endSession, ['GET', 'HEAD', 'POST']);

  app.post(`${ctx.paths.endSession}/confirm`, async (request, reply) => {
    const parsed = queryParams(request);
    const form = readPageForm(request);
    if (!parsed.ok || form === undefined || !csrf.verifyCsrf(request, 'logout', form.get(FORM_FIELDS.csrf))) {
      return pages.renderError(request, reply, 403, 'Request refused', 'The form expired or did not come from this site.');
    }
    const target = await resolveTarget(parsed.params);
    if (typeof target === 'string') return errorPage(request, reply, target);
    const decision = form.get(FORM_FIELDS.decision);
    if (decision === undefined || !(LOGOUT_DECISIONS as readonly string[]).includes(decision)) return errorPage(request, reply, 'Choose whether to sign out.');
    if (decision === 'cancel') return reply.header('cache-control', 'no-store').redirect(ctx.paths.account, 303);
    await sessions.end(request, reply);
    if (target.redirectUri !== null) {
      const query = target.state === null ? '' : `${target.redirectUri.includes('?') ? '&' : '?'}${new URLSearchParams({ state: target.state }).toString()}`;
      return reply.header('cache-control', 'no-store').redirect(`${target.redirectUri}${query}`, 303);
    }
    return pages.render(reply, 'logged-out', target.client ? { clientName: target.client.clientName ?? target.client.clientId } : {});
  });
}
