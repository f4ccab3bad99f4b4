// Data the benchmark puts straight into Gatehouse's database before a timed phase: pre-minted
// authorization codes (through the server's own AuthorizationCodeRepository) and bulk clients
// (rows exactly as ClientRepository.createClient stores them). Used by run.mjs; benchClient is
// also used by load.mjs to derive the same credentials without shipping them.
import { createHash, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL, URLSearchParams } from 'node:url';
import { Buffer } from 'node:buffer';

const DIST = join(resolve(fileURLToPath(import.meta.url), '../..'), 'packages/server/dist');
const server = (path) => import(pathToFileURL(join(DIST, path)).href);

// How the server stores every bearer secret (and the S256 code challenge): SHA-256, base64url.
const { sha256 } = await server('tokens/random.js');

/** A form-encoded body (`application/x-www-form-urlencoded`). */
export const form = (params) => new URLSearchParams(params).toString();
const formEncode = (s) => new URLSearchParams([['', s]]).toString().slice(1);
/** RFC 6749 §2.3.1 client_secret_basic: id and secret form-encoded, then Basic. */
export const basicAuth = (id, secret) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;

/**
 * The i-th bulk client of a seed: a 32-hex client_id (the shape `clients create` generates) and a
 * 43-character secret (the shape it prints). Deterministic, so the load generator can rebuild any
 * subset from (seed, i) instead of reading a million secrets.
 */
export function benchClient(seed, i) {
  return {
    clientId: createHash('sha256').update(`${seed}:id:${i}`).digest('hex').slice(0, 32),
    secret: createHash('sha256').update(`${seed}:secret:${i}`).digest('base64url'),
  };
}

/** Gatehouse's storage over the same database the server uses (its own pool or connections). */
export async function openServerStorage({ databaseUrl, sqliteFile }) {
  const { openStorage } = await server('storage/storage.js');
  return openStorage({ databaseUrl, sqliteFile });
}

/**
 * `users` users who each consented to `clientId` for `scope` and `resources`, and `count`
 * authorization codes dealt out to them in turn, each stored as its SHA-256 digest with an S256
 * PKCE challenge, as /authorize stores them after sign-in and consent. Returns [code, verifier]
 * pairs in that order, so concurrent redemptions are different people's (one user's redemptions
 * and refreshes all update their grant row, and so queue behind each other on PostgreSQL).
 * The codes live `ttl` seconds (the server's own live authorization.codeTtl, 60 s; these must
 * outlast the warmup and a long BENCH_DURATION). Minting is not what is measured: the codes go in
 * one transaction.
 */
export async function mintAuthorizationCodes(storage, { clientId, scope, resources, redirectUri, count, users = 200, ttl = 3600 }) {
  const { AuthorizationCodeRepository } = await server('storage/repositories/authorization-code-repository.js');
  const now = Math.floor(Date.now() / 1000);
  const delegations = [];
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  for (let u = 0; u < Math.min(users, count); u++) {
    const user = await storage.users.createUser({ username: `${prefix}-${u}` }, null, now);
    const grant = await storage.grants.recordConsent(user.userId, clientId, scope, resources, now);
    delegations.push({ clientId, userId: user.userId, grantId: grant.grantId, scope, resources, sid: null, authTime: now, acr: null, amr: ['pwd'] });
  }
  const codes = [];
  await storage.handle.db.transaction().execute(async (trx) => {
    const repository = new AuthorizationCodeRepository(trx);
    for (let i = 0; i < count; i++) {
      const code = randomBytes(32).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      await repository.storeAuthorizationCode(sha256(code), {
        ...delegations[i % delegations.length],
        redirectUri,
        redirectUriSent: true,
        codeChallenge: sha256(verifier),
        nonce: null,
        createdAt: now,
        expiresAt: now + ttl,
        consumedAt: null,
        familyId: null,
        accessTokenJti: null,
        accessTokenExpiresAt: null,
      });
      codes.push([code, verifier]);
    }
  });
  return codes;
}

/**
 * Inserts bulk clients `from` .. `to - 1` of `seed`: client_credentials, client_secret_basic,
 * `scope`, one secret each (its SHA-256 digest). The columns are those ClientRepository's
 * toRow/createClient write; batches of `batch` rows per statement, `perTransaction` rows per
 * transaction, and the clients generation bumped in each transaction as every client write does.
 */
export async function insertClients(storage, { seed, from, to, scope, batch = 1000, perTransaction = 50_000, onProgress }) {
  const { bumpGeneration } = await server('storage/changes.js');
  const now = Math.floor(Date.now() / 1000);
  const db = storage.handle.db;
  for (let start = from; start < to; start += perTransaction) {
    const end = Math.min(to, start + perTransaction);
    await db.transaction().execute(async (trx) => {
      for (let b = start; b < end; b += batch) {
        const clients = [];
        const secrets = [];
        for (let i = b; i < Math.min(end, b + batch); i++) {
          const { clientId, secret } = benchClient(seed, i);
          clients.push({
            client_id: clientId,
            client_name: `bench ${i}`,
            owner: null,
            grant_types: JSON.stringify(['client_credentials']),
            redirect_uris: '[]',
            post_logout_redirect_uris: '[]',
            first_party: 0,
            always_issue_refresh_token: 0,
            id_token_signed_response_alg: null,
            scope,
            token_endpoint_auth_method: 'client_secret_basic',
            token_endpoint_auth_signing_alg: null,
            jwks: null,
            jwks_uri: null,
            contacts: '[]',
            access_token_ttl: null,
            disabled: 0,
            dynamically_registered: 0,
            created_at: now,
            updated_at: now,
            last_used_at: null,
            registration_token_hash: null,
          });
          secrets.push({ client_id: clientId, secret_hash: sha256(secret), created_at: now, expires_at: null });
        }
        await trx.insertInto('clients').values(clients).execute();
        await trx.insertInto('client_secrets').values(secrets).execute();
      }
      await bumpGeneration(trx, 'clients');
    });
    onProgress?.(end);
  }
}
