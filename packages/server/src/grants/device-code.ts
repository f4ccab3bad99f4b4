import { AccessDeniedError, DevicePollError, InvalidGrantError, InvalidRequestError } from '../errors.js';
import { DEVICE_CODE_GRANT_TYPE } from '../model.js';
import { pollOutcome, SLOW_DOWN_INCREMENT, minimumPollGap } from '../protocol/device-authorization.js';
import type { DeviceCodeRepository } from '../storage/repositories/device-code-repository.js';
import { sha256 } from '../tokens/random.js';
import { mintNewLineage, readResourceParam, unlessGrantRevoked, type LineageDeps } from './delegated-tokens.js';
import type { GrantHandler, TokenResponse } from './grant-handler.js';

export interface DeviceCodeDeps extends LineageDeps {
  deviceCodes: DeviceCodeRepository;
}

/** RFC 8628 §3.4 device access token request, and the polling answers of §3.5. */
export function createDeviceCodeGrant(deps: DeviceCodeDeps): GrantHandler {
  return {
    grantType: DEVICE_CODE_GRANT_TYPE,
    parameters: new Set(['device_code', 'client_id', 'resource']),
    repeatable: new Set(['resource']),
    // RFC 8628 §3.4: "client_id REQUIRED if the client is not authenticating with the
    // authorization server as described in Section 3.2.1. of [RFC6749]": public clients too.
    allowsPublicClients: true,
    async handle({ client, params, now }): Promise<TokenResponse> {
      const deviceCode = params.get('device_code');
      // RFC 8628 §3.4: "device_code REQUIRED. The device verification code, "device_code" from the
      // device authorization response".
      if (deviceCode === undefined) throw new InvalidRequestError('device_code is required');
      const resource = readResourceParam(params);
      const deviceCodeHash = sha256(deviceCode);
      const stored = await deps.deviceCodes.findDeviceAuthorization(deviceCodeHash);
      const outcome = pollOutcome(stored, client.clientId, now);
      switch (outcome.kind) {
        case 'unknown':
          throw new InvalidGrantError('the device code is not valid');
        case 'replayed':
          // Single use. Unlike an authorization code, a device code never passes through a
          // browser (it goes from this server to the device and back, nowhere else), so a second
          // presentation is the device retrying, not a thief: its tokens are left alone.
          throw new InvalidGrantError('the device code was already used');
        case 'expired':
          throw new DevicePollError('expired_token', 'the device code has expired; start again');
        case 'denied':
          throw new AccessDeniedError('the user denied the request');
        case 'locked':
          throw new AccessDeniedError('the request was locked after too many wrong user codes; start again');
        case 'pending': {
          const poll = await deps.deviceCodes.recordPoll(deviceCodeHash, now, minimumPollGap, SLOW_DOWN_INCREMENT);
          if (poll.tooSoon) throw new DevicePollError('slow_down', `polling too fast; wait at least ${poll.pollInterval} seconds between requests`);
          throw new DevicePollError('authorization_pending', 'the user has not yet approved the request');
        }
        case 'approved':
          break;
      }
      const { approval } = outcome;
      if (!(await deps.isUserActive(approval.userId))) throw new InvalidGrantError('the user can no longer sign in');
      const delegation = { clientId: client.clientId, scope: outcome.authorization.scope, resources: outcome.authorization.resources, ...approval };
      const { lineage, response } = await mintNewLineage(deps, { client, delegation, resource, nonce: null, now });
      const result = await unlessGrantRevoked(deps.deviceCodes.redeemDeviceCode(deviceCodeHash, now, lineage));
      // Another poll redeemed it while this one was minting (or it expired meanwhile); what this
      // one minted was never recorded, so it is worth nothing.
      if (result === 'not_redeemable') throw new InvalidGrantError('the device code was already used');
      deps.grantUsage.record(approval.grantId, now);
      return response;
    },
  };
}
