import { createHash } from 'node:crypto';
import { TemporarilyUnavailableError } from '../errors.js';
import type { KeySet } from '../keys/key-set.js';
import { decodeCompact, signCompact, verifySignature, type JwsAlg } from './jws.js';

export interface IdTokenInput {
  clientId: string;
  subject: string;
  nonce: string | null;
  authTime: number;
  sid: string | null;
  acr: string | null;
  amr: readonly string[];
  /** The access token issued alongside, for `at_hash`. */
  accessToken?: string;
  now: number;
  /** Claims released into the ID token (e.g. from scopes when no userinfo call is expected). */
  claims?: Record<string, unknown>;
}

/** OIDC Core §3.1.3.6: the hash used for at_hash is the one of the ID token's signing algorithm. */
function hashFor(alg: JwsAlg): string {
  switch (alg) {
    case 'ES384':
      return 'sha384';
    case 'EdDSA':
      return 'sha512';
    default:
      return 'sha256';
  }
}

/**
 * OIDC Core §3.1.3.6: "at_hash: Access Token hash value. Its value is the base64url encoding of
 * the left-most half of the hash of the octets of the ASCII representation of the access_token
 * value, where the hash algorithm used is the hash algorithm used in the alg Header Parameter".
 */
export function accessTokenHash(accessToken: string, alg: JwsAlg): string {
  const digest = createHash(hashFor(alg)).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** ID tokens (OIDC Core §2), signed with the id_token key (RS256 unless configured otherwise). */
export class IdTokenService {
  constructor(
    private readonly issuer: string,
    private readonly keys: KeySet,
    private readonly ttl: number,
  ) {}

  issue(input: IdTokenInput): string {
    const key = this.keys.signingKey('id_token', input.now);
    if (key === undefined) throw new TemporarilyUnavailableError('no ID token signing key is active');
    const payload: Record<string, unknown> = {
      ...input.claims,
      // OIDC Core §2: iss, sub, aud, exp, iat REQUIRED; auth_time when max_age was used or
      // requested (always sent); nonce when it was in the authentication request.
      iss: this.issuer,
      sub: input.subject,
      aud: input.clientId,
      exp: input.now + this.ttl,
      iat: input.now,
      auth_time: input.authTime,
    };
    if (input.nonce !== null) payload.nonce = input.nonce;
    if (input.sid !== null) payload.sid = input.sid;
    if (input.acr !== null) payload.acr = input.acr;
    if (input.amr.length > 0) payload.amr = input.amr;
    if (input.accessToken !== undefined) payload.at_hash = accessTokenHash(input.accessToken, key.alg);
    return signCompact(key.alg, key.privateKey, { typ: 'JWT', kid: key.kid }, payload);
  }

  /**
   * Reads an ID token this server issued (for `id_token_hint` at logout): the signature and the
   * issuer must check out; expiry is not required (OIDC RP-Initiated Logout §2: the OP "SHOULD
   * accept" an expired hint). Returns its claims, or undefined.
   */
  readHint(token: string): { sub: string; aud: string; sid: string | null } | undefined {
    const jws = decodeCompact(token);
    if (jws === null || typeof jws.header.kid !== 'string') return undefined;
    const key = this.keys.verificationKey(jws.header.kid, 'id_token');
    if (key === undefined || jws.header.alg !== key.alg || !verifySignature(key.alg, key.publicKey, jws)) return undefined;
    const { iss, sub, aud, sid } = jws.payload;
    if (iss !== this.issuer || typeof sub !== 'string' || typeof aud !== 'string') return undefined;
    return { sub, aud, sid: typeof sid === 'string' ? sid : null };
  }
}
