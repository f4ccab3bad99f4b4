import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/keys/key-generation.js';
import { decodeCompact, isJwsAlg, signCompact, verifySignature, type DecodedJws, type JwsAlg } from '../../src/tokens/jws.js';

const ALGS = ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'] as const satisfies readonly JwsAlg[];
// Fails to compile when JwsAlg gains a member this list lacks.
const _everyAlgListed: Exclude<JwsAlg, (typeof ALGS)[number]> extends never ? true : never = true;

/** Signature lengths fixed by the algorithm (RFC 7518 §3.4: R || S for ECDSA; RFC 8037 for Ed25519). */
const SIGNATURE_BYTES: Partial<Record<JwsAlg, number>> = { ES256: 64, ES384: 96, EdDSA: 64, PS256: 256, RS256: 256 };

/** PS256 and RS256 share the RSA key type; the others each have their own. */
const KEY_FAMILY: Record<JwsAlg, string> = { ES256: 'P-256', ES384: 'P-384', EdDSA: 'Ed25519', PS256: 'RSA', RS256: 'RSA' };

interface Pair {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const pairs = new Map<JwsAlg, { a: Pair; b: Pair }>();

async function pair(alg: JwsAlg): Promise<Pair> {
  const generated = await generateSigningKey(alg);
  return { kid: generated.kid, privateKey: generated.privateKey, publicKey: createPublicKey(generated.privateKey) };
}

function keysFor(alg: JwsAlg): { a: Pair; b: Pair } {
  const found = pairs.get(alg);
  if (!found) throw new Error(`no keys for ${alg}`);
  return found;
}

function decoded(token: string): DecodedJws {
  const jws = decodeCompact(token);
  if (jws === null) throw new Error(`not a compact JWS: ${token}`);
  return jws;
}

const NOW = Math.floor(Date.now() / 1000);
const payload = { iss: 'https://auth.example.com', sub: 'client-1', aud: 'https://api.example.com', iat: NOW, exp: NOW + 600, jti: 'jti-1', scope: 'a b' };

beforeAll(async () => {
  for (const alg of ALGS) pairs.set(alg, { a: await pair(alg), b: await pair(alg) });
});

describe.each(ALGS)('%s', (alg) => {
  it('signs, decodes and verifies its own token', () => {
    const { a } = keysFor(alg);
    const token = signCompact(alg, a.privateKey, { typ: 'at+jwt', kid: a.kid }, payload);
    const jws = decoded(token);
    expect(jws.header).toEqual({ typ: 'at+jwt', kid: a.kid, alg });
    expect(jws.payload).toEqual(payload);
    expect(jws.signingInput).toBe(token.slice(0, token.lastIndexOf('.')));
    expect(jws.signature).toHaveLength(SIGNATURE_BYTES[alg] ?? -1);
    expect(verifySignature(alg, a.publicKey, jws)).toBe(true);
  });

  it('is accepted by jose.jwtVerify (interoperability)', async () => {
    const { a } = keysFor(alg);
    const token = signCompact(alg, a.privateKey, { typ: 'at+jwt', kid: a.kid }, payload);
    const jwk = a.publicKey.export({ format: 'jwk' }) as JWK;
    const key = await importJWK(jwk, alg);
    const { payload: verified, protectedHeader } = await jwtVerify(token, key, {
      algorithms: [alg],
      issuer: payload.iss,
      audience: payload.aud,
      typ: 'at+jwt',
      currentDate: new Date(NOW * 1000),
    });
    expect(verified).toEqual(payload);
    expect(protectedHeader).toEqual({ typ: 'at+jwt', kid: a.kid, alg });
  });

  it('verifies what jose signs', async () => {
    const { a } = keysFor(alg);
    const token = await new SignJWT(payload).setProtectedHeader({ alg, kid: a.kid }).sign(a.privateKey);
    expect(decodeProtectedHeader(token).alg).toBe(alg);
    expect(verifySignature(alg, a.publicKey, decoded(token))).toBe(true);
    expect(verifySignature(alg, keysFor(alg).b.publicKey, decoded(token))).toBe(false);
  });

  it('refuses another key of the same algorithm', () => {
    const { a, b } = keysFor(alg);
    const jws = decoded(signCompact(alg, a.privateKey, { kid: a.kid }, payload));
    expect(verifySignature(alg, b.publicKey, jws)).toBe(false);
  });

  it('refuses a changed payload, header or signature', () => {
    const { a } = keysFor(alg);
    const token = signCompact(alg, a.privateKey, { kid: a.kid }, payload);
    const [h, p, s] = token.split('.') as [string, string, string];
    const otherPayload = Buffer.from(JSON.stringify({ ...payload, scope: 'admin' })).toString('base64url');
    const otherHeader = Buffer.from(JSON.stringify({ kid: 'someone-else', alg })).toString('base64url');
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 0x01;
    for (const forged of [`${h}.${otherPayload}.${s}`, `${otherHeader}.${p}.${s}`, `${h}.${p}.${sig.toString('base64url')}`]) {
      expect(verifySignature(alg, a.publicKey, decoded(forged))).toBe(false);
    }
  });

  it('sets alg itself, whatever the header passed in says', () => {
    const { a } = keysFor(alg);
    const jws = decoded(signCompact(alg, a.privateKey, { alg: 'none', kid: a.kid }, payload));
    expect(jws.header.alg).toBe(alg);
    expect(verifySignature(alg, a.publicKey, jws)).toBe(true);
  });

  // RFC 8725 §3.1: each key is used with exactly one algorithm, checked at every operation.
  it.each(ALGS.filter((other) => other !== alg))('returns false, without throwing, when verified as %s', (other) => {
    const { a } = keysFor(alg);
    const jws = decoded(signCompact(alg, a.privateKey, {}, payload));
    expect(verifySignature(other, a.publicKey, jws)).toBe(false);
    expect(verifySignature(other, keysFor(other).a.publicKey, jws)).toBe(false);
  });

  it.each(ALGS.filter((other) => KEY_FAMILY[other] !== KEY_FAMILY[alg]))('refuses to sign with a %s key', (other) => {
    expect(() => signCompact(alg, keysFor(other).a.privateKey, {}, payload)).toThrow(`the key is not a ${alg} key`);
  });
});

describe('isJwsAlg', () => {
  it.each([...ALGS])('%s → true', (alg) => {
    expect(isJwsAlg(alg)).toBe(true);
  });

  it.each([['none'], ['HS256'], ['es256'], ['RS512'], [''], [null], [256], ['toString'], ['__proto__'], ['constructor']])('%j → false', (value) => {
    expect(isJwsAlg(value)).toBe(false);
  });
});

describe('decodeCompact refuses malformed input', () => {
  const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
  const h = b64({ alg: 'ES256' });
  const p = b64({ sub: 'x' });
  const s = 'c2lnbmF0dXJl';

  it.each([
    ['empty', ''],
    ['one part', h],
    ['two parts', `${h}.${p}`],
    ['four parts', `${h}.${p}.${s}.${s}`],
    ['five parts (JWE)', `${h}.${p}.${s}.${s}.${s}`],
    ['an empty header', `.${p}.${s}`],
    ['an empty payload', `${h}..${s}`],
    ['an empty signature', `${h}.${p}.`],
    ['padding', `${h}=.${p}.${s}`],
    ['standard base64 characters', `${h}.${p}.${s}+/`],
    ['whitespace', `${h}. ${p}.${s}`],
    ['a header that is not JSON', `${b64('not json')}.${p}.${s}`],
    ['a payload that is not JSON', `${h}.${b64('{"sub":')}.${s}`],
    ['a header that is an array', `${b64(['ES256'])}.${p}.${s}`],
    ['a payload that is null', `${h}.${b64('null')}.${s}`],
    ['a payload that is a string', `${h}.${b64('"sub"')}.${s}`],
    ['a payload that is a number', `${h}.${b64('42')}.${s}`],
    ['more than 8192 characters', `${h}.${b64({ pad: 'x'.repeat(8192) })}.${s}`],
  ])('%s', (_name, token) => {
    expect(decodeCompact(token)).toBeNull();
  });

  it('accepts the smallest well-formed value', () => {
    expect(decodeCompact(`${b64({})}.${b64({})}.${s}`)).toMatchObject({ header: {}, payload: {} });
  });
});
