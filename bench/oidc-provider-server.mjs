// Reference server for `npm run bench`: node-oidc-provider v9 configured for the same workloads
// Gatehouse is measured on.
//
// Usage: node bench/oidc-provider-server.mjs '{"port":4100,"format":"jwt","clientId":"bench","clientSecret":"..."}'
// format is "jwt" (ES256-signed at+jwt access tokens), "jwt-default" (at+jwt access tokens signed
// with oidc-provider's default algorithm, which is RS256: no `jwt.sign` in the resource server's
// configuration) or "opaque". In-memory adapter (the default, an LRU of 1000 entries).
//
// With "delegated": {"clientId","clientSecret","redirectUri","codes":N,"codesFile","idTokenAlg"}
// it also serves the code flow for a second client (authorization_code + refresh_token, refresh
// tokens rotated on every use like Gatehouse's) and, before listening, mints N authorization codes
// for 200 users straight through the provider's own models (Grant, AuthorizationCode: what its
// interaction would save after sign-in and consent), writing [code, verifier] pairs to codesFile.
// The adapter is then an unbounded Map (the default LRU would evict the pre-minted codes): still
// in memory, no persistence.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'https://api.bench.example';
const SCOPE = 'bench:read';

const { port, format, clientId, clientSecret, delegated } = JSON.parse(process.argv[2] ?? '{}');
if (!port || !['jwt', 'jwt-default', 'opaque'].includes(format) || !clientId || !clientSecret) {
  console.error('usage: oidc-provider-server.mjs \'{"port":N,"format":"jwt"|"jwt-default"|"opaque","clientId":"..","clientSecret":"..","delegated":{..}?}\'');
  process.exit(2);
}

const keys = [];
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
keys.push({ ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' });
if (delegated?.idTokenAlg === 'RS256' || format === 'jwt-default') {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  keys.push({ ...rsa.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' });
}

/** oidc-provider's adapter interface over a Map: the memory adapter without its 1000-entry bound. */
const store = new Map();
class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload) {
    store.set(this.key(id), payload);
    if (payload.uid) store.set(`sessionUid:${payload.uid}`, id);
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, id);
    if (payload.grantId) {
      const members = store.get(`grant:${payload.grantId}`) ?? new Set();
      members.add(this.key(id));
      store.set(`grant:${payload.grantId}`, members);
    }
  }

  async find(id) {
    return store.get(this.key(id));
  }

  async findByUid(uid) {
    return this.find(store.get(`sessionUid:${uid}`));
  }

  async findByUserCode(userCode) {
    return this.find(store.get(`userCode:${userCode}`));
  }

  async consume(id) {
    store.get(this.key(id)).consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of store.get(`grant:${grantId}`) ?? []) store.delete(key);
    store.delete(`grant:${grantId}`);
  }
}

const clients = [{
  client_id: clientId,
  client_secret: clientSecret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'ES256',
}];
if (delegated) {
  clients.push({
    client_id: delegated.clientId,
    client_secret: delegated.clientSecret,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [delegated.redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: delegated.idTokenAlg,
  });
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys },
  clients,
  ...(delegated ? {
    adapter: MapAdapter,
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    // Gatehouse rotates on every use (OAuth 2.1 §4.3.1); oidc-provider's default rotates only
    // public clients' tokens or ones past 70% of their life.
    rotateRefreshToken: true,
  } : {}),
  // Same path as Gatehouse so both servers see byte-identical workloads.
  routes: { introspection: '/introspect' },
  ttl: {
    ClientCredentials: 600,
    // Code flow: lifetimes as Gatehouse's (pre-minted codes live an hour on both servers).
    ...(delegated ? { AccessToken: 600, IdToken: 600, AuthorizationCode: 3600, RefreshToken: 30 * 86400, Grant: 30 * 86400 } : {}),
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Only the token's own client may introspect it.
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: RESOURCE,
          accessTokenTTL: 600,
          accessTokenFormat: format === 'opaque' ? 'opaque' : 'jwt',
          // jwt-default: no `jwt.sign`, so the provider signs with its default algorithm.
          ...(format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
        };
      },
    },
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

if (delegated) {
  // As for Gatehouse: 200 users, each with a grant, the codes dealt out to them in turn.
  const client = await provider.Client.find(delegated.clientId);
  const grants = [];
  for (let u = 0; u < Math.min(200, delegated.codes); u++) {
    const accountId = `bench-user-${u}`;
    const grant = new provider.Grant({ accountId, clientId: delegated.clientId });
    grant.addOIDCScope('openid offline_access');
    grant.addResourceScope(RESOURCE, SCOPE);
    grants.push({ accountId, grantId: await grant.save() });
  }
  const authTime = Math.floor(Date.now() / 1000);
  const codes = [];
  for (let i = 0; i < delegated.codes; i++) {
    const verifier = randomBytes(32).toString('base64url');
    const code = new provider.AuthorizationCode({
      ...grants[i % grants.length],
      client,
      scope: `openid offline_access ${SCOPE}`,
      resource: RESOURCE,
      redirectUri: delegated.redirectUri,
      codeChallenge: createHash('sha256').update(verifier, 'ascii').digest('base64url'),
      codeChallengeMethod: 'S256',
      authTime,
      amr: ['pwd'],
      expiresWithSession: false,
    });
    codes.push([await code.save(), verifier]);
  }
  writeFileSync(delegated.codesFile, JSON.stringify(codes));
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: port, format, pid: process.pid }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
