import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../context.js';
import type { FormParams } from '../protocol/form.js';
import { IDENTITY_SCOPES } from '../protocol/authorization-request.js';
import { ownerOf } from '../protocol/token-target.js';
import { authenticateUser } from '../users/authenticate-user.js';
import { FORM_FIELDS, type ScopeDescription } from './pages.js';

/** Why the sign-in form is shown again. */
export interface SignInProblem {
  message: string;
  /** Seconds to wait (throttled); the caller answers 429 with Retry-After. */
  retryAfter?: number;
  /** As typed, to prefill the form. */
  username: string;
}

export type SignInOutcome = { ok: true } | { ok: false; status: number; problem: SignInProblem };

/**
 * The sign-in form's POST, after its CSRF check: checks the username and password (throttled),
 * and on success starts a new browser session. Sets Retry-After when throttled.
 */
export async function signInWithPassword(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply, form: FormParams, now: number): Promise<SignInOutcome> {
  const username = form.get(FORM_FIELDS.username) ?? '';
  const password = form.get(FORM_FIELDS.password) ?? '';
  const result = await authenticateUser({ username, password, ip: request.ip, now }, { users: ctx.storage.users, throttle: ctx.web.loginThrottle });
  if (!result.ok) {
    if (result.reason === 'throttled') {
      reply.header('retry-after', String(result.retryAfter));
      return { ok: false, status: 429, problem: { message: 'Too many attempts. Wait a moment and try again.', retryAfter: result.retryAfter, username } };
    }
    // The form again, 200: a 401 would need a WWW-Authenticate challenge (RFC 9110 §15.5.2).
    return { ok: false, status: 200, problem: { message: 'The username or password is not correct.', username } };
  }
  await ctx.web.sessions.start(request, reply, result.user, now, ['pwd']);
  return { ok: true };
}

/** What the consent and device pages say about the OpenID Connect scopes. */
const IDENTITY_SCOPE_TEXT: Record<string, string> = {
  openid: 'Sign you in with your account',
  profile: 'See your name and username',
  email: 'See your email address',
  offline_access: 'Keep access while you are away (until you revoke it)',
};

/** Each scope as the user reads it: the resource's description of it, or its name. */
export async function describeScopes(ctx: ServerContext, scope: readonly string[]): Promise<ScopeDescription[]> {
  const { resources, owners } = await ctx.catalog.snapshot();
  return scope.map((name) => {
    if (IDENTITY_SCOPES.has(name)) return { name, description: IDENTITY_SCOPE_TEXT[name] ?? name };
    const owner = ownerOf(name, owners);
    const defined = owner === undefined ? undefined : resources.get(owner)?.scopes.find((s) => s.name === name);
    return { name, description: defined?.description ?? name };
  });
}
