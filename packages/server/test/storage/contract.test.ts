import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageRecorder } from '../../src/usage-recorder.js';
import { createLogger } from '../../src/logging.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientInput, StoredSigningKey } from '../../src/model.js';
import { migrateToLatest } from '../../src/storage/database.js';
import { InitialAccessTokenRejectedError } from '../../src/storage/repositories/client-repository.js';
import { ScopeConflictError } from '../../src/storage/repositories/resource-repository.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';
import { sha256 } from '../../src/tokens/random.js';
import { DIALECTS, type Dialect } from '../helpers/server.js';
import { createPostgresSchema, type PostgresSchema } from '../helpers/postgres.js';

const NOW = 1_800_000_000;

function clientInput(clientId: string, overrides: Partial<ClientInput> = {}): ClientInput {
  return {
    clientId,
    clientName: `client ${clientId}`,
    owner: 'team-a',
    grantTypes: ['client_credentials'],
    redirectUris: [],
    postLogoutRedirectUris: [],
    firstParty: false,
    alwaysIssueRefreshToken: false,
    idTokenSignedResponseAlg: null,
    scope: ['orders:read'],
    tokenEndpointAuthMethod: 'client_secret_basic',
    tokenEndpointAuthSigningAlg: null,
    jwks: null,
    jwksUri: null,
    contacts: ['ops@example.com'],
    accessTokenTtl: null,
    dynamicallyRegistered: false,
    ...overrides,
  };
}

function signingKey(kid: string, overrides: Partial<StoredSigningKey> = {}): StoredSigningKey {
  return {
    kid,
    purpose: 'access_token',
    alg: 'ES256',
    publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' },
    encryptedPrivateKey: 'v1.a.b.c',
    createdAt: NOW,
    activatesAt: NOW,
    retiresAt: null,
    expiresAt: null,
    ...overrides,
  };
}

