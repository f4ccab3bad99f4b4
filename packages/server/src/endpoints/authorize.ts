import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import { CONSENT_DECISIONS, FORM_FIELDS } from '../interaction/pages.js';
import { describeScopes, signInWithPassword, type SignInProblem } from '../interaction/sign-in.js';
import type { AuthorizationRequest, Client, ResponseMode } from '../model.js';
import {
  authorizationResponseParams,
  validateAuthorizationRequest,
  type AuthorizationErrorCode,
} from '../protocol/authorization-request.js';
import { parseForm, type FormParseResult } from '../protocol/form.js';
import { afterSignIn, needsConsent, needsLogin } from '../protocol/interaction-decisions.js';
import { isScopeGranted } from '../protocol/scope.js';
import { checkDelegationTarget } from '../protocol/token-target.js';
import { matchRedirectUri } from '../protocol/redirect-uri.js';
import type { ActiveBrowserSession } from '../storage/repositories/session-repository.js';
import { digestsEqual, randomToken, sha256 } from '../tokens/random.js';
import { methodNotAllowed } from '../http/app.js';

/** The cookie tying a pending interaction to the browser that started it. */
const BINDING_COOKIE = 'binding';

/** The raw query string of a request (after `?`), for strict form parsing. */
export function queryOf(request: FastifyRequest): string {
  const url = request.raw.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}

/**
 * The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2) and the sign-in and consent
 * pages of the requests it cannot complete at once.
 */
