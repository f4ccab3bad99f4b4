import type * as Crypto from 'node:crypto';
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHttpApp } from '../../src/http/app.js';
import { createCookies, registerCookies, type Cookies } from '../../src/interaction/cookies.js';
import { createCsrf, CSRF_KEY_INFO, type Csrf } from '../../src/interaction/csrf.js';
import { KeyEncryptionKey } from '../../src/keys/key-encryption.js';
import { createLogger } from '../../src/logging.js';

// Spy on the constant-time comparison the CSRF module must use (the real function still runs).
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof Crypto>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const SECRET = 'a-key-encryption-secret-of-enough-length-0123';
const OTHER_SECRET = 'another-key-encryption-secret-of-enough-length';

interface Instance {
  app: FastifyInstance;
  url: string;
  cookies: Cookies;
}

/**
 * A real Fastify on 127.0.0.1: GET /token?purpose=… answers a token (setting the nonce cookie
 * when needed); POST /verify { purpose, token } answers whether it verifies.
 */
async function startInstance(issuer: string, secret = SECRET): Promise<Instance> {
  const cookies = createCookies(issuer);
  const csrf: Csrf = createCsrf({ key: KeyEncryptionKey.fromSecret(secret).deriveKey(CSRF_KEY_INFO), cookies });
  const app = createHttpApp({ logger: createLogger('silent'), bodyLimit: 65536, requestTimeout: 10_000, maxConnections: 100, trustedProxies: [] });
  await registerCookies(app);
  app.get<{ Querystring: { purpose: string; times?: string } }>('/token', async (request, reply) => {
    const tokens = Array.from({ length: Number(request.query.times ?? 1) }, () => csrf.csrfTokenFor(request, reply, request.query.purpose));
    return reply.send({ tokens });
  });
  app.post<{ Body: { purpose: string; token?: string } }>('/verify', async (request, reply) =>
    reply.send({ ok: csrf.verifyCsrf(request, request.body.purpose, request.body.token) }),
  );
  app.get('/set', async (_request, reply) => {
    cookies.setCookie(reply, 'session', 'v1', { maxAge: 3600 });
    cookies.setCookie(reply, 'scoped', 'v2', { path: '/interaction' });
    return reply.send({});
  });
  app.get('/clear', async (_request, reply) => {
    cookies.clearCookie(reply, 'session');
    return reply.send({});
  });
  app.get('/read', async (request, reply) => reply.send({ session: cookies.readCookie(request, 'session') ?? null }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, cookies };
}

/** The name=value pair of a Set-Cookie header. */
const cookiePair = (setCookie: string | null): string => (setCookie ?? '').split(';')[0] ?? '';

async function getToken(instance: Instance, purpose: string, cookie?: string): Promise<{ token: string; setCookie: string | null; tokens: string[] }> {
  const res = await fetch(`${instance.url}/token?purpose=${encodeURIComponent(purpose)}`, { headers: cookie ? { cookie } : {} });
  const { tokens } = (await res.json()) as { tokens: string[] };
  return { token: tokens[0] ?? '', tokens, setCookie: res.headers.get('set-cookie') };
}

async function verify(instance: Instance, body: { purpose: string; token?: string }, cookie?: string): Promise<boolean> {
  const res = await fetch(`${instance.url}/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { ok: boolean }).ok;
}

describe('CSRF tokens', () => {
  let a: Instance;
  let b: Instance;
  let other: Instance;
  beforeAll(async () => {
    a = await startInstance('http://127.0.0.1:4000');
    b = await startInstance('http://127.0.0.1:4000');
    other = await startInstance('http://127.0.0.1:4000', OTHER_SECRET);
  });
  afterAll(async () => {
    await Promise.all([a.app.close(), b.app.close(), other.app.close()]);
  });
  beforeEach(() => {
    vi.mocked(timingSafeEqual).mockClear();
  });

  it('a fresh browser gets an HttpOnly nonce cookie and a token that verifies for its purpose', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc');
    expect(setCookie).toMatch(/^gh_csrf=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await verify(a, { purpose: 'login:abc', token }, cookiePair(setCookie))).toBe(true);
  });

  it('verifies on another instance sharing the secret, not on one with another secret', async () => {
    const { token, setCookie } = await getToken(a, 'consent:1');
    expect(await verify(b, { purpose: 'consent:1', token }, cookiePair(setCookie))).toBe(true);
    expect(await verify(other, { purpose: 'consent:1', token }, cookiePair(setCookie))).toBe(false);
  });

  it('refuses a token for another purpose', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc');
    expect(await verify(a, { purpose: 'login:abd', token }, cookiePair(setCookie))).toBe(false);
    expect(await verify(a, { purpose: 'consent:abc', token }, cookiePair(setCookie))).toBe(false);
  });

  it("refuses a token minted for another browser's nonce", async () => {
    const mine = await getToken(a, 'login:abc');
    const theirs = await getToken(a, 'login:abc');
    expect(cookiePair(mine.setCookie)).not.toBe(cookiePair(theirs.setCookie));
    expect(await verify(a, { purpose: 'login:abc', token: theirs.token }, cookiePair(mine.setCookie))).toBe(false);
  });

  it('refuses when the cookie or the token is missing', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc');
    expect(await verify(a, { purpose: 'login:abc', token })).toBe(false);
    expect(await verify(a, { purpose: 'login:abc' }, cookiePair(setCookie))).toBe(false);
    expect(await verify(a, { purpose: 'login:abc', token: '' }, cookiePair(setCookie))).toBe(false);
    expect(await verify(a, { purpose: 'login:abc', token }, 'gh_csrf=')).toBe(false);
    expect(await verify(a, { purpose: 'login:abc', token }, 'gh_csrf=short')).toBe(false);
  });

  it('refuses a tampered token', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc');
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const tampered of [flip(token, 0), flip(token, 21), flip(token, 42), token.slice(0, 42), `${token}A`, token.replace(/./, 'é'), token.toUpperCase()]) {
      if (tampered === token) continue;
      expect(await verify(a, { purpose: 'login:abc', token: tampered }, cookiePair(setCookie)), tampered).toBe(false);
    }
  });

  it('refuses a token whose nonce cookie was swapped for another valid one', async () => {
    const first = await getToken(a, 'p');
    const second = await getToken(a, 'p');
    expect(await verify(a, { purpose: 'p', token: first.token }, cookiePair(second.setCookie))).toBe(false);
  });

  it('compares in constant time', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc');
    vi.mocked(timingSafeEqual).mockClear();
    expect(await verify(a, { purpose: 'login:abc', token }, cookiePair(setCookie))).toBe(true);
    expect(vi.mocked(timingSafeEqual)).toHaveBeenCalledTimes(1);
    expect(await verify(a, { purpose: 'login:abc', token: `${token.slice(0, 42)}${token[42] === 'A' ? 'B' : 'A'}` }, cookiePair(setCookie))).toBe(false);
    expect(vi.mocked(timingSafeEqual)).toHaveBeenCalledTimes(2);
  });

  it('keeps an existing nonce: no new cookie, the same token for the same purpose', async () => {
    const first = await getToken(a, 'login:abc');
    const again = await getToken(a, 'login:abc', cookiePair(first.setCookie));
    expect(again.setCookie).toBeNull();
    expect(again.token).toBe(first.token);
  });

  it('replaces a malformed nonce cookie', async () => {
    const { token, setCookie } = await getToken(a, 'login:abc', 'gh_csrf=not-a-nonce');
    expect(setCookie).toMatch(/^gh_csrf=[A-Za-z0-9_-]{43};/);
    expect(await verify(a, { purpose: 'login:abc', token }, cookiePair(setCookie))).toBe(true);
  });

  it('mints one nonce per request however many forms the page has', async () => {
    const res = await fetch(`${a.url}/token?purpose=account&times=3`);
    const { tokens } = (await res.json()) as { tokens: string[] };
    expect(new Set(tokens).size).toBe(1);
    const setCookies = res.headers.getSetCookie();
    expect(setCookies).toHaveLength(1);
    expect(await verify(a, { purpose: 'account', token: tokens[0] }, cookiePair(setCookies[0] ?? null))).toBe(true);
  });

  it('refuses an empty purpose (a caller bug)', () => {
    const csrf = createCsrf({ key: Buffer.alloc(32, 1), cookies: createCookies('http://127.0.0.1:4000') });
    expect(() => csrf.verifyCsrf({} as never, '', 'x')).toThrow(/purpose/);
    expect(() => createCsrf({ key: Buffer.alloc(16), cookies: createCookies('http://127.0.0.1:4000') })).toThrow(/256 bits/);
  });
});

describe('KeyEncryptionKey.deriveKey', () => {
  it('is deterministic per secret and info, 256 bits, independent across infos and secrets', () => {
    const k1 = KeyEncryptionKey.fromSecret(SECRET);
    const k2 = KeyEncryptionKey.fromSecret(SECRET);
    const k3 = KeyEncryptionKey.fromSecret(OTHER_SECRET);
    expect(k1.deriveKey(CSRF_KEY_INFO)).toHaveLength(32);
    expect(k1.deriveKey(CSRF_KEY_INFO).equals(k2.deriveKey(CSRF_KEY_INFO))).toBe(true);
    expect(k1.deriveKey(CSRF_KEY_INFO).equals(k1.deriveKey('gatehouse other v1'))).toBe(false);
    expect(k1.deriveKey(CSRF_KEY_INFO).equals(k3.deriveKey(CSRF_KEY_INFO))).toBe(false);
    expect(() => k1.deriveKey('')).toThrow(/info/);
  });

  it('leaves encryption unchanged', () => {
    const kek = KeyEncryptionKey.fromSecret(SECRET);
    kek.deriveKey(CSRF_KEY_INFO);
    const sealed = kek.encrypt(Buffer.from('x'), 'kid');
    expect(KeyEncryptionKey.fromSecret(SECRET).decrypt(sealed, 'kid').toString()).toBe('x');
  });
});

describe('cookies', () => {
  const instances: Instance[] = [];
  afterAll(async () => {
    await Promise.all(instances.map((i) => i.app.close()));
  });
  const start = async (issuer: string) => {
    const instance = await startInstance(issuer);
    instances.push(instance);
    return instance;
  };
  const setCookies = async (instance: Instance, path: string) => (await fetch(`${instance.url}${path}`)).headers.getSetCookie();

  it('loopback http issuer: gh_ prefix, HttpOnly, SameSite=Lax, no Secure', async () => {
    const i = await start('http://127.0.0.1:4000');
    expect(i.cookies.secure).toBe(false);
    expect(await setCookies(i, '/set')).toEqual([
      'gh_session=v1; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax',
      'gh_scoped=v2; Path=/interaction; HttpOnly; SameSite=Lax',
    ]);
    expect(createCookies('http://localhost:4000').secure).toBe(false);
    expect(createCookies('http://[::1]:4000').secure).toBe(false);
  });

  it('https issuer: __Host- prefix with Secure and Path=/; __Secure- under another path', async () => {
    const i = await start('https://id.example.com');
    expect(i.cookies.secure).toBe(true);
    expect(await setCookies(i, '/set')).toEqual([
      '__Host-gh_session=v1; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax',
      '__Secure-gh_scoped=v2; Path=/interaction; HttpOnly; Secure; SameSite=Lax',
    ]);
    const { setCookie } = await getToken(i, 'p');
    expect(setCookie).toMatch(/^__Host-gh_csrf=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    // https on a loopback host is still Secure.
    expect(createCookies('https://127.0.0.1:8443').secure).toBe(true);
  });

  it('issuer with a path: cookies default to that path (so __Secure-, not __Host-)', async () => {
    const i = await start('https://id.example.com/tenant/');
    expect(i.cookies.defaultPath).toBe('/tenant');
    expect(i.cookies.cookieName('session')).toBe('__Secure-gh_session');
    expect(i.cookies.cookieName('session', '/')).toBe('__Host-gh_session');
    const { setCookie } = await getToken(i, 'p');
    expect(setCookie).toMatch(/^__Secure-gh_csrf=[A-Za-z0-9_-]{43}; Path=\/tenant; HttpOnly; Secure; SameSite=Lax$/);
  });

  it('clears with the same name and attributes, and reads back what the browser sends', async () => {
    const i = await start('https://id.example.com');
    expect(await setCookies(i, '/clear')).toEqual(['__Host-gh_session=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax']);
    const read = await fetch(`${i.url}/read`, { headers: { cookie: 'gh_session=wrong; __Host-gh_session=right' } });
    expect(await read.json()).toEqual({ session: 'right' });
  });

  it('refuses names and paths that could not be meant', () => {
    const cookies = createCookies('https://id.example.com');
    expect(() => cookies.cookieName('a;b')).toThrow(/base name/);
    expect(() => cookies.cookieName('')).toThrow(/base name/);
    expect(() => cookies.cookieName('x', 'relative')).toThrow(/path/);
    expect(() => cookies.cookieName('x', '/a;b')).toThrow(/path/);
  });
});
