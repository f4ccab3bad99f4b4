import type { AuthorizationRequest, Client, ResponseMode } from '../model.js';
import type { FormParams } from './form.js';
import { isValidCodeChallenge } from './pkce.js';
import { matchRedirectUri } from './redirect-uri.js';
import { isValidResourceIndicator } from './resource-indicator.js';
import { checkRequestedScope } from './scope.js';

/**
 * Authorization request validation (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, OIDC Core §3.1.2). Pure.
 *
 * Order (RFC 6749 §4.1.2.1): problems with the client or the redirect URI are shown to the user
 * and never redirected ("the authorization server [...] MUST NOT automatically redirect the
 * user-agent to the invalid redirection URI"); everything after that is returned to the client
 * at its redirect URI.
 */

/** OpenID Connect identity scopes this server serves: consented by the user, not tied to a resource. */
export const IDENTITY_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

export const PROMPT_VALUES = new Set(['none', 'login', 'consent', 'select_account']);

export type AuthorizationErrorCode =
  | 'invalid_request'
  | 'unauthorized_client'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'request_not_supported'
  | 'request_uri_not_supported'
  | 'registration_not_supported'
  | 'access_denied'
  | 'login_required'
  | 'consent_required'
  | 'interaction_required'
  | 'account_selection_required'
  | 'server_error'
  | 'temporarily_unavailable';

export type AuthorizationValidation =
  | { kind: 'ok'; request: AuthorizationRequest }
  /** Shown on an error page, status 400: the client or redirect URI cannot be trusted. */
  | { kind: 'page'; message: string }
  /** Returned to the client at its redirect URI. */
  | { kind: 'redirect'; redirectUri: string; responseMode: ResponseMode; state: string | null; error: AuthorizationErrorCode; description: string };

export const MAX_STATE_LENGTH = 2048;

