import { describe, expect, it } from 'vitest';
import { checkAssertionClaims, type AssertionClaims, type AssertionPolicy } from '../../src/protocol/client-assertion.js';

// A fixed instant: these rules never read the real clock.
const NOW = 1_700_000_000;
const ISSUER = 'https://auth.example.com';
const TOKEN_ENDPOINT = 'https://auth.example.com/token';
const CLIENT = 's6BhdRkqt3';
const MAX_LIFETIME = 300;
const TOLERANCE = 30;

const policy: AssertionPolicy = {
  clientId: CLIENT,
  issuer: ISSUER,
  now: NOW,
  maxLifetime: MAX_LIFETIME,
  clockTolerance: TOLERANCE,
};

function claims(overrides: Partial<Record<keyof AssertionClaims, unknown>> = {}): AssertionClaims {
  return { iss: CLIENT, sub: CLIENT, aud: ISSUER, exp: NOW + 60, iat: NOW, jti: 'jti-1', ...overrides };
}

/** `claims()` without the named claim. */
function without(name: keyof AssertionClaims): AssertionClaims {
  const c: AssertionClaims = claims();
  delete c[name];
  return c;
}

describe('checkAssertionClaims accepts', () => {
  it('a well-formed assertion and returns its jti and exp', () => {
    expect(checkAssertionClaims(claims(), policy)).toEqual({ ok: true, jti: 'jti-1', exp: NOW + 60 });
  });

  it.each<[string, AssertionClaims]>([
    ['aud = issuer', claims({ aud: ISSUER })],
    ['aud = [issuer] (one element)', claims({ aud: [ISSUER] })],
    ['no iat', without('iat')],
    ['no nbf', without('nbf')],
    ['nbf in the past', claims({ nbf: NOW - 100 })],
    ['nbf now', claims({ nbf: NOW })],
    ['nbf ahead within tolerance (exactly at the edge)', claims({ nbf: NOW + TOLERANCE })],
    ['iat ahead within tolerance (exactly at the edge)', claims({ iat: NOW + TOLERANCE })],
    ['iat long ago', claims({ iat: NOW - 86_400 })],
    ['exp just inside the tolerance after expiry', claims({ exp: NOW - TOLERANCE + 1 })],
    ['exp exactly at maxLifetime + tolerance', claims({ exp: NOW + MAX_LIFETIME + TOLERANCE })],
    ['exp exactly at maxLifetime', claims({ exp: NOW + MAX_LIFETIME })],
    ['jti of 1 character', claims({ jti: 'x' })],
    ['jti of 256 characters', claims({ jti: 'j'.repeat(256) })],
  ])('%s', (_name, c) => {
    expect(checkAssertionClaims(c, policy).ok).toBe(true);
  });
});

