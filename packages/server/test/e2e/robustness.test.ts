/**
 * Robustness: every endpoint of a real server (SQLite, real HTTP on 127.0.0.1) is sent malformed
 * requests. Each must be answered promptly with a 4xx, a JSON body whose `error` is the RFC
 * code, and `Cache-Control: no-store`; never a 5xx, never a hang, never an echoed secret.
 *
 * fetch (with a timeout) is used where it can send the request; node:http and raw sockets where
 * the bytes are ones fetch refuses to produce (invalid UTF-8 bodies, repeated headers, broken HTTP).
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/tokens/random.js';
import { basicAuth, startTestServer, type TestServer } from '../helpers/server.js';
import { expectOAuthError, toAnswer, type Answer } from '../helpers/answers.js';

const TIMEOUT_MS = 5_000;
const BODY_LIMIT = 64 * 1024;
const FORM = 'application/x-www-form-urlencoded';
const RESOURCE = 'https://api.example.com';
/** A secret value no response may ever contain. */
const MARKER = 'S3cret-Marker-never-echo-7f3a9c';



function form(params: Record<string, string | string[]>): string {
  const out = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) for (const v of Array.isArray(value) ? value : [value]) out.append(name, v);
  return out.toString();
}

let t: TestServer;
let port: number;

/** fetch with a deadline: a request that hangs fails the test instead of stalling it. */
async function send(method: string, path: string, options: { headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const response = await fetch(`${t.issuer}${path}`, {
    method,
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.body === undefined ? {} : { body: options.body }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  return toAnswer(response.status, response.headers, await response.text());
}

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  send('POST', path, { body, headers: { 'content-type': FORM, ...headers } });

/** node:http with raw header lines (repeats allowed, nothing added but Host) and a raw byte body. */
function sendRaw(method: string, path: string, headers: [string, string][], body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const lines: string[] = ['host', `127.0.0.1:${port}`];
    for (const [name, value] of headers) lines.push(name, value);
    if (body !== undefined) lines.push('content-length', String(body.length));
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: lines, agent: false, timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const h = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) h.append(name, v);
        }
        resolve(toAnswer(res.statusCode ?? 0, h, Buffer.concat(chunks).toString('utf8')));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Raw bytes on a TCP socket, for requests node:http will not even produce. Resolves on close. */
function sendBytes(serverPort: number, data: string, deadlineMs = TIMEOUT_MS): Promise<{ raw: string; answer: Answer | undefined; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(serverPort, '127.0.0.1', () => socket.write(data));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after ${deadlineMs} ms`));
    }, deadlineMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('utf8');
      resolve({ raw, answer: parseRawResponse(raw), ms: Date.now() - started });
    });
  });
}

function parseRawResponse(raw: string): Answer | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return toAnswer(status, headers, raw.slice(end + 4));
}

/** The shape every error must have: status, JSON `error` code, no-store. */

/** Neither the body nor any header may carry a secret the client sent. */
function expectNoSecret(answer: Answer, ...secrets: string[]): void {
  const everything = [answer.text, ...[...answer.headers.entries()].map(([k, v]) => `${k}: ${v}`)].join('\n');
  for (const secret of secrets) {
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain(encodeURIComponent(secret));
    expect(everything).not.toContain(Buffer.from(secret).toString('base64'));
  }
}

let basic: { id: string; secret: string };
let postClient: { id: string; secret: string };
let codeOnly: { id: string; secret: string };
let initialAccessToken: string;

beforeAll(async () => {
  t = await startTestServer();
  port = Number(new URL(t.issuer).port);
  await t.createResource(RESOURCE, ['api:read']);
  const a = await t.createClient({ scope: 'read write api:read' });
  basic = { id: a.clientId, secret: a.clientSecret ?? '' };
  const b = await t.createClient({ scope: 'read', token_endpoint_auth_method: 'client_secret_post' });
  postClient = { id: b.clientId, secret: b.clientSecret ?? '' };
  // A client registered only for the code flow: client_credentials is not its grant.
  codeOnly = { id: 'code-only-client', secret: 'code-only-secret-0123456789abcdef' };
  await t.server.storage.clients.createClient(
    {
      clientId: codeOnly.id,
      clientName: null,
      owner: null,
      grantTypes: ['authorization_code'],
      redirectUris: ['https://app.example.com/cb'],
      postLogoutRedirectUris: [],
      firstParty: false,
      alwaysIssueRefreshToken: false,
      idTokenSignedResponseAlg: null,
      scope: ['read'],
      tokenEndpointAuthMethod: 'client_secret_basic',
      tokenEndpointAuthSigningAlg: null,
      jwks: null,
      jwksUri: null,
      contacts: [],
      accessTokenTtl: null,
      dynamicallyRegistered: false,
    },
    t.clock.now(),
    { secretHash: sha256(codeOnly.secret) },
  );
  initialAccessToken = await t.createInitialAccessToken(['read']);
});

afterAll(async () => {
  await t?.close();
});

const auth = () => ({ authorization: basicAuth(basic.id, basic.secret) });

/** The three form endpoints with a body that is otherwise acceptable to each. */
const FORM_ENDPOINTS = [
  { path: '/token', params: { grant_type: 'client_credentials' } },
  { path: '/introspect', params: { token: 'some-token' } },
  { path: '/revoke', params: { token: 'some-token' } },
] as const;

describe('controls: well-formed requests succeed', () => {
  it('issues a token, introspects and revokes it', async () => {
    const token = await post('/token', form({ grant_type: 'client_credentials', scope: 'read' }), auth());
    expect(token.status).toBe(200);
    const accessToken = (token.json as { access_token: string }).access_token;
    const info = await post('/introspect', form({ token: accessToken }), auth());
    expect({ status: info.status, body: info.json }).toMatchObject({ status: 200, body: { active: true, scope: 'read' } });
    const revoked = await post('/revoke', form({ token: accessToken }), auth());
    expect(revoked.status).toBe(200);
    const after = await post('/introspect', form({ token: accessToken }), auth());
    expect(after.json).toEqual({ active: false });
  });

  it('accepts a charset parameter on the form content type', async () => {
    const answer = await post('/token', form({ grant_type: 'client_credentials' }), { ...auth(), 'content-type': `${FORM}; charset=UTF-8` });
    expect(answer.status).toBe(200);
  });

  it.each(['/jwks', '/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/healthz', '/readyz'])(
    'GET %s answers 200',
    async (path) => {
      expect((await send('GET', path)).status).toBe(200);
    },
  );
});

describe.each(FORM_ENDPOINTS)('request body handling on POST $path', ({ path, params }) => {
  const body = form(params);

  it.each([
    ['application/json', JSON.stringify(params)],
    ['application/json', '{not json'],
    ['text/plain', body],
    ['text/plain;charset=UTF-8', body],
    ['multipart/form-data; boundary=xyz', `--xyz\r\ncontent-disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--xyz--\r\n`],
    ['application/xml', '<grant_type>client_credentials</grant_type>'],
    ['application/x-www-form-urlencoded-but-not', body],
  ])('content type %s → 400 invalid_request', async (type, payload) => {
    expectOAuthError(await send('POST', path, { headers: { ...auth(), 'content-type': type }, body: payload }), 400, 'invalid_request');
  });

  it('no content type, with a body → 400 invalid_request', async () => {
    expectOAuthError(await sendRaw('POST', path, [['authorization', auth().authorization]], Buffer.from(body)), 400, 'invalid_request');
  });

  it('no content type, no body → 400 invalid_request', async () => {
    expectOAuthError(await sendRaw('POST', path, [['authorization', auth().authorization]], Buffer.alloc(0)), 400, 'invalid_request');
  });

  it(`a body of ${BODY_LIMIT + 1} bytes → 413 invalid_request`, async () => {
    const padded = `${body}&pad=`.padEnd(BODY_LIMIT + 1, 'a');
    expectOAuthError(await post(path, padded, auth()), 413, 'invalid_request', 'the request body is too large');
  });

  it(`a body of exactly ${BODY_LIMIT} bytes is read (the limit is inclusive)`, async () => {
    const padded = `${body}&pad=`.padEnd(BODY_LIMIT, 'a');
    const answer = await post(path, padded, auth());
    expect(answer.status).toBe(200);
  });

  it('a declared Content-Length over the limit is refused before the body arrives', async () => {
    const { answer } = await sendBytes(
      port,
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${FORM}\r\nContent-Length: 10000000\r\n\r\n${body}`,
    );
    expect(answer).toBeDefined();
    if (answer) expectOAuthError(answer, 413, 'invalid_request');
  });

  it.each([
    ['0xff 0xfe', Buffer.from([0xff, 0xfe])],
    ['a lone continuation byte', Buffer.from([0x80])],
    ['an overlong encoding of /', Buffer.from([0xc0, 0xaf])],
    ['a truncated 3-byte sequence', Buffer.from([0xe0, 0xa4])],
    ['an encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ])('invalid UTF-8 bytes (%s) → 400 invalid_request', async (_name, bad) => {
    const raw = Buffer.concat([Buffer.from(`${body}&scope=`), bad]);
    expectOAuthError(await sendRaw('POST', path, [['content-type', FORM], ['authorization', auth().authorization]], raw), 400, 'invalid_request', 'the request body is not valid UTF-8');
  });

  it.each([
    ['%zz in a value', `${body}&scope=%zz`],
    ['a truncated UTF-8 escape %e0%a4', `${body}&scope=%e0%a4`],
    ['a lone % at the end', `${body}&scope=%`],
    ['%f', `${body}&scope=%f`],
    ['an escape of an invalid byte %ff', `${body}&scope=%ff`],
    ['an escaped surrogate %ed%a0%80', `${body}&scope=%ed%a0%80`],
    ['%zz in a name', `${body}&sc%zzope=read`],
  ])('malformed percent-encoding (%s) → 400 invalid_request', async (_name, payload) => {
    expectOAuthError(await post(path, payload, auth()), 400, 'invalid_request', 'the request body is not valid form encoding');
  });

  it.each([
    ['grant_type', 'grant_type=client_credentials&grant_type=client_credentials'],
    ['scope', `${body}&scope=read&scope=write`],
    ['client_id', `${body}&client_id=a&client_id=a`],
    ['client_secret', `${body}&client_secret=${MARKER}&client_secret=${MARKER}`],
    ['token', 'grant_type=client_credentials&token=a&token=b'],
    ['token_type_hint', `${body}&token_type_hint=access_token&token_type_hint=access_token`],
  ])('%s repeated → 400 invalid_request', async (name, payload) => {
    const answer = await post(path, payload, auth());
    expectOAuthError(answer, 400, 'invalid_request', `parameter '${name}' is repeated`);
    expectNoSecret(answer, MARKER);
  });

  it('an empty duplicate counts as absent (RFC 6749 §3.1), so it is not a repetition', async () => {
    const answer = await post(path, `${body}&scope=&scope=read`, auth());
    expect(answer.status).toBe(200);
  });

  it('more than 64 parameters → 400 invalid_request', async () => {
    const many = [body, ...Array.from({ length: 64 }, (_, i) => `p${i}=1`)].join('&');
    expectOAuthError(await post(path, many, auth()), 400, 'invalid_request', 'too many parameters');
  });

  it('exactly 64 parameters are read', async () => {
    const parts = [body, ...Array.from({ length: 64 - Object.keys(params).length }, (_, i) => `p${i}=1`)];
    expect((await post(path, parts.join('&'), auth())).status).toBe(200);
  });

  it('a huge parameter name and value are parsed without trouble', async () => {
    const answer = await post(path, `${body}&${'n'.repeat(30_000)}=${'v'.repeat(30_000)}`, auth());
    expect(answer.status).toBe(200);
  });
});