export function validateAuthorizationRequest(params: FormParams, client: Client | undefined): AuthorizationValidation {
  const clientId = params.get('client_id');
  // RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
  // redirection URI, or if the client identifier is missing or invalid, the authorization server
  // SHOULD inform the resource owner of the error and MUST NOT automatically redirect".
  if (clientId === undefined) return { kind: 'page', message: 'The request names no client (client_id is missing).' };
  if (client === undefined || client.disabled) return { kind: 'page', message: 'The application is not known to this server.' };

  const requestedRedirect = params.get('redirect_uri');
  const scopeParam = params.get('scope');
  const wantsOpenId = scopeParam?.split(' ').includes('openid') ?? false;
  let redirectUri: string | undefined;
  if (requestedRedirect !== undefined) {
    redirectUri = matchRedirectUri(client.redirectUris, requestedRedirect);
    if (redirectUri === undefined) return { kind: 'page', message: 'The redirect URI does not match any URI registered for this application.' };
  } else if (client.redirectUris.length === 1 && !wantsOpenId) {
    // RFC 6749 §3.1.2.3: with one registered URI the parameter may be omitted. OIDC Core
    // §3.1.2.1 makes redirect_uri REQUIRED for OpenID requests.
    redirectUri = client.redirectUris[0];
  }
  if (redirectUri === undefined) return { kind: 'page', message: 'The request must name its redirect URI (redirect_uri).' };

  const state = params.get('state') ?? null;
  const modeParam = params.get('response_mode');
  const responseMode: ResponseMode = modeParam === 'form_post' ? 'form_post' : 'query';
  const fail = (error: AuthorizationErrorCode, description: string, mode: ResponseMode = responseMode): AuthorizationValidation => ({
    kind: 'redirect',
    redirectUri: redirectUri as string,
    responseMode: mode,
    state: state !== null && state.length <= MAX_STATE_LENGTH ? state : null,
    error,
    description,
  });

  if (state !== null && state.length > MAX_STATE_LENGTH) return fail('invalid_request', 'state is too long');
  if (modeParam !== undefined && modeParam !== 'query' && modeParam !== 'form_post') return fail('invalid_request', 'response_mode must be query or form_post');
  // OAuth 2.0 Form Post Response Mode §2: the browser POSTs to the redirect URI, an http(s) URL.
  if (responseMode === 'form_post' && !/^https?:/i.test(redirectUri)) {
    return fail('invalid_request', 'response_mode=form_post needs an http(s) redirect URI', 'query');
  }
  // OIDC Core §6: "request_not_supported" / "request_uri_not_supported"; §3.1.2.6 registration.
  if (params.has('request')) return fail('request_not_supported', 'request objects are not supported');
  if (params.has('request_uri')) return fail('request_uri_not_supported', 'request_uri is not supported');
  if (params.has('registration')) return fail('registration_not_supported', 'the registration parameter is not supported');

  const responseType = params.get('response_type');
  if (responseType === undefined) return fail('invalid_request', 'response_type is required');
  // OAuth 2.1 §4.1.1: only the code flow; the implicit and hybrid flows do not exist here.
  if (responseType !== 'code') return fail('unsupported_response_type', 'only response_type=code is supported');
  if (!client.grantTypes.includes('authorization_code')) return fail('unauthorized_client', 'the client is not registered for the authorization code grant');

  // OAuth 2.1 §4.1.1: "code_challenge REQUIRED or RECOMMENDED"; Gatehouse requires it from
  // every client, with method S256. RFC 7636 §4.3: a missing method means "plain", refused.
  const challenge = params.get('code_challenge');
  const method = params.get('code_challenge_method');
  if (challenge === undefined) return fail('invalid_request', 'code_challenge is required (PKCE with S256)');
  if (method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256');
  if (!isValidCodeChallenge(challenge)) return fail('invalid_request', 'code_challenge is malformed');

  const scopeCheck = checkRequestedScope(scopeParam, client);
  if (!scopeCheck.ok) return fail(scopeCheck.error, scopeCheck.description);
  const scope = scopeCheck.scope;

  const resources = params.getAll('resource');
  for (const r of resources) if (!isValidResourceIndicator(r)) return fail('invalid_target', 'resource must be an absolute URI without a fragment');

  const prompt = (params.get('prompt') ?? '').split(' ').filter((p) => p !== '');
  for (const p of prompt) if (!PROMPT_VALUES.has(p)) return fail('invalid_request', 'unsupported prompt value');
  // OIDC Core §3.1.2.1: "If this parameter contains none with any other value, an error is returned."
  if (prompt.includes('none') && prompt.length > 1) return fail('invalid_request', 'prompt=none cannot be combined with other values');

  const maxAgeParam = params.get('max_age');
  let maxAge: number | null = null;
  if (maxAgeParam !== undefined) {
    if (!/^\d{1,10}$/.test(maxAgeParam)) return fail('invalid_request', 'max_age must be a non-negative number of seconds');
    maxAge = Number(maxAgeParam);
  }
  // OIDC Core §5.5: the claims request parameter is optional to support; refused plainly.
  if (params.has('claims')) return fail('invalid_request', 'the claims parameter is not supported');

  const nonce = params.get('nonce') ?? null;
  if (nonce !== null && nonce.length > 512) return fail('invalid_request', 'nonce is too long');
  const loginHint = params.get('login_hint') ?? null;
  const uiLocales = params.get('ui_locales') ?? null;
  const acrValues = (params.get('acr_values') ?? '').split(' ').filter((a) => a !== '');

  return {
    kind: 'ok',
    request: {
      clientId,
      redirectUri,
      redirectUriSent: requestedRedirect !== undefined,
      scope,
      state,
      nonce,
      codeChallenge: challenge,
      responseMode,
      resources: [...new Set(resources)],
      prompt,
      maxAge,
      loginHint: loginHint !== null && loginHint.length <= 256 ? loginHint : null,
      acrValues: acrValues.slice(0, 10),
      uiLocales: uiLocales !== null && uiLocales.length <= 100 ? uiLocales : null,
    },
  };
}

/** The parameters of an authorization response (success or error), with RFC 9207 `iss`. */
export function authorizationResponseParams(
  issuer: string,
  state: string | null,
  result: { code: string } | { error: string; description?: string },
): Record<string, string> {
  const out: Record<string, string> = 'code' in result ? { code: result.code } : { error: result.error, ...(result.description ? { error_description: result.description } : {}) };
  // RFC 6749 §4.1.2: "state REQUIRED if the "state" parameter was present in the client
  // authorization request. The exact value received from the client."
  if (state !== null) out.state = state;
  // RFC 9207 §2: "the authorization server MUST include the iss parameter in the authorization response".
  out.iss = issuer;
  return out;
}