describe('checkAssertionClaims refuses', () => {
  it.each<[string, AssertionClaims, RegExp]>([
    // RFC 7523 §3 / OIDC Core §9: iss and sub are the client_id
    ['no iss', without('iss'), /iss must be the client_id/],
    ['iss of another client', claims({ iss: 'other-client' }), /iss must be the client_id/],
    ['iss differing in case', claims({ iss: CLIENT.toUpperCase() }), /iss must be the client_id/],
    ['iss as an array', claims({ iss: [CLIENT] }), /iss must be the client_id/],
    ['no sub', without('sub'), /sub must be the client_id/],
    ['sub of another client', claims({ sub: 'other-client' }), /sub must be the client_id/],
    ['sub a number', claims({ sub: 1 }), /sub must be the client_id/],
    // aud
    // rfc7523bis / the 2025 audience-injection findings: the issuer identifier only.
    ['aud = token endpoint', claims({ aud: TOKEN_ENDPOINT }), /aud must be the issuer/],
    ['aud array with the issuer among others', claims({ aud: ['https://other.example', ISSUER] }), /aud must be the issuer/],
    ['aud array with the token endpoint', claims({ aud: [TOKEN_ENDPOINT] }), /aud must be the issuer/],
    ['aud array with the issuer twice', claims({ aud: [ISSUER, ISSUER] }), /aud must be the issuer/],
    ['no aud', without('aud'), /aud must be the issuer/],
    ['aud of another server', claims({ aud: 'https://evil.example' }), /aud must be the issuer/],
    ['aud with a trailing slash', claims({ aud: `${ISSUER}/` }), /aud must be the issuer/],
    ['aud = another endpoint of this server not in the accepted list', claims({ aud: `${ISSUER}/authorize` }), /aud must be the issuer/],
    ['aud empty array', claims({ aud: [] }), /aud must be the issuer/],
    ['aud array without a match', claims({ aud: ['https://a.example', 'https://b.example'] }), /aud must be the issuer/],
    ['aud a number', claims({ aud: 1 }), /aud must be the issuer/],
    ['aud an object', claims({ aud: { aud: ISSUER } }), /aud must be the issuer/],
    // exp
    ['no exp', without('exp'), /exp is required/],
    ['exp as a string', claims({ exp: String(NOW + 60) }), /exp is required/],
    ['exp NaN', claims({ exp: Number.NaN }), /exp is required/],
    ['exp Infinity', claims({ exp: Number.POSITIVE_INFINITY }), /exp is required/],
    ['exp exactly at now - tolerance', claims({ exp: NOW - TOLERANCE }), /expired/],
    ['exp long past', claims({ exp: NOW - 3600 }), /expired/],
    ['exp one second beyond maxLifetime + tolerance', claims({ exp: NOW + MAX_LIFETIME + TOLERANCE + 1 }), /lives too long/],
    ['exp a day away', claims({ exp: NOW + 86_400 }), /lives too long/],
    // nbf
    ['nbf one second beyond the tolerance', claims({ nbf: NOW + TOLERANCE + 1 }), /not yet valid/],
    ['nbf far in the future', claims({ nbf: NOW + 3600 }), /not yet valid/],
    ['nbf not a number', claims({ nbf: 'yesterday' }), /not yet valid/],
    ['nbf null', claims({ nbf: null }), /not yet valid/],
    // iat
    ['iat one second beyond the tolerance', claims({ iat: NOW + TOLERANCE + 1 }), /iat is in the future/],
    ['iat far in the future', claims({ iat: NOW + 3600 }), /iat is in the future/],
    ['iat not a number', claims({ iat: String(NOW) }), /iat is in the future/],
    // jti: required (Gatehouse enforces single use), bounded
    ['no jti', without('jti'), /jti is required/],
    ['empty jti', claims({ jti: '' }), /jti is required/],
    ['jti of 257 characters', claims({ jti: 'j'.repeat(257) }), /jti is required/],
    ['jti a number', claims({ jti: 12345 }), /jti is required/],
  ])('%s', (_name, c, reason) => {
    const verdict = checkAssertionClaims(c, policy);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });
});

describe('checkAssertionClaims clock handling', () => {
  it('uses the now it is given, not the real clock', () => {
    // Valid in 2001 by the policy's clock although long expired by the real one.
    const past = 1_000_000_000;
    const c = claims({ exp: past + 60, iat: past });
    expect(checkAssertionClaims(c, { ...policy, now: past }).ok).toBe(true);
    expect(checkAssertionClaims(c, policy).ok).toBe(false);
  });

  it.each([
    // [tolerance, exp offset, ok]
    [0, 0, false],
    [0, 1, true],
    [0, MAX_LIFETIME, true],
    [0, MAX_LIFETIME + 1, false],
    [5, -4, true],
    [5, -5, false],
    [5, MAX_LIFETIME + 5, true],
    [5, MAX_LIFETIME + 6, false],
  ])('tolerance %i, exp = now%+i → ok %s', (tolerance, offset, ok) => {
    const verdict = checkAssertionClaims(claims({ exp: NOW + offset, iat: NOW - 1000 }), { ...policy, clockTolerance: tolerance });
    expect(verdict.ok).toBe(ok);
  });

  it.each([
    [0, 0, true],
    [0, 1, false],
    [10, 10, true],
    [10, 11, false],
  ])('tolerance %i, nbf = iat = now+%i → ok %s', (tolerance, offset, ok) => {
    const verdict = checkAssertionClaims(claims({ nbf: NOW + offset, iat: NOW + offset }), { ...policy, clockTolerance: tolerance });
    expect(verdict.ok).toBe(ok);
  });
});
