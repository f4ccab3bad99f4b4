import type { AccessTokenFormat, Client, OpaqueAccessToken } from '../model.js';
import type { KeySet } from '../keys/key-set.js';
import type { AccessTokenRepository } from '../storage/repositories/access-token-repository.js';
import { TemporarilyUnavailableError } from '../errors.js';
import { decodeCompact, verifySignature } from './jws.js';
import { randomToken, sha256 } from './random.js';
import { encodeJwsHeader, signWithEncodedHeader } from './jws.js';

export interface AccessTokenGrant {
  client: Client;
  subject: string;
  /** One audience, or two when an OpenID token is also for userinfo (the issuer). */
  audience: string | readonly string[];
  scope: readonly string[];
  format: AccessTokenFormat;
  ttl: number;
  now: number;
  /** Delegated tokens: the family whose revocation ends this token (private claim `fid`). */
  familyId?: string;
  /** RFC 9068 §2.2.1 optional claims about the authentication: auth_time, acr, amr. */
  authentication?: { authTime: number; acr: string | null; amr: readonly string[] };
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  expiresAt: number;
}

/** What introspection and revocation learn about a token this server issued. */
export interface AccessTokenInfo extends Omit<OpaqueAccessToken, 'revoked'> {
  format: AccessTokenFormat;
  /** Digest of an opaque token (its storage key). */
  tokenHash?: string;
}

/**
 * Mints access tokens: RFC 9068 JWTs signed by the current access-token key, or opaque 256-bit
 * values stored only as SHA-256 digests. Reads them back for introspection and revocation.
 */
export class AccessTokenService {
  /** Encoded `{typ, kid, alg}` header per signing key. */
  readonly #headers = new Map<string, string>();
  /**
   * Tokens whose signature was verified, by SHA-256 digest (never the token itself) → kid. A
   * signature's validity never changes, so a repeated introspection skips the verification;
   * expiry, revocation and the key still being published are checked every time.
   */
  readonly #verified = new Map<string, string>();
  static readonly MAX_VERIFIED = 10_000;

  constructor(
    private readonly issuer: string,
    private readonly keys: KeySet,
    private readonly repository: AccessTokenRepository,
    /** Longest lifetime this server gives any access token, plus clock skew. */
    private readonly maxLifetime: number,
    /** How late an instance may learn that a key retired (its key refresh interval, plus skew). */
    private readonly retirementGrace: number,
  ) {}

  async issue(grant: AccessTokenGrant): Promise<IssuedAccessToken> {
    const jti = randomToken();
    const expiresAt = grant.now + grant.ttl;
    const audience = typeof grant.audience === 'string' ? [grant.audience] : [...grant.audience];
    if (grant.format === 'opaque') {
      const token = randomToken();
      await this.repository.storeOpaqueAccessToken(sha256(token), {
        jti,
        clientId: grant.client.clientId,
        subject: grant.subject,
        familyId: grant.familyId ?? null,
        audience,
        scope: [...grant.scope],
        issuedAt: grant.now,
        expiresAt,
        revoked: false,
      });
      return { token, jti, expiresAt };
    }
    const key = this.keys.signingKey('access_token', grant.now);
    if (key === undefined) throw new TemporarilyUnavailableError('no signing key is active');
    // RFC 9068 §2.1: "Resource servers MUST verify that the typ value is "at+jwt" or
    // "application/at+jwt" and reject tokens carrying any other value."
    const payload: Record<string, unknown> = {
      // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are REQUIRED.
      iss: this.issuer,
      sub: grant.subject,
      aud: audience.length === 1 ? audience[0] : audience,
      exp: expiresAt,
      iat: grant.now,
      jti,
      client_id: grant.client.clientId,
    };
    if (grant.scope.length > 0) payload.scope = grant.scope.join(' ');
    if (grant.authentication) {
      payload.auth_time = grant.authentication.authTime;
      if (grant.authentication.acr !== null) payload.acr = grant.authentication.acr;
      if (grant.authentication.amr.length > 0) payload.amr = grant.authentication.amr;
    }
    if (grant.familyId !== undefined) payload.fid = grant.familyId;
    let header = this.#headers.get(key.kid);
    if (header === undefined) {
      header = encodeJwsHeader(key.alg, { typ: 'at+jwt', kid: key.kid });
      this.#headers.set(key.kid, header);
    }
    const token = signWithEncodedHeader(key.alg, key.privateKey, header, payload);
    return { token, jti, expiresAt };
  }

  /**
   * The token's facts if it is one this server issued, correctly signed, not expired and not
   * revoked; otherwise undefined. Never throws for malformed input.
   */
  async inspect(token: string, now: number): Promise<AccessTokenInfo | undefined> {
    if (token.length > 8192) return undefined;
    const jws = decodeCompact(token);
    if (jws === null) return this.#inspectOpaque(token, now);
    const { header, payload } = jws;
    if (header.typ !== 'at+jwt' || typeof header.kid !== 'string' || header.crit !== undefined) return undefined;
    const key = this.keys.verificationKey(header.kid, 'access_token');
    if (key === undefined || header.alg !== key.alg) return undefined;
    const digest = sha256(token);
    if (this.#verified.get(digest) !== header.kid) {
      if (!verifySignature(key.alg, key.publicKey, jws)) return undefined;
      if (this.#verified.size >= AccessTokenService.MAX_VERIFIED) this.#verified.clear();
      this.#verified.set(digest, header.kid);
    }
    const { iss, sub, aud, exp, iat, jti, client_id: clientId, scope, fid } = payload;
    if (iss !== this.issuer || typeof exp !== 'number' || exp <= now || typeof iat !== 'number' || typeof jti !== 'string' || typeof clientId !== 'string' || typeof sub !== 'string') {
      return undefined;
    }
    // Only shapes this server can have produced: no token lives longer than the longest
    // lifetime, and none was signed by a key after it retired. A stolen retired key cannot mint
    // long-lived or fresh tokens that would pass (RFC 8725 §3: validate everything).
    if (exp - iat > this.maxLifetime || iat > now + 60) return undefined;
    if (key.retiresAt !== null && iat > key.retiresAt + this.retirementGrace) return undefined;
    if (await this.repository.isAccessTokenIdRevoked(jti)) return undefined;
    return {
      format: 'jwt',
      jti,
      clientId,
      subject: sub,
      familyId: typeof fid === 'string' ? fid : null,
      audience: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
      scope: typeof scope === 'string' && scope !== '' ? scope.split(' ') : [],
      issuedAt: iat,
      expiresAt: exp,
    };
  }

  async #inspectOpaque(token: string, now: number): Promise<AccessTokenInfo | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const tokenHash = sha256(token);
    const row = await this.repository.findOpaqueAccessToken(tokenHash);
    if (!row || row.revoked || row.expiresAt <= now) return undefined;
    return {
      format: 'opaque',
      jti: row.jti,
      clientId: row.clientId,
      subject: row.subject,
      familyId: row.familyId,
      audience: row.audience,
      scope: row.scope,
      issuedAt: row.issuedAt,
      expiresAt: row.expiresAt,
      tokenHash,
    };
  }

  /** Revokes a token found by `inspect`. */
  async revoke(info: AccessTokenInfo): Promise<void> {
    if (info.tokenHash !== undefined) await this.repository.revokeOpaqueAccessToken(info.tokenHash);
    else await this.repository.revokeAccessTokenId(info.jti, info.expiresAt);
  }
}
