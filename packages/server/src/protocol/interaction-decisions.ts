import type { AuthorizationRequest, Client, Grant } from '../model.js';
import { isScopeGranted } from './scope.js';

/**
 * What an authorization request still needs from the user. Pure; `now` passed in.
 */

export interface SessionFacts {
  authTime: number;
}

/**
 * OIDC Core §3.1.2.1 prompt=login: "The Authorization Server SHOULD prompt the End-User for
 * reauthentication"; max_age: "If the elapsed time is greater than this value, the OP MUST
 * attempt to actively re-authenticate the End-User."
 */
export function needsLogin(request: AuthorizationRequest, session: SessionFacts | undefined, now: number): boolean {
  if (session === undefined) return true;
  if (request.prompt.includes('login') || request.prompt.includes('select_account')) return true;
  // OIDC Core §3.1.2.1 (errata set 2): "Note that max_age=0 is equivalent to prompt=login." Times
  // are whole seconds, so a sign-in in the same second has an elapsed time of 0, not "greater
  // than" 0: without this line max_age=0 would not re-authenticate.
  if (request.maxAge === 0) return true;
  return request.maxAge !== null && now - session.authTime > request.maxAge;
}

/**
 * Consent is asked unless the client is first-party or the user already granted every
 * requested scope and resource to it; prompt=consent always asks.
 */
export function needsConsent(request: AuthorizationRequest, client: Client, grant: Grant | undefined): boolean {
  if (request.prompt.includes('consent')) return true;
  if (client.firstParty) return false;
  if (grant === undefined) return true;
  return !request.scope.every((s) => isScopeGranted(grant.scope, s)) || !request.resources.every((r) => grant.resources.includes(r));
}

/** After a sign-in inside this interaction, prompt=login and max_age are satisfied. */
export function afterSignIn(request: AuthorizationRequest): AuthorizationRequest {
  return { ...request, prompt: request.prompt.filter((p) => p !== 'login' && p !== 'select_account'), maxAge: null };
}