export function registerAuthorizationEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  const { pages, csrf, cookies, sessions } = ctx.web;
  const { storage, config } = ctx;

  const errorPage = pages.renderError;

  /** Sends an authorization response (success or error) to the client's redirect URI. */
  const respond = (reply: FastifyReply, redirectUri: string, mode: ResponseMode, params: Record<string, string>) => {
    if (mode === 'form_post') return pages.render(reply, 'form-post', { action: redirectUri, fields: params });
    const target = `${redirectUri}${redirectUri.includes('?') ? '&' : '?'}${new URLSearchParams(params).toString()}`;
    // RFC 9700 §4.12: 303 so a browser never re-posts credentials to the client.
    return reply.header('cache-control', 'no-store').redirect(target, 303);
  };

  const respondError = (reply: FastifyReply, req: Pick<AuthorizationRequest, 'redirectUri' | 'responseMode' | 'state'>, error: AuthorizationErrorCode, description: string) =>
    respond(reply, req.redirectUri, req.responseMode, authorizationResponseParams(config.issuer, req.state, { error, description }));


  function bindingHash(request: FastifyRequest, reply: FastifyReply): string {
    let value = cookies.readCookie(request, BINDING_COOKIE);
    if (value === undefined || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
      value = randomToken();
      cookies.setCookie(reply, BINDING_COOKIE, value, {});
    }
    return sha256(value);
  }

  /** Issues the code and sends it to the client. Consent is recorded first when it was just given (or first-party). */
  async function complete(reply: FastifyReply, req: AuthorizationRequest, client: Client, active: ActiveBrowserSession, now: number, consented: boolean) {
    const user = active.user;
    let grant = await storage.grants.findGrant(user.userId, client.clientId);
    if (consented || grant === undefined || !req.scope.every((s) => isScopeGranted(grant?.scope ?? [], s)) || !req.resources.every((r) => grant?.resources.includes(r))) {
      grant = await storage.grants.recordConsent(user.userId, client.clientId, req.scope, req.resources, now);
    }
    const code = randomToken();
    await storage.codes.storeAuthorizationCode(sha256(code), {
      clientId: client.clientId,
      userId: user.userId,
      grantId: grant.grantId,
      redirectUri: req.redirectUri,
      redirectUriSent: req.redirectUriSent,
      codeChallenge: req.codeChallenge,
      nonce: req.nonce,
      scope: req.scope,
      resources: req.resources,
      sid: active.session.sid,
      authTime: active.session.authTime,
      acr: active.session.acr,
      amr: active.session.amr,
      createdAt: now,
      expiresAt: now + config.authorization.codeTtl,
      consumedAt: null,
      familyId: null,
      accessTokenJti: null,
      accessTokenExpiresAt: null,
    });
    return respond(reply, req.redirectUri, req.responseMode, authorizationResponseParams(config.issuer, req.state, { code }));
  }

  async function authorize(request: FastifyRequest, reply: FastifyReply, parsed: FormParseResult) {
    const now = ctx.clock();
    if (!parsed.ok) return errorPage(request, reply, 400, 'Invalid request', `The authorization request is malformed: ${parsed.reason}.`);
    const clientId = parsed.params.get('client_id');
    const client = clientId === undefined ? undefined : await ctx.clientCache.findClient(clientId);
    const verdict = validateAuthorizationRequest(parsed.params, client);
    if (verdict.kind === 'page') return errorPage(request, reply, 400, 'Invalid request', verdict.message);
    if (verdict.kind === 'redirect') {
      // RFC 9700 §4.11.2: "The authorization server MUST always authenticate the user first and,
      // with the exception of the silent authentication use case, prompt the user for
      // credentials when needed, before redirecting the user." A self-registered client's
      // redirect URI is anybody's choice: without a signed-in user, its errors stay on a page.
      const silent = (parsed.params.get('prompt') ?? '').split(' ').includes('none');
      if (client?.dynamicallyRegistered && !silent && (await sessions.current(request, now)) === undefined) {
        return errorPage(request, reply, 400, 'Invalid request', `The application sent an invalid request (${verdict.error}: ${verdict.description}).`);
      }
      return respondError(reply, verdict, verdict.error, verdict.description);
    }
    const req = verdict.request;
    if (client === undefined) return errorPage(request, reply, 400, 'Invalid request', 'The application is not known to this server.');
    // RFC 8707 §2 / Gatehouse rules, against the resource catalog (protocol/token-target.ts).
    const targetProblem = checkDelegationTarget(req.scope, req.resources, await ctx.catalog.snapshot());
    if (targetProblem) return respondError(reply, req, targetProblem.error, targetProblem.description);

    const active = await sessions.current(request, now);
    const loginNeeded = needsLogin(req, active?.session, now);
    const consentNeeded = active !== undefined && needsConsent(req, client, await storage.grants.findGrant(active.user.userId, client.clientId));
    if (req.prompt.includes('none')) {
      // OIDC Core §3.1.2.6: login_required / consent_required when prompt=none cannot be honoured.
      if (loginNeeded) return respondError(reply, req, 'login_required', 'the user is not signed in');
      if (consentNeeded) return respondError(reply, req, 'consent_required', 'the user has not consented');
    }
    if (!loginNeeded && !consentNeeded && active !== undefined) return complete(reply, req, client, active, now, false);

    const interactionId = randomToken();
    await storage.interactions.createInteraction(interactionId, bindingHash(request, reply), req, now, now + config.authorization.interactionTtl);
    return reply.header('cache-control', 'no-store').redirect(`${ctx.paths.interaction}/${interactionId}`, 303);
  }

  // RFC 6749 §3.1: "The authorization server MUST support the use of the HTTP "GET" method for
  // the authorization endpoint and MAY support the use of the "POST" method as well."
  app.get(ctx.paths.authorization, async (request, reply) => authorize(request, reply, parseForm(queryOf(request), new Set(['resource']))));
  app.post(ctx.paths.authorization, async (request, reply) => {
    const body = request.body;
    const type = request.headers['content-type'] ?? '';
    if (!Buffer.isBuffer(body) || !/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
      return errorPage(request, reply, 400, 'Invalid request', 'The authorization request must be sent as a form.');
    }
    return authorize(request, reply, parseForm(body, new Set(['resource'])));
  });
  methodNotAllowed(app, ctx.paths.authorization, ['GET', 'HEAD', 'POST']);

  /** A pending interaction of this browser, with its client, or an error page. */
  async function loadInteraction(request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, now: number) {
    const id = request.params.id;
    const stored = /^[A-Za-z0-9_-]{43}$/.test(id) ? await storage.interactions.findInteraction(id, now) : undefined;
    const binding = cookies.readCookie(request, BINDING_COOKIE);
    // The interaction belongs to the browser that started it: a link sent to someone else is useless.
    if (stored === undefined || binding === undefined || !digestsEqual(sha256(binding), stored.bindingHash)) {
      errorPage(request, reply, 400, 'This sign-in has expired', 'Go back to the application and start again.');
      return undefined;
    }
    const client = await ctx.clientCache.findClient(stored.request.clientId);
    // The client may have changed since the request: it must still exist, be enabled and have this redirect URI.
    if (client === undefined || client.disabled || matchRedirectUri(client.redirectUris, stored.request.redirectUri) === undefined) {
      errorPage(request, reply, 400, 'Invalid request', 'The application is not known to this server.');
      return undefined;
    }
    return { id, req: stored.request, client };
  }

  async function showStep(request: FastifyRequest, reply: FastifyReply, id: string, req: AuthorizationRequest, client: Client, now: number, status = 200, loginError?: SignInProblem) {
    const active = await sessions.current(request, now);
    const formAction = [req.redirectUri];
    if (loginError !== undefined || needsLogin(req, active?.session, now)) {
      return pages.render(
        reply,
        'login',
        {
          action: `${ctx.paths.interaction}/${id}/login`,
          csrfToken: csrf.csrfTokenFor(request, reply, `login:${id}`),
          clientName: client.clientName ?? client.clientId,
          clientUnverified: client.dynamicallyRegistered,
          ...(loginError?.username ?? req.loginHint ? { username: loginError?.username ?? req.loginHint ?? '' } : {}),
          ...(loginError ? { error: loginError.message } : {}),
          ...(loginError?.retryAfter !== undefined ? { retryAfter: loginError.retryAfter } : {}),
        },
        { status, formAction },
      );
    }
    if (active !== undefined && needsConsent(req, client, await storage.grants.findGrant(active.user.userId, client.clientId))) {
      return pages.render(
        reply,
        'consent',
        {
          action: `${ctx.paths.interaction}/${id}/consent`,
          // Bound to the session that saw the page: consent shown to one user is never recorded for another.
          csrfToken: csrf.csrfTokenFor(request, reply, `consent:${id}:${active.session.sid}`),
          clientName: client.clientName ?? client.clientId,
          clientUnverified: client.dynamicallyRegistered,
          scopes: await describeScopes(ctx, req.scope),
          resources: req.resources,
          userName: active.user.name ?? active.user.username,
        },
        { status, formAction },
      );
    }
    if (active === undefined) return errorPage(request, reply, 400, 'Invalid request', 'Sign in first.');
    // Nothing left to ask (e.g. consent given in another tab): finish once.
    if (!(await storage.interactions.finishInteraction(id))) return errorPage(request, reply, 400, 'Already done', 'This request was already completed.');
    return complete(reply, req, client, active, now, false);
  }

  const interactionPath = `${ctx.paths.interaction}/:id`;
  app.get<{ Params: { id: string } }>(interactionPath, async (request, reply) => {
    const now = ctx.clock();
    const loaded = await loadInteraction(request, reply, now);
    if (loaded === undefined) return reply;
    return showStep(request, reply, loaded.id, loaded.req, loaded.client, now);
  });

  app.post<{ Params: { id: string } }>(`${interactionPath}/login`, async (request, reply) => {
    const now = ctx.clock();
    const loaded = await loadInteraction(request, reply, now);
    if (loaded === undefined) return reply;
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, `login:${loaded.id}`, form.get(FORM_FIELDS.csrf))) {
      return errorPage(request, reply, 403, 'Request refused', 'The form expired or did not come from this site. Go back and try again.');
    }
    const outcome = await signInWithPassword(ctx, request, reply, form, now);
    if (!outcome.ok) return showStep(request, reply, loaded.id, loaded.req, loaded.client, now, outcome.status, outcome.problem);
    await storage.interactions.updateInteractionRequest(loaded.id, afterSignIn(loaded.req));
    return reply.header('cache-control', 'no-store').redirect(`${ctx.paths.interaction}/${loaded.id}`, 303);
  });

  app.post<{ Params: { id: string } }>(`${interactionPath}/consent`, async (request, reply) => {
    const now = ctx.clock();
    const loaded = await loadInteraction(request, reply, now);
    if (loaded === undefined) return reply;
    const form = readPageForm(request);
    const active = await sessions.current(request, now);
    if (form === undefined || active === undefined || !csrf.verifyCsrf(request, `consent:${loaded.id}:${active.session.sid}`, form.get(FORM_FIELDS.csrf))) {
      return errorPage(request, reply, 403, 'Request refused', 'The form expired, did not come from this site, or was shown to someone else. Go back and try again.');
    }
    if (needsLogin(loaded.req, active.session, now)) return showStep(request, reply, loaded.id, loaded.req, loaded.client, now);
    const decision = form.get(FORM_FIELDS.decision);
    if (decision === undefined || !(CONSENT_DECISIONS as readonly string[]).includes(decision)) {
      return errorPage(request, reply, 400, 'Invalid request', 'Choose to allow or deny.');
    }
    // One decision per interaction: a form posted twice finds it gone.
    if (!(await storage.interactions.finishInteraction(loaded.id))) return errorPage(request, reply, 400, 'Already done', 'This request was already completed.');
    // RFC 6749 §4.1.2.1 access_denied: "The resource owner or authorization server denied the request."
    if (decision === 'deny') return respondError(reply, loaded.req, 'access_denied', 'the user denied the request');
    return complete(reply, loaded.req, loaded.client, active, now, true);
  });
}

/** A page form (login, consent, logout, account): strict form parsing, or undefined. */
export function readPageForm(request: FastifyRequest) {
  const body = request.body;
  const type = request.headers['content-type'] ?? '';
  if (!Buffer.isBuffer(body) || !/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) return undefined;
  const parsed = parseForm(body);
  return parsed.ok ? parsed.params : undefined;
}