describe('grant_type on POST /token', () => {
  it.each([
    ['no body at all', ''],
    ['grant_type absent', 'scope=read'],
    ['grant_type= (empty value is absent, RFC 6749 §3.1)', 'grant_type='],
    ['grant_type without =', 'grant_type'],
    ['grant_type= with other parameters', 'grant_type=&scope=read'],
    ['the name in upper case', 'GRANT_TYPE=client_credentials'],
  ])('%s → 400 invalid_request "grant_type is required"', async (_name, payload) => {
    expectOAuthError(await post('/token', payload, auth()), 400, 'invalid_request', 'grant_type is required');
  });

  it.each([
    ['password', /OAuth 2\.1/],
    ['implicit', /OAuth 2\.1/],
    ['foo', 'unsupported grant_type'],
    ['urn:ietf:params:oauth:grant-type:device_cod', 'unsupported grant_type'],
    ['urn:ietf:params:oauth:grant-type:jwt-bearer', 'unsupported grant_type'],
    ['CLIENT_CREDENTIALS', 'unsupported grant_type'],
    ['client_credentials\u0000', 'unsupported grant_type'],
    [' client_credentials', 'unsupported grant_type'],
  ])('grant_type=%j → 400 unsupported_grant_type', async (grantType, description) => {
    expectOAuthError(await post('/token', form({ grant_type: grantType }), auth()), 400, 'unsupported_grant_type', description);
  });

  it('a 60 000-character grant_type → unsupported_grant_type, not echoed back', async () => {
    const answer = await post('/token', form({ grant_type: 'g'.repeat(60_000) }));
    expectOAuthError(answer, 400, 'unsupported_grant_type');
    expect(answer.text.length).toBeLessThan(200);
  });

  it('an unsupported grant is refused before client authentication', async () => {
    const answer = await post('/token', form({ grant_type: 'password', username: 'u', password: MARKER }), {
      authorization: basicAuth('nobody', MARKER),
    });
    expectOAuthError(answer, 400, 'unsupported_grant_type');
    expectNoSecret(answer, MARKER);
  });
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.each(FORM_ENDPOINTS)('client authentication on POST $path', ({ path, params }) => {
  const body = form(params);

  it.each([
    ['malformed base64', 'Basic !!!not-base64!!!'],
    ['no credentials after the scheme', 'Basic'],
    ['only a space after the scheme', 'Basic '],
    ['no colon', `Basic ${b64(`${MARKER}`)}`],
    ['an empty secret', () => `Basic ${b64(`${basic.id}:`)}`],
    ['an empty client id', `Basic ${b64(`:${MARKER}`)}`],
    ['malformed percent-encoding in the id', `Basic ${b64(`%zz:${MARKER}`)}`],
    ['an unknown client', basicAuth('no-such-client', MARKER)],
    ['a wrong secret', () => basicAuth(basic.id, MARKER)],
    ['the secret of another client', () => basicAuth(basic.id, postClient.secret)],
    ['a client registered for client_secret_post', () => basicAuth(postClient.id, postClient.secret)],
    ['the scheme in lower case with a wrong secret', () => `basic ${b64(`${basic.id}:${MARKER}`)}`],
  ])('Basic with %s → 401 invalid_client with a Basic challenge', async (_name, header) => {
    const answer = await post(path, body, { authorization: typeof header === 'function' ? header() : header });
    expectOAuthError(answer, 401, 'invalid_client');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Basic realm="[^"]+"/);
    expectNoSecret(answer, MARKER, postClient.secret);
  });

  it('Basic with a client_id in the body naming another client → 401 invalid_client', async () => {
    const answer = await post(path, `${body}&client_id=${postClient.id}`, auth());
    expectOAuthError(answer, 401, 'invalid_client');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('an unknown client and a wrong secret give byte-identical answers (Basic)', async () => {
    const unknown = await post(path, body, { authorization: basicAuth('no-such-client', MARKER) });
    const wrong = await post(path, body, { authorization: basicAuth(basic.id, MARKER) });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toBe(unknown.text);
    expect(wrong.headers.get('www-authenticate')).toBe(unknown.headers.get('www-authenticate'));
  });

  it('an unknown client and a wrong secret give byte-identical answers (client_secret_post)', async () => {
    const unknown = await post(path, `${body}&${form({ client_id: 'no-such-client', client_secret: MARKER })}`);
    const wrong = await post(path, `${body}&${form({ client_id: postClient.id, client_secret: MARKER })}`);
    expectOAuthError(wrong, 401, 'invalid_client');
    expect(wrong.text).toBe(unknown.text);
    expectNoSecret(wrong, MARKER);
  });

  it('client_secret_post for a client registered for client_secret_basic → 401 invalid_client', async () => {
    const answer = await post(path, `${body}&${form({ client_id: basic.id, client_secret: basic.secret })}`);
    expectOAuthError(answer, 401, 'invalid_client');
    expectNoSecret(answer, basic.secret);
  });

  it.each([
    ['Basic and client_secret in the body', () => ({ headers: auth(), extra: { client_secret: basic.secret } })],
    ['Basic and a client_secret that is wrong', () => ({ headers: auth(), extra: { client_id: basic.id, client_secret: MARKER } })],
    [
      'Basic and client_assertion',
      () => ({ headers: auth(), extra: { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'a.b.c' } }),
    ],
    [
      'client_secret and client_assertion in the body',
      () => ({
        headers: {},
        extra: {
          client_id: postClient.id,
          client_secret: postClient.secret,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: 'a.b.c',
        },
      }),
    ],
  ])('%s at once → 400 invalid_request (RFC 6749 §2.3)', async (_name, build) => {
    const { headers, extra } = build();
    const answer = await post(path, `${body}&${form(extra)}`, headers);
    expectOAuthError(answer, 400, 'invalid_request', 'use exactly one client authentication method');
    expectNoSecret(answer, basic.secret, postClient.secret, MARKER);
  });

  const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
  const unsigned = (claims: Record<string, unknown>) =>
    `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;

  it.each<[string, () => Record<string, string>, number, string]>([
    ['client_assertion_type without client_assertion', () => ({ client_assertion_type: JWT_BEARER }), 400, 'invalid_request'],
    ['client_assertion without client_assertion_type', () => ({ client_assertion: 'a.b.c' }), 400, 'invalid_request'],
    ['an unknown client_assertion_type', () => ({ client_assertion_type: 'urn:example:saml', client_assertion: 'a.b.c' }), 401, 'invalid_client'],
    ['a client_assertion that is not a JWT', () => ({ client_assertion_type: JWT_BEARER, client_assertion: MARKER }), 401, 'invalid_client'],
    ['an unsigned assertion for an unknown client', () => ({ client_assertion_type: JWT_BEARER, client_assertion: unsigned({ sub: 'nobody', iss: 'nobody' }) }), 401, 'invalid_client'],
    [
      'an unsigned assertion for a client_secret_basic client',
      () => ({ client_assertion_type: JWT_BEARER, client_assertion: unsigned({ sub: basic.id, iss: basic.id }) }),
      401,
      'invalid_client',
    ],
  ])('private_key_jwt with %s → %i %s', async (_name, extra, status, error) => {
    const answer = await post(path, `${body}&${form(extra())}`);
    expectOAuthError(answer, status, error);
    expectNoSecret(answer, MARKER);
  });

  it('a 60 000-character client_id with a secret → 401 invalid_client, not echoed back', async () => {
    const answer = await post(path, `${body}&${form({ client_id: 'c'.repeat(60_000), client_secret: MARKER })}`);
    expectOAuthError(answer, 401, 'invalid_client');
    expect(answer.text.length).toBeLessThan(200);
  });

  it('no client authentication at all → 401 invalid_client', async () => {
    expectOAuthError(await post(path, body), 401, 'invalid_client');
  });
});

describe('public clients (client_id only)', () => {
  it.each([
    ['/token', 'client_credentials (RFC 6749 §4.4: confidential clients only)', { grant_type: 'client_credentials' }],
    ['/introspect', 'introspection (RFC 7662 §2.1: callers must be authorized)', { token: 'x' }],
    ['/revoke', 'revocation by a confidential client that omits its secret', { token: 'x' }],
  ])('%s: %s → 401 invalid_client', async (path, _why, params) => {
    expectOAuthError(await post(path, form({ ...params, client_id: basic.id })), 401, 'invalid_client');
  });

  it('/token with an unknown client_id only → 401 invalid_client', async () => {
    expectOAuthError(await post('/token', form({ grant_type: 'client_credentials', client_id: 'no-such-client' })), 401, 'invalid_client');
  });
});

describe('a client registered for another grant', () => {
  it('client_credentials → 400 unauthorized_client (RFC 6749 §5.2)', async () => {
    const answer = await post('/token', form({ grant_type: 'client_credentials' }), { authorization: basicAuth(codeOnly.id, codeOnly.secret) });
    expectOAuthError(answer, 400, 'unauthorized_client');
    expectNoSecret(answer, codeOnly.secret);
  });

  it('its own grant with a code that does not exist → 400 invalid_grant', async () => {
    const answer = await post('/token', form({ grant_type: 'authorization_code', code: 'x', redirect_uri: 'https://app.example.com/cb', code_verifier: 'v'.repeat(43) }), {
      authorization: basicAuth(codeOnly.id, codeOnly.secret),
    });
    expectOAuthError(answer, 400, 'invalid_grant');
  });

  it('refresh_token, a grant it is not registered for → 400 unauthorized_client', async () => {
    const answer = await post('/token', form({ grant_type: 'refresh_token', refresh_token: 'x' }), { authorization: basicAuth(codeOnly.id, codeOnly.secret) });
    expectOAuthError(answer, 400, 'unauthorized_client');
  });
});

describe('the token parameter of introspection and revocation', () => {
  it.each([
    ['/introspect', ''],
    ['/introspect', 'token='],
    ['/introspect', 'token_type_hint=access_token'],
    ['/revoke', ''],
    ['/revoke', 'token='],
    ['/revoke', 'token_type_hint=access_token'],
  ])('%s with body %j → 400 invalid_request "token is required"', async (path, payload) => {
    expectOAuthError(await post(path, payload, auth()), 400, 'invalid_request', 'token is required');
  });

  it.each([
    ['/introspect', { active: false }],
    ['/revoke', undefined],
  ])('%s with a 60 000-character garbage token answers 200 (RFC 7662 §2.2, RFC 7009 §2.2)', async (path, expected) => {
    const answer = await post(path, form({ token: 'x.'.repeat(30_000) }), auth());
    expect({ status: answer.status, body: answer.json }).toEqual({ status: 200, body: expected });
  });
});

describe('scope and resource on POST /token', () => {
  it.each([
    ['a double space', 'read  write'],
    ['a leading space', ' read'],
    ['a trailing space', 'read '],
    ['a double quote', '"read"'],
    ['a backslash', 're\\ad'],
    ['a tab', 'read\twrite'],
    ['a non-ASCII character', 'réad'],
    ['101 tokens', Array.from({ length: 101 }, (_, i) => `s${i}`).join(' ')],
  ])('scope with %s → 400 invalid_scope', async (_name, scope) => {
    expectOAuthError(await post('/token', form({ grant_type: 'client_credentials', scope }), auth()), 400, 'invalid_scope', 'scope is malformed');
  });

  it.each([
    ['a scope the client does not hold', 'admin'],
    ['a parent of a held scope', 'api'],
    ['a 60 000-character scope', 's'.repeat(60_000)],
  ])('%s → 400 invalid_scope', async (_name, scope) => {
    expectOAuthError(await post('/token', form({ grant_type: 'client_credentials', scope }), auth()), 400, 'invalid_scope');
  });

  it.each([
    ['a fragment', `${RESOURCE}/#frag`],
    ['an empty fragment', `${RESOURCE}#`],
    ['a relative reference', '/api'],
    ['no scheme', 'api.example.com'],
    ['a scheme only', 'https:'],
    ['an unknown resource', 'https://unknown.example.com'],
    ['more than 2048 characters', `${RESOURCE}/${'x'.repeat(2100)}`],
  ])('resource with %s → 400 invalid_target', async (_name, resource) => {
    expectOAuthError(await post('/token', form({ grant_type: 'client_credentials', resource }), auth()), 400, 'invalid_target');
  });

  it('resource repeated → 400 invalid_target', async () => {
    const answer = await post('/token', form({ grant_type: 'client_credentials', resource: [RESOURCE, 'https://other.example.com'] }), auth());
    expectOAuthError(answer, 400, 'invalid_target');
  });

  it('control: a registered resource gives a token for it', async () => {
    const answer = await post('/token', form({ grant_type: 'client_credentials', resource: RESOURCE }), auth());
    expect({ status: answer.status, body: answer.json }).toMatchObject({ status: 200, body: { scope: 'api:read' } });
  });
});

describe('secrets are never echoed', () => {
  it.each([
    ['a wrong Basic secret', () => post('/token', form({ grant_type: 'client_credentials' }), { authorization: basicAuth(basic.id, MARKER) })],
    ['a wrong client_secret_post secret', () => post('/token', form({ grant_type: 'client_credentials', client_id: postClient.id, client_secret: MARKER }))],
    ['a secret for an unknown client', () => post('/introspect', form({ token: 'x', client_id: 'no-such-client', client_secret: MARKER }))],
    ['a secret and a malformed scope', () => post('/token', form({ grant_type: 'client_credentials', client_id: postClient.id, client_secret: MARKER, scope: 'a  b' }))],
    ['a secret with invalid UTF-8 after it', () => sendRaw('POST', '/token', [['content-type', FORM]], Buffer.concat([Buffer.from(`client_secret=${MARKER}&x=`), Buffer.from([0xff])]))],
    ['a secret in a JSON body', () => send('POST', '/token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_secret: MARKER }) })],
    ['a secret in a malformed JSON body', () => send('POST', '/token', { headers: { 'content-type': 'application/json' }, body: `{"client_secret":"${MARKER}"` })],
    ['a secret as the revoked token with bad credentials', () => post('/revoke', form({ token: MARKER }), { authorization: basicAuth(basic.id, MARKER) })],
    ['a secret in a Bearer header at /register', () => send('POST', '/register', { headers: { authorization: `Bearer ${MARKER}`, 'content-type': 'application/json' }, body: '{}' })],
  ])('%s', async (_name, request) => {
    const answer = await request();
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expectNoSecret(answer, MARKER);
  });
});

describe('secrets sent in the wrong place are not echoed either', () => {
  it('an issued secret sent as a repeated parameter name is not quoted back', async () => {
    const answer = await post('/token', `grant_type=client_credentials&${postClient.secret}=1&${postClient.secret}=1`);
    expectOAuthError(answer, 400, 'invalid_request', "parameter '(unnamed)' is repeated");
    expectNoSecret(answer, postClient.secret);
  });
});

describe('HTTP methods', () => {
  it.each([
    ['/token', ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'], 'POST'],
    ['/introspect', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST'],
    ['/revoke', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST'],
    ['/register', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST'],
    ['/register/some-client', ['POST', 'PATCH', 'OPTIONS'], 'GET, HEAD, PUT, DELETE'],
    ['/jwks', ['POST', 'PUT', 'DELETE', 'PATCH'], 'GET, HEAD'],
    ['/.well-known/oauth-authorization-server', ['POST', 'PUT', 'DELETE'], 'GET, HEAD'],
    ['/.well-known/openid-configuration', ['POST', 'DELETE'], 'GET, HEAD'],
    ['/healthz', ['POST', 'PUT', 'DELETE'], 'GET, HEAD'],
    ['/readyz', ['POST', 'PUT', 'DELETE'], 'GET, HEAD'],
  ] as const)('%s: %j → 405 with Allow: %s', async (path, methods, allow) => {
    for (const method of methods) {
      const answer = await send(method, path);
      expectOAuthError(answer, 405, 'invalid_request', 'method not allowed');
      expect(answer.headers.get('allow')).toBe(allow);
    }
  });
});

describe('unknown and malformed paths', () => {
  it.each([
    ['GET', '/'],
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/token/'],
    ['POST', '/token/'],
    ['POST', '/TOKEN'],
    ['GET', '/authorize/'],
    ['GET', '/register/a/b'],
    ['GET', '/jwks/extra'],
    ['GET', '/.well-known/oauth-authorization-server/extra'],
    ['GET', '/healthz/'],
    ['PUT', '/registerx'],
  ])('%s %s → 404 invalid_request', async (method, path) => {
    expectOAuthError(await send(method, path), 404, 'invalid_request', 'not found');
  });

  it.each([
    ['GET', '/token%zz'],
    ['POST', '/token%'],
    ['GET', '/register/%zz'],
    ['GET', '/register/%e0%a4'],
    ['GET', `/register/${'a'.repeat(201)}`],
  ])('%s %s (malformed or over-long path) → 400 invalid_request', async (method, path) => {
    const answer = await sendRaw(method, path, [['authorization', `Bearer ${initialAccessToken}`]]);
    expectOAuthError(answer, 400, 'invalid_request');
    // Refused by the router before any hook: still the headers of every other answer.
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect(answer.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('repeated headers', () => {
  it('two Authorization headers at /token → 400 invalid_request', async () => {
    const answer = await sendRaw(
      'POST',
      '/token',
      [
        ['content-type', FORM],
        ['authorization', auth().authorization],
        ['authorization', basicAuth(postClient.id, postClient.secret)],
      ],
      Buffer.from(form({ grant_type: 'client_credentials' })),
    );
    expectOAuthError(answer, 400, 'invalid_request', 'the authorization header must not be repeated');
    expectNoSecret(answer, basic.secret, postClient.secret);
  });

  it('two identical Authorization headers at /introspect → 400 invalid_request', async () => {
    const answer = await sendRaw(
      'POST',
      '/introspect',
      [
        ['content-type', FORM],
        ['Authorization', auth().authorization],
        ['authorization', auth().authorization],
      ],
      Buffer.from(form({ token: 'x' })),
    );
    expectOAuthError(answer, 400, 'invalid_request');
  });

  it('two Content-Type headers → 400 invalid_request', async () => {
    const answer = await sendRaw(
      'POST',
      '/token',
      [
        ['content-type', FORM],
        ['content-type', 'application/json'],
        ['authorization', auth().authorization],
      ],
      Buffer.from(form({ grant_type: 'client_credentials' })),
    );
    expectOAuthError(answer, 400, 'invalid_request');
  });

  it('two Authorization headers at /register → 400 invalid_request', async () => {
    const answer = await sendRaw(
      'POST',
      '/register',
      [
        ['content-type', 'application/json'],
        ['authorization', `Bearer ${initialAccessToken}`],
        ['authorization', 'Bearer other'],
      ],
      Buffer.from(JSON.stringify({ grant_types: ['client_credentials'] })),
    );
    expectOAuthError(answer, 400, 'invalid_request');
  });

  it('control: one Authorization header through node:http works', async () => {
    const answer = await sendRaw('POST', '/token', [['content-type', FORM], ['authorization', auth().authorization]], Buffer.from(form({ grant_type: 'client_credentials' })));
    expect(answer.status).toBe(200);
  });
});

describe('broken HTTP', () => {
  it.each([
    ['a garbage request line', 'GARBAGE\r\n\r\n', 400],
    ['a header line without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400],
    ['two different Content-Length headers', `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`, 400],
    [
      'Content-Length together with Transfer-Encoding',
      `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      400,
    ],
    ['an invalid chunk size', `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 400],
    ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ])('%s → %i invalid_request, then the connection closes', async (_name, bytes, status) => {
    const { answer, raw } = await sendBytes(port, bytes);
    expect(answer, raw).toBeDefined();
    if (answer) expectOAuthError(answer, status, 'invalid_request');
    // The shell headers of every other answer, though Node's parser refused it before Fastify saw it.
    expect(raw).toMatch(/^x-content-type-options: nosniff\r$/im);
    expect(raw).toMatch(/^x-request-id: [0-9a-f-]{36}\r$/im);
    expect(raw).toMatch(/^connection: close\r$/im);
  });

  it('a chunked form body is accepted', async () => {
    const payload = form({ grant_type: 'client_credentials' });
    const { answer } = await sendBytes(
      port,
      `POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: ${FORM}\r\nAuthorization: ${auth().authorization}\r\nTransfer-Encoding: chunked\r\n\r\n${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`,
    );
    expect(answer?.status).toBe(200);
  });
});

describe('a stalled request never hangs the connection', () => {
  let quick: TestServer;
  beforeAll(async () => {
    quick = await startTestServer({ config: { http: { requestTimeout: 1000 } } });
  });
  afterAll(async () => {
    await quick?.close();
  });

  it.each([
    ['a body shorter than its Content-Length', `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 100\r\n\r\ngrant_type`],
    ['headers that never end', `POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: appl`],
  ])('%s: the server closes the connection within the request timeout', async (_name, bytes) => {
    const { ms } = await sendBytes(Number(new URL(quick.issuer).port), bytes, 5_000);
    expect(ms).toBeLessThan(3_000);
  });
});

describe('POST /register', () => {
  const json = { 'content-type': 'application/json' };
  const bearer = () => ({ authorization: `Bearer ${initialAccessToken}` });

  it.each([
    ['malformed JSON', '{"grant_types": ['],
    ['an empty body', ''],
    ['a __proto__ member', '{"__proto__": {"admin": true}, "grant_types": ["client_credentials"]}'],
    ['a constructor.prototype member', '{"constructor": {"prototype": {"admin": true}}}'],
    ['trailing garbage', '{"grant_types": ["client_credentials"]} x'],
  ])('%s → 400 invalid_request', async (_name, body) => {
    expectOAuthError(await send('POST', '/register', { headers: { ...json, ...bearer() }, body }), 400, 'invalid_request');
  });

  it(`a JSON body over ${BODY_LIMIT} bytes → 413 invalid_request`, async () => {
    const body = JSON.stringify({ grant_types: ['client_credentials'], client_name: 'x'.repeat(BODY_LIMIT) });
    expectOAuthError(await send('POST', '/register', { headers: { ...json, ...bearer() }, body }), 413, 'invalid_request');
  });

  it.each([
    ['a form', FORM, form({ grant_types: 'client_credentials' })],
    ['text/plain', 'text/plain', JSON.stringify({ grant_types: ['client_credentials'] })],
    ['multipart', 'multipart/form-data; boundary=x', '--x--\r\n'],
  ])('%s instead of JSON → 400 invalid_request', async (_name, type, body) => {
    expectOAuthError(await send('POST', '/register', { headers: { 'content-type': type, ...bearer() }, body }), 400, 'invalid_request');
  });

  it('no content type → 400 invalid_request', async () => {
    const answer = await sendRaw('POST', '/register', [['authorization', bearer().authorization]], Buffer.from('{"grant_types":["client_credentials"]}'));
    expectOAuthError(answer, 400, 'invalid_request');
  });

  it.each([
    ['an array', '[]'],
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"client_credentials"'],
    ['grant_types as a string', '{"grant_types": "client_credentials"}'],
    ['grant_types with a number', '{"grant_types": [1]}'],
    ['scope as a list', '{"grant_types": ["client_credentials"], "scope": ["read"]}'],
    ['contacts with a number', '{"grant_types": ["client_credentials"], "contacts": [1]}'],
    ['a 300-character client_name', JSON.stringify({ grant_types: ['client_credentials'], client_name: 'n'.repeat(300) })],
    ['token_endpoint_auth_method as a number', '{"grant_types": ["client_credentials"], "token_endpoint_auth_method": 7}'],
    ['jwks as a string', '{"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": "keys"}'],
  ])('%s → 400 invalid_client_metadata', async (_name, body) => {
    expectOAuthError(await send('POST', '/register', { headers: { ...json, ...bearer() }, body }), 400, 'invalid_client_metadata');
  });
});

describe.each([
  ['POST', '/register'],
  ['GET', '/register/some-client'],
  ['PUT', '/register/some-client'],
  ['DELETE', '/register/some-client'],
])('Authorization schemes at %s %s', (method, path) => {
  const call = (authorization: string | undefined) =>
    send(method, path, {
      headers: { ...(authorization === undefined ? {} : { authorization }), ...(method === 'POST' || method === 'PUT' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' || method === 'PUT' ? { body: JSON.stringify({ grant_types: ['client_credentials'] }) } : {}),
    });

  it.each([
    ['none', undefined],
    ['Basic', `Basic ${b64('a:b')}`],
    ['Digest', 'Digest username="a"'],
    ['a bare token', 'abcdef'],
    ['Bearerabc (no space)', 'Bearerabc'],
  ])('%s → 401 with a bare Bearer challenge, no error attribute (RFC 6750 §3.1)', async (_name, authorization) => {
    const answer = await call(authorization);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+"$/);
    expect(answer.headers.get('www-authenticate')).not.toContain('error');
  });

  it.each([
    ['Bearer with no token', 'Bearer'],
    ['Bearer with a space only', 'Bearer '],
    ['Bearer with two tokens', 'Bearer abc def'],
    ['Bearer with characters outside b64token', 'Bearer abc!def'],
  ])('%s → 400 invalid_request (RFC 6750 §3.1)', async (_name, authorization) => {
    const answer = await call(authorization);
    expectOAuthError(answer, 400, 'invalid_request');
    expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_request"');
  });

  it('an unknown Bearer token → 401 invalid_token', async () => {
    const answer = await call(`Bearer ${MARKER}`);
    expectOAuthError(answer, 401, 'invalid_token');
    expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expectNoSecret(answer, MARKER);
  });
});
