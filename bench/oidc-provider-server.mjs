// Reference server for `npm run bench`: node-oidc-provider v9 configured for the
// client_credentials + introspection workloads that Gatehouse is compared against.
//
// Usage: node bench/oidc-provider-server.mjs '{"port":4100,"format":"jwt","clientId":"bench","clientSecret":"..."}'
// format is "jwt" (ES256-signed at+jwt access tokens) or "opaque". In-memory adapter (the default).
import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'https://api.bench.example';
const SCOPE = 'bench:read';

const { port, format, clientId, clientSecret } = JSON.parse(process.argv[2] ?? '{}');
if (!port || !['jwt', 'opaque'].includes(format) || !clientId || !clientSecret) {
  console.error('usage: oidc-provider-server.mjs \'{"port":N,"format":"jwt"|"opaque","clientId":"..","clientSecret":".."}\'');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [signingKey] },
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  // Same path as Gatehouse so both servers see byte-identical workloads.
  routes: { introspection: '/introspect' },
  ttl: { ClientCredentials: 600 },
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
          accessTokenFormat: format,
          ...(format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
        };
      },
    },
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: port, format, pid: process.pid }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
