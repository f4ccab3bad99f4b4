import { compactVerify, decodeJwt } from 'jose';
import { CLIENT_ASSERTION_ALGS } from '../config/schema.js';
import { InvalidClientError, InvalidRequestError } from '../errors.js';
import { checkAssertionClaims } from '../protocol/client-assertion.js';
import { sha256 } from '../tokens/random.js';
import type { ClientAuthMethod } from './types.js';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** RFC 7523 §2.2 / OIDC Core §9 `private_key_jwt`: a JWT signed with the client's private key. */
export const privateKeyJwt: ClientAuthMethod = {
  name: 'private_key_jwt',
  present: (request) => request.params.has('client_assertion') || request.params.has('client_assertion_type'),
  async authenticate(request, deps, now) {
    const type = request.params.get('client_assertion_type');
    const assertion = request.params.get('client_assertion');
    // RFC 7521 §4.2: "client_assertion_type REQUIRED" and "client_assertion REQUIRED".
    if (type === undefined || assertion === undefined) {
      throw new InvalidRequestError('client_assertion and client_assertion_type go together');
    }
    if (type !== JWT_BEARER_ASSERTION_TYPE) throw new InvalidClientError('unsupported client_assertion_type');
    let clientId: unknown;
    try {
      clientId = decodeJwt(assertion).sub;
    } catch {
      throw new InvalidClientError('client_assertion is not a JWT');
    }
    const bodyClientId = request.params.get('client_id');
    if (typeof clientId !== 'string' || (bodyClientId !== undefined && bodyClientId !== clientId)) throw new InvalidClientError();
    const found = await deps.clients.loadClientCredentials(clientId);
    const client = found?.client;
    if (!client || client.disabled || client.tokenEndpointAuthMethod !== 'private_key_jwt') throw new InvalidClientError();
    const keys = deps.clientKeys.resolve(client);
    if (keys === null) throw new InvalidClientError();
    let payload: Record<string, unknown>;
    try {
      // Asymmetric algorithms only: never `none`, never an HMAC keyed with something public.
      // OIDC Dynamic Registration §2: with token_endpoint_auth_signing_alg registered, "All
      // Token Requests using these authentication methods from this Client MUST be rejected, if
      // the JWT is not signed with this algorithm."
      const algorithms = client.tokenEndpointAuthSigningAlg === null ? [...CLIENT_ASSERTION_ALGS] : [client.tokenEndpointAuthSigningAlg];
      const verified = await compactVerify(assertion, keys, { algorithms });
      payload = JSON.parse(new TextDecoder().decode(verified.payload)) as Record<string, unknown>;
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new Error('payload is not an object');
    } catch (cause) {
      throw new InvalidClientError('client assertion signature is not valid', { cause });
    }
    const verdict = checkAssertionClaims(payload, {
      clientId,
      issuer: deps.issuer,
      now,
      maxLifetime: deps.assertionMaxLifetime,
      clockTolerance: deps.clockTolerance,
    });
    if (!verdict.ok) throw new InvalidClientError(`client assertion rejected: ${verdict.reason}`);
    // RFC 7523 §3 (7): single use of `jti`, across every instance sharing the database.
    const fresh = await deps.assertions.recordAssertionId(sha256(`${clientId} ${verdict.jti}`), verdict.exp + deps.clockTolerance, now);
    if (!fresh) throw new InvalidClientError('client assertion was already used');
    return { client, method: 'private_key_jwt' };
  },
};
