import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticateClient } from '../client-auth/authenticate-client.js';
import type { ServerContext } from '../context.js';
import { InvalidScopeError, InvalidTargetError, TemporarilyUnavailableError, UnauthorizedClientError } from '../errors.js';
import { methodNotAllowed } from '../http/app.js';
import { readForm } from '../http/form-body.js';
import { noStore } from '../http/reply.js';
import { CONSENT_DECISIONS, FORM_FIELDS } from '../interaction/pages.js';
import { describeScopes, signInWithPassword, type SignInProblem } from '../interaction/sign-in.js';
import { DEVICE_CODE_GRANT_TYPE, type Client } from '../model.js';
import { validateDeviceAuthorizationRequest } from '../protocol/device-authorization.js';
import { parseForm } from '../protocol/form.js';
import { checkDelegationTarget } from '../protocol/token-target.js';
import { formatUserCode, generateUserCode, normalizeUserCode, userCodeDigests, type UserCodeDigests } from '../protocol/user-code.js';
import type { PendingDeviceAuthorization } from '../storage/repositories/device-code-repository.js';
import type { ActiveBrowserSession } from '../storage/repositories/session-repository.js';
import { digestsEqual, randomToken, sha256 } from '../tokens/random.js';
import { userCodeThrottleKeys } from '../users/login-throttle.js';
import { queryOf, readPageForm } from './authorize.js';

/** New user codes drawn before giving up when every one collides with a pending request. */
const USER_CODE_DRAWS = 10;

const WRONG_CODE = 'That code is not valid or has expired. Check the code on your device and try again.';

const requestError = (problem: { error: 'invalid_scope' | 'invalid_target'; description: string }) =>
  problem.error === 'invalid_scope' ? new InvalidScopeError(problem.description) : new InvalidTargetError(problem.description);

/**
 * The device authorization grant (RFC 8628): the device authorization endpoint (§3.1–3.2) and
 * the verification pages where the user signs in, enters the code, checks what the device asks
 * for and approves or denies (§3.3). The token endpoint's side is grants/device-code.ts.
 */
