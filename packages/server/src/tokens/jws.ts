import { sign as cryptoSign, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';

/**
 * Compact JWS for the tokens this server mints and reads back itself (RFC 7515 §7.1), on
 * node:crypto directly: signing is the token endpoint's hot path. Tokens from elsewhere (client
 * assertions) are verified with `jose`.
 */

export type JwsAlg = 'ES256' | 'ES384' | 'EdDSA' | 'PS256' | 'RS256';

interface AlgSpec {
  digest: string | null;
  options: { dsaEncoding?: 'ieee-p1363'; padding?: number; saltLength?: number };
  /** The key type (and curve) the algorithm is used with. */
  keyType: string;
  curve?: string;
}

const ALGS: Record<JwsAlg, AlgSpec> = {
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' }, keyType: 'ec', curve: 'prime256v1' },
  ES384: { digest: 'sha384', options: { dsaEncoding: 'ieee-p1363' }, keyType: 'ec', curve: 'secp384r1' },
  EdDSA: { digest: null, options: {}, keyType: 'ed25519' },
  PS256: { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, keyType: 'rsa' },
  RS256: { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PADDING }, keyType: 'rsa' },
};

// RFC 8725 §3.1: "each key MUST be used with exactly one algorithm, and this MUST be checked
// when the cryptographic operation is performed." (node:crypto would otherwise verify an RS256
// signature with an RSA key asked for ES256 or EdDSA.)
function keyFits(spec: AlgSpec, key: KeyObject): boolean {
  return key.asymmetricKeyType === spec.keyType && (spec.curve === undefined || key.asymmetricKeyDetails?.namedCurve === spec.curve);
}

export function isJwsAlg(value: unknown): value is JwsAlg {
  return typeof value === 'string' && Object.hasOwn(ALGS, value);
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The encoded protected header; constant per key, so callers on the hot path keep it. */
export function encodeJwsHeader(alg: JwsAlg, header: Record<string, unknown>): string {
  return b64json({ ...header, alg });
}

export function signCompact(alg: JwsAlg, key: KeyObject, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return signWithEncodedHeader(alg, key, encodeJwsHeader(alg, header), payload);
}

/** As signCompact, with the header already encoded by encodeJwsHeader for the same alg. */
export function signWithEncodedHeader(alg: JwsAlg, key: KeyObject, encodedHeader: string, payload: Record<string, unknown>): string {
  const input = `${encodedHeader}.${b64json(payload)}`;
  const spec = ALGS[alg];
  if (!keyFits(spec, key)) throw new Error(`the key is not a ${alg} key`);
  const signature = cryptoSign(spec.digest, Buffer.from(input, 'latin1'), { key, ...spec.options });
  return `${input}.${signature.toString('base64url')}`;
}

export interface DecodedJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function parseJsonPart(part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Splits and decodes a compact JWS without verifying it; null when malformed. */
export function decodeCompact(token: string): DecodedJws | null {
  if (token.length > 8192) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [h, p, s] = parts as [string, string, string];
  if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s) || h.length === 0 || p.length === 0 || s.length === 0) return null;
  const header = parseJsonPart(h);
  const payload = parseJsonPart(p);
  if (header === null || payload === null) return null;
  return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

export function verifySignature(alg: JwsAlg, key: KeyObject, jws: DecodedJws): boolean {
  const spec = ALGS[alg];
  if (!keyFits(spec, key)) return false;
  try {
    return cryptoVerify(spec.digest, Buffer.from(jws.signingInput, 'latin1'), { key, ...spec.options }, jws.signature);
  } catch {
    return false;
  }
}
