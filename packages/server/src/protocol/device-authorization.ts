import type { Client, DeviceApproval, DeviceAuthorization } from '../model.js';
import type { FormParams } from './form.js';
import { isValidResourceIndicator } from './resource-indicator.js';
import { checkRequestedScope } from './scope.js';

/**
 * The device authorization grant's rules (RFC 8628), pure: what a device authorization request
 * may ask for, and what a poll of the token endpoint is told.
 */

/** RFC 8628 §3.5: on slow_down "the interval MUST be increased by 5 seconds". */
export const SLOW_DOWN_INCREMENT = 5;

/**
 * The shortest gap between two polls that is not "too fast", for a given interval: one second
 * less than the interval, because times are whole seconds (a client that waits exactly the
 * interval may be measured a second short).
 */
export function minimumPollGap(interval: number): number {
  return Math.max(1, interval - 1);
}

export type DeviceRequestValidation =
  | { ok: true; scope: string[]; resources: string[] }
  | { ok: false; error: 'invalid_scope' | 'invalid_target'; description: string };

/**
 * RFC 8628 §3.1 device authorization request: "scope OPTIONAL. The scope of the access request
 * as defined by Section 3.3 of [RFC6749]." Resources (RFC 8707 §2) as at the authorization
 * endpoint. The client's grant type and authentication are checked by the caller.
 */
export function validateDeviceAuthorizationRequest(params: FormParams, client: Client): DeviceRequestValidation {
  const scope = checkRequestedScope(params.get('scope'), client);
  if (!scope.ok) return scope;
  const resources = params.getAll('resource');
  for (const r of resources) if (!isValidResourceIndicator(r)) return { ok: false, error: 'invalid_target', description: 'resource must be an absolute URI without a fragment' };
  return { ok: true, scope: scope.scope, resources: [...new Set(resources)] };
}

export type PollOutcome =
  | { kind: 'unknown' }
  | { kind: 'replayed' }
  | { kind: 'expired' }
  | { kind: 'denied' }
  | { kind: 'locked' }
  | { kind: 'pending' }
  | { kind: 'approved'; authorization: DeviceAuthorization; approval: DeviceApproval };

/** What a device access token request is told, given the stored request (RFC 8628 §3.5). */
export function pollOutcome(stored: DeviceAuthorization | undefined, clientId: string, now: number): PollOutcome {
  // RFC 8628 §3.4: the device code is bound to the client it was issued to: for any other
  // client it does not exist.
  if (stored === undefined || stored.clientId !== clientId) return { kind: 'unknown' };
  if (stored.status === 'consumed') return { kind: 'replayed' };
  if (stored.expiresAt <= now) return { kind: 'expired' };
  switch (stored.status) {
    case 'denied':
      return { kind: 'denied' };
    case 'locked':
      return { kind: 'locked' };
    case 'pending':
      return { kind: 'pending' };
    case 'approved':
      return stored.approval === null ? { kind: 'unknown' } : { kind: 'approved', authorization: stored, approval: stored.approval };
  }
}