export function registerDeviceEndpoints(app: FastifyInstance, ctx: ServerContext): void {
  const { storage, config, paths, urls } = ctx;
  const { pages, csrf, sessions, loginThrottle, userCodeKey } = ctx.web;

  app.post(paths.deviceAuthorization, async (request, reply) => {
    noStore(reply);
    const params = readForm(request);
    const now = ctx.clock();
    // RFC 8628 §3.1: "The client authentication requirements of Section 3.2.1 of [RFC6749] apply
    // to requests on this endpoint": confidential clients authenticate, public ones name themselves.
    const { client } = await authenticateClient({ authorization: request.headers.authorization, params }, ctx.clientAuth, now, { allowPublic: true });
    ctx.rateLimits.requireClientBudget('deviceAuthorization', client, now);
    // RFC 8628 §3.2 errors are those of RFC 6749 §5.2, among them unauthorized_client: "The
    // authenticated client is not authorized to use this authorization grant type."
    if (!client.grantTypes.includes(DEVICE_CODE_GRANT_TYPE)) throw new UnauthorizedClientError('the client is not registered for the device_code grant');
    const verdict = validateDeviceAuthorizationRequest(params, client);
    if (!verdict.ok) throw requestError(verdict);
    const targetProblem = checkDelegationTarget(verdict.scope, verdict.resources, await ctx.catalog.snapshot());
    if (targetProblem !== undefined) throw requestError(targetProblem);

    // RFC 8628 §3.2: "device_code REQUIRED. The device verification code." A 256-bit secret,
    // stored as its SHA-256 digest.
    const deviceCode = randomToken();
    const deviceCodeHash = sha256(deviceCode);
    const { codeTtl, pollInterval } = config.device;
    let userCode: string | undefined;
    for (let draw = 0; draw < USER_CODE_DRAWS && userCode === undefined; draw++) {
      const candidate = generateUserCode();
      const digests = userCodeDigests(userCodeKey, candidate);
      const stored = await storage.deviceCodes.createDeviceAuthorization({
        deviceCodeHash,
        selectorHash: digests.selector,
        userCodeHash: digests.code,
        clientId: client.clientId,
        scope: verdict.scope,
        resources: verdict.resources,
        pollInterval,
        createdAt: now,
        expiresAt: now + codeTtl,
      });
      if (stored) userCode = candidate;
    }
    if (userCode === undefined) throw new TemporarilyUnavailableError('too many device authorizations are pending; try again later');
    ctx.usage.record(client.clientId, now);
    const shown = formatUserCode(userCode);
    return reply.type('application/json').send({
      device_code: deviceCode,
      user_code: shown,
      verification_uri: urls.device,
      // RFC 8628 §3.3.1: "verification_uri_complete OPTIONAL. A verification URI that includes
      // the "user_code" [...], designed for non-textual transmission."
      verification_uri_complete: `${urls.device}?user_code=${shown}`,
      expires_in: codeTtl,
      interval: pollInterval,
    });
  });
  methodNotAllowed(app, paths.deviceAuthorization, ['POST']);

  const errorPage = pages.renderError;
  const formRefused = (request: FastifyRequest, reply: FastifyReply) =>
    errorPage(request, reply, 403, 'Request refused', 'The form expired, did not come from this site, or was shown to someone else. Go back and try again.');
  const backToStart = (reply: FastifyReply, code?: string) =>
    reply.header('cache-control', 'no-store').redirect(code === undefined ? paths.device : `${paths.device}?user_code=${formatUserCode(code)}`, 303);

  /** The code in the page's query (verification_uri_complete), normalized; malformed ones are dropped. */
  const queryCode = (request: FastifyRequest): string | undefined => {
    const parsed = parseForm(queryOf(request));
    const typed = parsed.ok ? parsed.params.get(FORM_FIELDS.userCode) : undefined;
    return typed === undefined ? undefined : normalizeUserCode(typed);
  };

  const showLogin = (request: FastifyRequest, reply: FastifyReply, code: string | undefined, status = 200, problem?: SignInProblem) =>
    pages.render(
      reply,
      'login',
      {
        action: code === undefined ? `${paths.device}/login` : `${paths.device}/login?user_code=${formatUserCode(code)}`,
        csrfToken: csrf.csrfTokenFor(request, reply, 'device-login'),
        ...(problem ? { username: problem.username, error: problem.message } : {}),
        ...(problem?.retryAfter !== undefined ? { retryAfter: problem.retryAfter } : {}),
      },
      { status },
    );

  const showCodeEntry = (request: FastifyRequest, reply: FastifyReply, active: ActiveBrowserSession, userCode: string | undefined, status = 200, error?: string) =>
    pages.render(
      reply,
      'device-code',
      {
        action: paths.device,
        csrfToken: csrf.csrfTokenFor(request, reply, `device:${active.session.sid}`),
        ...(userCode === undefined ? {} : { userCode }),
        ...(error === undefined ? {} : { error }),
      },
      { status },
    );

  /** The client behind a pending request, if it may still use the device grant. */
  const clientOf = async (pending: PendingDeviceAuthorization): Promise<Client | undefined> => {
    const client = await ctx.clientCache.findClient(pending.authorization.clientId);
    return client === undefined || client.disabled || !client.grantTypes.includes(DEVICE_CODE_GRANT_TYPE) ? undefined : client;
  };

  /**
   * The pending request this whole code names (compared in constant time), and the other pending
   * requests whose code starts the same way.
   */
  const findPending = async (digests: UserCodeDigests, now: number): Promise<{ match: PendingDeviceAuthorization | undefined; others: PendingDeviceAuthorization[] }> => {
    const candidates = await storage.deviceCodes.findPendingBySelector(digests.selector, now);
    const match = candidates.find((c) => digestsEqual(c.userCodeHash, digests.code));
    return { match, others: candidates.filter((c) => c !== match) };
  };

  // RFC 8628 §3.3: "the authorization server prompts the user to enter the user code [...] and
  // authenticates the user". Signing in comes first, so every typed code is tied to a session.
  app.get(paths.device, async (request, reply) => {
    const now = ctx.clock();
    const code = queryCode(request);
    const active = await sessions.current(request, now);
    if (active === undefined) return showLogin(request, reply, code);
    // A prefilled code (verification_uri_complete) is only shown: looking it up takes this
    // form's POST, and approving it the confirmation's.
    return showCodeEntry(request, reply, active, code === undefined ? undefined : formatUserCode(code));
  });
  methodNotAllowed(app, paths.device, ['GET', 'HEAD', 'POST']);

  app.post(`${paths.device}/login`, async (request, reply) => {
    const now = ctx.clock();
    const code = queryCode(request);
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, 'device-login', form.get(FORM_FIELDS.csrf))) return formRefused(request, reply);
    const outcome = await signInWithPassword(ctx, request, reply, form, now);
    if (!outcome.ok) return showLogin(request, reply, code, outcome.status, outcome.problem);
    return backToStart(reply, code);
  });
  methodNotAllowed(app, `${paths.device}/login`, ['POST']);

  app.post(paths.device, async (request, reply) => {
    const now = ctx.clock();
    const active = await sessions.current(request, now);
    if (active === undefined) return backToStart(reply);
    const form = readPageForm(request);
    if (form === undefined || !csrf.verifyCsrf(request, `device:${active.session.sid}`, form.get(FORM_FIELDS.csrf))) return formRefused(request, reply);
    const typed = (form.get(FORM_FIELDS.userCode) ?? '').slice(0, 64);

    // RFC 8628 §5.1: "the authorization server SHOULD rate-limit user code entry". Counted before
    // the lookup (parallel guesses too); a right code gets its count back, and only its count.
    const keys = userCodeThrottleKeys(active.session.sid, request.ip);
    const reservation = await loginThrottle.reserve(keys, now);
    if (!reservation.allowed) {
      reply.header('retry-after', String(reservation.retryAfter));
      return showCodeEntry(request, reply, active, typed, 429, `Too many attempts. Wait ${reservation.retryAfter} seconds and try again.`);
    }
    const code = normalizeUserCode(typed);
    const digests = code === undefined ? undefined : userCodeDigests(userCodeKey, code);
    const { match: candidate, others } = digests === undefined ? { match: undefined, others: [] } : await findPending(digests, now);
    if (candidate === undefined || digests === undefined || code === undefined) {
      // A wrong code that shares a pending request's first half counts against that request:
      // after a few, it is locked. The answer is the same either way.
      for (const other of others) await storage.deviceCodes.recordWrongUserCode(other.deviceCodeHash, config.device.userCodeAttempts, now);
      return showCodeEntry(request, reply, active, typed, 200, WRONG_CODE);
    }
    await loginThrottle.refund(keys, reservation);
    const client = await clientOf(candidate);
    if (client === undefined) return errorPage(request, reply, 400, 'Invalid request', 'The application is not known to this server.');
    // RFC 8628 §3.3.1: "the authorization server SHOULD display the "user_code" to the user and
    // instruct the user to verify that it matches the "user_code" being displayed on the device."
    return pages.render(reply, 'device-confirm', {
      action: `${paths.device}/confirm`,
      // Bound to this session and this code: the confirmation shown to one user is never used by another.
      csrfToken: csrf.csrfTokenFor(request, reply, `device-confirm:${active.session.sid}:${digests.code}`),
      clientName: client.clientName ?? client.clientId,
      clientUnverified: client.dynamicallyRegistered,
      userCode: formatUserCode(code),
      scopes: await describeScopes(ctx, candidate.authorization.scope),
      resources: candidate.authorization.resources,
      userName: active.user.name ?? active.user.username,
    });
  });

  app.post(`${paths.device}/confirm`, async (request, reply) => {
    const now = ctx.clock();
    const active = await sessions.current(request, now);
    if (active === undefined) return backToStart(reply);
    const form = readPageForm(request);
    const code = normalizeUserCode(form?.get(FORM_FIELDS.userCode) ?? '');
    const digests = code === undefined ? undefined : userCodeDigests(userCodeKey, code);
    if (form === undefined || digests === undefined || !csrf.verifyCsrf(request, `device-confirm:${active.session.sid}:${digests.code}`, form.get(FORM_FIELDS.csrf))) {
      return formRefused(request, reply);
    }
    const decision = form.get(FORM_FIELDS.decision);
    if (decision === undefined || !(CONSENT_DECISIONS as readonly string[]).includes(decision)) return errorPage(request, reply, 400, 'Invalid request', 'Choose to allow or deny.');
    const { match: pending } = await findPending(digests, now);
    const client = pending === undefined ? undefined : await clientOf(pending);
    const gone = () => errorPage(request, reply, 400, 'This code can no longer be used', 'It was already used, has expired, or was locked. Start again on your device.');
    if (pending === undefined || client === undefined) return gone();

    if (decision === 'deny') {
      if (!(await storage.deviceCodes.denyDeviceAuthorization(pending.deviceCodeHash, now))) return gone();
      return pages.render(reply, 'device-done', { approved: false, clientName: client.clientName ?? client.clientId });
    }
    // Consent is recorded as a grant, as in the code flow (the device's tokens hang off it), in
    // the transaction that claims the request: an approval that loses records nothing.
    const { session } = active;
    const approval = { userId: active.user.userId, sid: session.sid, authTime: session.authTime, acr: session.acr, amr: session.amr };
    if (!(await storage.deviceCodes.approveDeviceAuthorization(pending.deviceCodeHash, approval, now))) return gone();
    return pages.render(reply, 'device-done', { approved: true, clientName: client.clientName ?? client.clientId });
  });
  methodNotAllowed(app, `${paths.device}/confirm`, ['POST']);
}
