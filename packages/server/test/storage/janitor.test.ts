import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { runJanitor } from '../../src/janitor.js';
import type { AuthorizationCode, RefreshToken } from '../../src/model.js';
import { migrateToLatest } from '../../src/storage/database.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';
import { sha256 } from '../../src/tokens/random.js';
import { createPostgresSchema, type PostgresSchema } from '../helpers/postgres.js';
import { DIALECTS, type Dialect } from '../helpers/server.js';

const NOW = 1_800_000_000;

describe.each(DIALECTS)('janitor on %s', (dialect: Dialect) => {
  let storage: Storage;
  let dir: string;
  let schema: PostgresSchema | undefined;
  const config = resolveConfig({ janitor: { batchSize: 10, maxBatches: 100 } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-janitor-'));
    if (dialect === 'postgres') schema = await createPostgresSchema();
    storage = openStorage({ databaseUrl: schema?.url, sqliteFile: join(dir, 'janitor.db') });
    await migrateToLatest(storage.handle.db);
  });

  afterAll(async () => {
    await storage.close();
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = async (table: 'authorization_codes' | 'device_codes' | 'interactions' | 'token_families' | 'refresh_tokens' | 'revoked_access_tokens' | 'used_assertions' | 'opaque_access_tokens' | 'initial_access_tokens' | 'browser_sessions') =>
    Number((await storage.handle.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it('deletes exactly the expired rows of every table, in batches, and refresh tokens with their family', async () => {
    const client = await storage.clients.createClient(
      {
        clientId: 'c1', clientName: null, owner: null, grantTypes: ['authorization_code', 'refresh_token'], redirectUris: ['https://a.example/cb'], postLogoutRedirectUris: [],
        firstParty: false, alwaysIssueRefreshToken: false, idTokenSignedResponseAlg: null, scope: [], tokenEndpointAuthMethod: 'none', tokenEndpointAuthSigningAlg: null,
        jwks: null, jwksUri: null, contacts: [], accessTokenTtl: null, dynamicallyRegistered: false,
      },
      NOW,
      { secretHash: null },
    );
    const user = await storage.users.createUser({ username: 'u1' }, null, NOW);
    const grant = await storage.grants.recordConsent(user.userId, client.clientId, ['openid'], [], NOW);
    const delegation = { clientId: client.clientId, userId: user.userId, grantId: grant.grantId, scope: ['openid'], resources: [], sid: null, authTime: NOW, acr: null, amr: [] };

    // 25 expired and 3 live rows per table: more than two batches of 10.
    for (let i = 0; i < 28; i++) {
      const expired = i < 25;
      const end = expired ? NOW - 10 : NOW + 600;
      const code: AuthorizationCode = {
        ...delegation, redirectUri: 'https://a.example/cb', redirectUriSent: true, codeChallenge: 'c'.repeat(43), nonce: null,
        createdAt: NOW - 100_000, expiresAt: expired ? NOW - 86_400 - 1 : NOW + 60, consumedAt: null, familyId: null, accessTokenJti: null, accessTokenExpiresAt: null,
      };
      await storage.codes.storeAuthorizationCode(sha256(`code ${i}`), code);
      await storage.interactions.createInteraction(`i${i}`, sha256('b'), {
        clientId: 'c1', redirectUri: 'https://a.example/cb', redirectUriSent: true, scope: [], state: null, nonce: null, codeChallenge: 'c'.repeat(43),
        responseMode: 'query', resources: [], prompt: [], maxAge: null, loginHint: null, acrValues: [], uiLocales: null,
      }, NOW - 700, end);
      // A family with two refresh tokens (one rotated), redeemed through a code.
      const familyId = `f${i}`;
      const rt = (suffix: string, rotatedAt: number | null): { tokenHash: string; token: RefreshToken } => ({
        tokenHash: sha256(`rt ${i} ${suffix}`),
        token: { ...delegation, familyId, createdAt: NOW - 700, expiresAt: end, idleExpiresAt: end, rotatedAt, revoked: false },
      });
      await storage.codes.storeAuthorizationCode(sha256(`redeemed ${i}`), { ...code, expiresAt: NOW + 60 });
      expect(await storage.codes.redeemAuthorizationCode(sha256(`redeemed ${i}`), NOW - 1, { familyId, familyExpiresAt: end, accessTokenJti: `j${i}`, accessTokenExpiresAt: end, refreshToken: rt('a', null) })).toBe('redeemed');
      expect(await storage.refreshTokens.rotateRefreshToken(sha256(`rt ${i} a`), rt('b', null), NOW - 1)).toBe(true);
      await storage.accessTokens.revokeAccessTokenId(`jti ${i}`, end);
      await storage.assertions.recordAssertionId(sha256(`assertion ${i}`), end, NOW - 700);
      await storage.accessTokens.storeOpaqueAccessToken(sha256(`opaque ${i}`), {
        jti: `oj${i}`, clientId: 'c1', subject: 'c1', familyId: null, audience: ['https://api'], scope: [], issuedAt: NOW - 700, expiresAt: end, revoked: false,
      });
      await storage.initialAccessTokens.createInitialAccessToken(sha256(`iat ${i}`), { description: null, scope: [], createdAt: NOW - 700, expiresAt: end, maxUses: null });
      await storage.sessions.createSession({ sessionHash: sha256(`session ${i}`), sid: `sid${i}`, userId: user.userId, authTime: NOW - 700, amr: ['pwd'], acr: null, expiresAt: end, now: NOW - 700 });
      // Device codes are kept a day past expiry (a late replay still revokes what they issued).
      expect(
        await storage.deviceCodes.createDeviceAuthorization({
          deviceCodeHash: sha256(`device ${i}`), selectorHash: sha256(`selector ${i}`), userCodeHash: sha256(`user code ${i}`), clientId: 'c1', scope: [], resources: [],
          pollInterval: 5, createdAt: NOW - 100_000, expiresAt: expired ? NOW - 86_400 - 1 : NOW - 60,
        }),
      ).toBe(true);
    }
    expect(await count('refresh_tokens')).toBe(56);

    const report = await runJanitor(storage, config, NOW, 'test-holder');
    expect(report).toMatchObject({
      authorization_codes: 25,
      device_codes: 25,
      interactions: 25,
      token_families: 25,
      revoked_access_tokens: 25,
      used_assertions: 25,
      opaque_access_tokens: 25,
      initial_access_tokens: 25,
      browser_sessions: 25,
    });
    // Back to the live rows only; refresh tokens went with their families (rotated ones too).
    expect(await count('authorization_codes')).toBe(3 + 28);
    for (const table of ['device_codes', 'interactions', 'token_families', 'revoked_access_tokens', 'used_assertions', 'opaque_access_tokens', 'initial_access_tokens', 'browser_sessions'] as const) {
      expect(await count(table)).toBe(3);
    }
    expect(await count('refresh_tokens')).toBe(6);
    // A second run finds nothing left to delete.
    const again = await runJanitor(storage, config, NOW, 'test-holder');
    expect(Object.values(again ?? {}).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('lets one instance sweep at a time', async () => {
    expect(await storage.janitor.acquireLock('a', NOW + 1000, 60)).toBe(true);
    expect(await storage.janitor.acquireLock('b', NOW + 1010, 60)).toBe(false);
    expect(await runJanitor(storage, config, NOW + 1010, 'b')).toBeUndefined();
    // The holder renews; after the lock lapses another instance takes over.
    expect(await storage.janitor.acquireLock('a', NOW + 1020, 60)).toBe(true);
    expect(await storage.janitor.acquireLock('b', NOW + 1081, 60)).toBe(true);
  });
});