/** One contract, every dialect: the repositories behave the same on SQLite and PostgreSQL. */
describe.each(DIALECTS)('storage contract on %s', (dialect: Dialect) => {
  let storage: Storage;
  let dir: string;
  let schema: PostgresSchema | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-storage-'));
    if (dialect === 'postgres') schema = await createPostgresSchema();
    storage = openStorage({ databaseUrl: schema?.url, sqliteFile: join(dir, 'test.db') });
    const first = await migrateToLatest(storage.handle.db);
    expect(first.applied).toEqual(['0001-foundation', '0002-generations', '0003-users', '0004-authorization', '0005-device', '0006-rate-limits']);
    const second = await migrateToLatest(storage.handle.db);
    expect(second.applied).toEqual([]);
  });

  afterAll(async () => {
    await storage.close();
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports its dialect and answers a ping', async () => {
    expect(storage.dialect).toBe(dialect);
    await expect(storage.ping()).resolves.toBeUndefined();
  });

  describe('clients', () => {
    it('creates a client with its secret digest and reads it back', async () => {
      const created = await storage.clients.createClient(clientInput('c1'), NOW, { secretHash: sha256('s1') });
      expect(created).toMatchObject({ clientId: 'c1', owner: 'team-a', scope: ['orders:read'], disabled: false, createdAt: NOW, lastUsedAt: null });
      const auth = await storage.clients.findClientForAuthentication('c1', NOW);
      expect(auth?.secretHashes).toEqual([sha256('s1')]);
      expect(await storage.clients.findClientForAuthentication('nope', NOW)).toBeUndefined();
    });

    it('refuses a duplicate client_id and leaves nothing half-written', async () => {
      await expect(storage.clients.createClient(clientInput('c1'), NOW, { secretHash: sha256('other') })).rejects.toThrow();
      const auth = await storage.clients.findClientForAuthentication('c1', NOW);
      expect(auth?.secretHashes).toEqual([sha256('s1')]);
    });

    it('rotates a secret with an overlap, then without', async () => {
      expect(await storage.clients.rotateClientSecret('c1', sha256('s2'), NOW + 10, 100)).toBe(true);
      let auth = await storage.clients.findClientForAuthentication('c1', NOW + 20);
      expect(auth?.secretHashes.sort()).toEqual([sha256('s1'), sha256('s2')].sort());
      // After the overlap only the new secret is valid.
      auth = await storage.clients.findClientForAuthentication('c1', NOW + 111);
      expect(auth?.secretHashes).toEqual([sha256('s2')]);
      expect(await storage.clients.rotateClientSecret('c1', sha256('s3'), NOW + 20, 0)).toBe(true);
      auth = await storage.clients.findClientForAuthentication('c1', NOW + 21);
      expect(auth?.secretHashes).toEqual([sha256('s3')]);
      expect(await storage.clients.rotateClientSecret('missing', sha256('x'), NOW, 0)).toBe(false);
    });

    it('updates, disables, records use and lists with secret age', async () => {
      expect(await storage.clients.updateClient(clientInput('c1', { scope: ['orders:read', 'orders:write'], owner: 'team-b' }), NOW + 30)).toBe(true);
      expect(await storage.clients.updateClient(clientInput('missing'), NOW)).toBe(false);
      expect(await storage.clients.setClientDisabled('c1', true, NOW + 31)).toBe(true);
      await storage.clients.recordClientsUse(['c1'], NOW + 40);
      const [summary] = (await storage.clients.listClients(NOW + 50)).filter((c) => c.clientId === 'c1');
      expect(summary).toMatchObject({ owner: 'team-b', scope: ['orders:read', 'orders:write'], disabled: true, lastUsedAt: NOW + 40, activeSecrets: 1, secretCreatedAt: NOW + 20 });
      expect(await storage.clients.setClientDisabled('c1', false, NOW + 51)).toBe(true);
    });

    /** Every client's last use, by id. */
    const lastUse = async () => new Map((await storage.clients.listClients(NOW + 300)).map((c) => [c.clientId, c.lastUsedAt]));

    it('records the use of many clients behind the token path: nothing until a flush writes them all, the rest on close', async () => {
      const ids = Array.from({ length: 520 }, (_, i) => `usage-${i}`);
      for (const id of ids) await storage.clients.createClient(clientInput(id), NOW, { secretHash: null });
      // A flush interval no test run reaches: the flush below is the one that writes (the timer's
      // own flushes are exercised end to end by the token-path tests).
      const recorder = new UsageRecorder((ids, at) => storage.clients.recordClientsUse(ids, at), createLogger('silent'), 'client', 60, 600_000);
      for (const id of ids.slice(0, 510)) recorder.record(id, NOW + 60);
      recorder.record('usage-0', NOW + 61); // within the interval: not noted again
      expect((await lastUse()).get('usage-0')).toBeNull();
      await recorder.flush();
      let seen = await lastUse();
      expect(ids.slice(0, 510).every((id) => seen.get(id) === NOW + 60)).toBe(true);
      expect(seen.get('usage-510')).toBeNull();
      recorder.record('usage-510', NOW + 70);
      await recorder.close();
      seen = await lastUse();
      expect(seen.get('usage-510')).toBe(NOW + 70);
    });

    it('never moves a last use back: an instance whose batch lands late keeps the later time', async () => {
      await storage.clients.recordClientsUse(['usage-1'], NOW + 200);
      await storage.clients.recordClientsUse(['usage-2', 'usage-1', 'usage-2'], NOW + 150);
      const seen = await lastUse();
      expect(seen.get('usage-1')).toBe(NOW + 200);
      expect(seen.get('usage-2')).toBe(NOW + 150);
    });

    it('finds a client by registration token digest', async () => {
      await storage.clients.createClient(clientInput('c2', { dynamicallyRegistered: true }), NOW, { secretHash: null, registrationTokenHash: sha256('rat') });
      expect((await storage.clients.findClientByRegistrationToken(sha256('rat')))?.clientId).toBe('c2');
      expect(await storage.clients.findClientByRegistrationToken(sha256('other'))).toBeUndefined();
    });

    it('deletes a client with its secrets', async () => {
      expect(await storage.clients.deleteClient('c2')).toBe(true);
      expect(await storage.clients.deleteClient('c2')).toBe(false);
      expect(await storage.clients.findClient('c2')).toBeUndefined();
    });
  });

  describe('initial access tokens', () => {
    it('counts uses in the registration transaction and stops at max_uses', async () => {
      await storage.initialAccessTokens.createInitialAccessToken(sha256('iat'), { description: null, scope: ['a', 'b'], createdAt: NOW, expiresAt: NOW + 100, maxUses: 1 });
      expect(await storage.initialAccessTokens.findValidInitialAccessToken(sha256('iat'), NOW)).toEqual({ scope: ['a', 'b'] });
      await storage.clients.createClient(clientInput('r1'), NOW, { secretHash: null, initialAccessTokenHash: sha256('iat') });
      expect(await storage.initialAccessTokens.findValidInitialAccessToken(sha256('iat'), NOW)).toBeUndefined();
      await expect(storage.clients.createClient(clientInput('r2'), NOW, { secretHash: null, initialAccessTokenHash: sha256('iat') })).rejects.toBeInstanceOf(
        InitialAccessTokenRejectedError,
      );
      // The failed registration left no client behind.
      expect(await storage.clients.findClient('r2')).toBeUndefined();
    });

    it('expires', async () => {
      await storage.initialAccessTokens.createInitialAccessToken(sha256('iat2'), { description: 'x', scope: [], createdAt: NOW, expiresAt: NOW + 10, maxUses: null });
      expect(await storage.initialAccessTokens.findValidInitialAccessToken(sha256('iat2'), NOW + 9)).toEqual({ scope: [] });
      expect(await storage.initialAccessTokens.findValidInitialAccessToken(sha256('iat2'), NOW + 10)).toBeUndefined();
    });
  });

  describe('resources', () => {
    it('creates a resource with scopes and maps scopes to their owner', async () => {
      const r = await storage.resources.createResource(
        { identifier: 'https://orders.example', name: 'Orders', scopes: [{ name: 'orders', description: 'All orders' }], accessTokenTtl: 300, accessTokenFormat: 'opaque', clientId: 'c1' },
        NOW,
      );
      expect(r).toMatchObject({ identifier: 'https://orders.example', accessTokenFormat: 'opaque', accessTokenTtl: 300, scopes: [{ name: 'orders', description: 'All orders' }] });
      expect(await storage.resources.listResourcesRepresentedBy('c1')).toEqual(['https://orders.example']);
    });

    it('refuses a scope that overlaps another resource scope, atomically', async () => {
      await expect(
        storage.resources.createResource({ identifier: 'https://items.example', name: 'Items', scopes: [{ name: 'orders:items', description: null }], accessTokenTtl: null, accessTokenFormat: 'jwt', clientId: null }, NOW),
      ).rejects.toBeInstanceOf(ScopeConflictError);
      expect(await storage.resources.findResource('https://items.example')).toBeUndefined();
    });

    it('lists and deletes', async () => {
      expect((await storage.resources.listResources()).map((r) => r.identifier)).toContain('https://orders.example');
      expect(await storage.resources.deleteResource('https://orders.example')).toBe(true);
      expect(await storage.resources.findResource('https://orders.example')).toBeUndefined();
      // Its scopes went with it: the name is free for another resource.
      await storage.resources.createResource({ identifier: 'https://new.example', name: 'New', scopes: [{ name: 'orders', description: null }], accessTokenTtl: null, accessTokenFormat: 'jwt', clientId: null }, NOW);
    });
  });

  describe('signing keys', () => {
    it('rotates: the old key retires when the next activates and stays published until it expires', async () => {
      await storage.keys.rotateSigningKey({ purpose: 'access_token', next: signingKey('k1'), retiredExpireAt: NOW + 1000 }, (p) => p.length === 0, NOW);
      // A second "first key" attempt (another instance racing) sees k1 and does nothing.
      expect(await storage.keys.rotateSigningKey({ purpose: 'access_token', next: signingKey('k1b'), retiredExpireAt: NOW + 1000 }, (p) => p.length === 0, NOW)).toBe(false);
      const rotated = await storage.keys.rotateSigningKey(
        { purpose: 'access_token', next: signingKey('k2', { activatesAt: NOW + 100 }), retiredExpireAt: NOW + 100 + 700 },
        () => true,
        NOW,
      );
      expect(rotated).toBe(true);
      const published = await storage.keys.listPublishedKeys(NOW + 50);
      expect(published.map((k) => [k.kid, k.retiresAt, k.expiresAt])).toEqual([
        ['k1', NOW + 100, NOW + 800],
        ['k2', null, null],
      ]);
      expect((await storage.keys.listPublishedKeys(NOW + 800)).map((k) => k.kid)).toEqual(['k2']);
      expect(await storage.keys.deleteExpiredKeys(NOW + 800)).toBe(1);
      expect((await storage.keys.listAllKeys()).map((k) => k.kid)).toEqual(['k2']);
    });
  });

  describe('access tokens and assertions', () => {
    it('stores opaque tokens by digest and revokes them', async () => {
      await storage.accessTokens.storeOpaqueAccessToken(sha256('opaque'), {
        jti: 'j1', clientId: 'c1', subject: 'c1', familyId: null, audience: ['https://a'], scope: ['x', 'y'], issuedAt: NOW, expiresAt: NOW + 60, revoked: false,
      });
      expect(await storage.accessTokens.findOpaqueAccessToken(sha256('opaque'))).toMatchObject({ jti: 'j1', audience: ['https://a'], scope: ['x', 'y'], revoked: false });
      await storage.accessTokens.revokeOpaqueAccessToken(sha256('opaque'));
      expect((await storage.accessTokens.findOpaqueAccessToken(sha256('opaque')))?.revoked).toBe(true);
      expect(await storage.accessTokens.findOpaqueAccessToken(sha256('unknown'))).toBeUndefined();
    });

    it('remembers revoked JWT ids, idempotently', async () => {
      await storage.accessTokens.revokeAccessTokenId('jti-1', NOW + 60);
      await storage.accessTokens.revokeAccessTokenId('jti-1', NOW + 60);
      expect(await storage.accessTokens.isAccessTokenIdRevoked('jti-1')).toBe(true);
      expect(await storage.accessTokens.isAccessTokenIdRevoked('jti-2')).toBe(false);
    });

    it('accepts an assertion id once, concurrently, and again only after it expired', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => storage.assertions.recordAssertionId(sha256('c1 jti'), NOW + 60, NOW)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await storage.assertions.recordAssertionId(sha256('c1 jti'), NOW + 120, NOW + 59)).toBe(false);
      expect(await storage.assertions.recordAssertionId(sha256('c1 jti'), NOW + 180, NOW + 60)).toBe(true);
    });
  });
});
