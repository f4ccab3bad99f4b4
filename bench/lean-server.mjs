// Yardstick for `npm run bench`: the leanest correct client_credentials endpoint we know how to
// write, measured in the same run as Gatehouse so that "at least 80% of the lean endpoint" can be
// checked on whatever machine the bench runs on (machines here differ by 2x between sessions).
//
// node:http, ES256 through node:crypto, one client held in memory, no storage, no logging, no
// limits, no metrics. It still does what a correct endpoint must: client_secret_basic with the
// RFC 6749 §2.3.1 form-decoding, a constant-time comparison of secret digests, the grant type and
// scope checked, a 256-bit random jti, `Cache-Control: no-store`, and RFC 6749 §5.2 errors.
//
// Usage: node bench/lean-server.mjs '{"port":4100,"clientId":"bench","clientSecret":"...","scope":"bench:read","audience":"https://api.bench.example"}'
import { createHash, generateKeyPairSync, randomBytes, sign, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { Buffer } from 'node:buffer';
import { URLSearchParams } from 'node:url';

const { port, clientId, clientSecret, scope, audience } = JSON.parse(process.argv[2] ?? '{}');
if (!port || !clientId || !clientSecret || !scope || !audience) {
  console.error('usage: lean-server.mjs \'{"port":N,"clientId":"..","clientSecret":"..","scope":"..","audience":".."}\'');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const digest = (s) => createHash('sha256').update(s).digest();
const clients = new Map([[clientId, { secretDigest: digest(clientSecret), scopes: new Set(scope.split(' ')) }]]);
const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const header = b64json({ alg: 'ES256', typ: 'at+jwt', kid: 'lean' });
const NO_STORE = { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache' };

function answer(res, status, body, headers = {}) {
  res.writeHead(status, { ...NO_STORE, ...headers });
  res.end(JSON.stringify(body));
}

const formDecode = (s) => decodeURIComponent(s.replace(/\+/g, ' '));

/** The authenticated client, or undefined (client_secret_basic only). */
function authenticate(authorization) {
  if (!authorization?.startsWith('Basic ')) return undefined;
  const pair = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
  const colon = pair.indexOf(':');
  if (colon < 0) return undefined;
  let id;
  let secret;
  try {
    id = formDecode(pair.slice(0, colon));
    secret = formDecode(pair.slice(colon + 1));
  } catch {
    return undefined;
  }
  const client = clients.get(id);
  // Digest the presented secret even for an unknown client: the same work either way.
  const presented = digest(secret);
  if (client === undefined || !timingSafeEqual(presented, client.secretDigest)) return undefined;
  return { id, ...client };
}

function token(req, res, body) {
  const client = authenticate(req.headers.authorization);
  if (client === undefined) return answer(res, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="token"' });
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return answer(res, 400, { error: 'invalid_request' });
  const params = new URLSearchParams(body);
  for (const name of ['grant_type', 'scope']) if (params.getAll(name).length > 1) return answer(res, 400, { error: 'invalid_request' });
  if (params.get('grant_type') !== 'client_credentials') return answer(res, 400, { error: 'unsupported_grant_type' });
  const requested = params.get('scope') ?? '';
  const scopes = requested.split(' ');
  if (requested === '' || scopes.some((s) => !client.scopes.has(s))) return answer(res, 400, { error: 'invalid_scope' });
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: issuer, sub: client.id, aud: audience, client_id: client.id, scope: requested, iat: now, exp: now + 300, jti: randomBytes(32).toString('base64url') };
  const input = `${header}.${b64json(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return answer(res, 200, { access_token: `${input}.${signature}`, token_type: 'Bearer', expires_in: 300, scope: requested });
}

const server = createServer((req, res) => {
  if (req.url === '/healthz') return answer(res, 200, { status: 'ok' });
  if (req.url !== '/token' || req.method !== 'POST') return answer(res, 404, { error: 'invalid_request' });
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > 16 * 1024) {
      answer(res, 413, { error: 'invalid_request' });
      req.destroy();
    } else chunks.push(chunk);
  });
  req.on('end', () => token(req, res, Buffer.concat(chunks).toString('utf8')));
}).listen(port, '127.0.0.1');

// A clean exit (so that --cpu-prof writes its profile) when the bench stops it.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
