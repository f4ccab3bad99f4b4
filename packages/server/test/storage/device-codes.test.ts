import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minimumPollGap } from '../../src/protocol/device-authorization.js';
import { formatUserCode, generateUserCode, normalizeUserCode, USER_CODE_ALPHABET } from '../../src/protocol/user-code.js';
import { migrateToLatest } from '../../src/storage/database.js';
import type { NewDeviceAuthorization } from '../../src/storage/repositories/device-code-repository.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';
import { sha256 } from '../../src/tokens/random.js';
import { createPostgresSchema, type PostgresSchema } from '../helpers/postgres.js';
import { DIALECTS, type Dialect } from '../helpers/server.js';

const NOW = 1_800_000_000;

describe('user codes (RFC 8628 §6.1)', () => {
  it('are eight characters of the base-20 alphabet, spread over all of it', () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const code = generateUserCode();
      expect(code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{8}$/);
      for (const c of code) seen.set(c, (seen.get(c) ?? 0) + 1);
    }
    expect([...seen.keys()].sort().join('')).toBe(USER_CODE_ALPHABET);
    // 16 000 characters: every letter near 800 (a modulo bias would favour the first 16 by ~6 %).
    for (const n of seen.values()) expect(n).toBeGreaterThan(650);
  });

  it('normalize ignoring case, spaces and dashes; refuse anything else', () => {
    expect(normalizeUserCode('bcdf-ghjk')).toBe('BCDFGHJK');
    expect(normalizeUserCode(' B C D F – G H J K ')).toBe('BCDFGHJK');
    expect(formatUserCode('BCDFGHJK')).toBe('BCDF-GHJK');
    for (const bad of ['', 'BCDF-GHJ', 'BCDF-GHJKL', 'ABCD-EFGH', 'BCDF_GHJK', 'BCDF-GHJ1', 'ＢＣＤＦ-ＧＨＪＫ', 'x'.repeat(100)]) {
      expect(normalizeUserCode(bad)).toBeUndefined();
    }
  });

  it('the polling tolerance is one second of clock granularity', () => {
    expect(minimumPollGap(5)).toBe(4);
    expect(minimumPollGap(1)).toBe(1);
  });
});

describe.each(DIALECTS)('device code repository on %s', (dialect: Dialect) => {
  let storage: Storage;
  let dir: string;
  let schema: PostgresSchema | undefined;
  let n = 0;
  const request = (over: Partial<NewDeviceAuthorization> = {}): NewDeviceAuthorization => {
    n++;
    return {
      deviceCodeHash: sha256(`device ${n}`), selectorHash: sha256(`selector ${n}`), userCodeHash: sha256(`code ${n}`), clientId: 'tv',
      scope: ['tv:watch'], resources: [], pollInterval: 5, createdAt: NOW, expiresAt: NOW + 600, ...over,
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-device-'));
    if (dialect === 'postgres') schema = await createPostgresSchema();
    storage = openStorage({ databaseUrl: schema?.url, sqliteFile: join(dir, 'device.db') });
    await migrateToLatest(storage.handle.db);
    await storage.clients.createClient(
      {
        clientId: 'tv', clientName: null, owner: null, grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'], redirectUris: [], postLogoutRedirectUris: [],
        firstParty: false, alwaysIssueRefreshToken: false, idTokenSignedResponseAlg: null, scope: ['tv:watch'], tokenEndpointAuthMethod: 'none', tokenEndpointAuthSigningAlg: null,
        jwks: null, jwksUri: null, contacts: [], accessTokenTtl: null, dynamicallyRegistered: false,
      },
      NOW,
      { secretHash: null },
    );
  });
  afterAll(async () => {
    await storage.close();
    await schema?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a user code is unique among pending requests; an expired request gives its code up; selectors may repeat', async () => {
    const first = request();
    expect(await storage.deviceCodes.createDeviceAuthorization(first)).toBe(true);
    expect(await storage.deviceCodes.createDeviceAuthorization(request({ userCodeHash: first.userCodeHash }))).toBe(false);
    const later = request({ userCodeHash: first.userCodeHash, createdAt: NOW + 600, expiresAt: NOW + 1200 });
    expect(await storage.deviceCodes.createDeviceAuthorization(later)).toBe(true);
    // The expired one is still there (for the device's expired_token), without its code.
    expect(await storage.deviceCodes.findDeviceAuthorization(first.deviceCodeHash)).toMatchObject({ status: 'pending' });
    // Two pending requests whose codes start alike are both found by the selector.
    const sibling = request({ selectorHash: later.selectorHash, createdAt: NOW + 600, expiresAt: NOW + 1200 });
    expect(await storage.deviceCodes.createDeviceAuthorization(sibling)).toBe(true);
    const found = await storage.deviceCodes.findPendingBySelector(later.selectorHash, NOW + 601);
    expect(found.map((f) => f.deviceCodeHash).sort()).toEqual([later.deviceCodeHash, sibling.deviceCodeHash].sort());
  });

  it('concurrent inserts of one user code: exactly one holds it', async () => {
    const userCodeHash = sha256('contended');
    const results = await Promise.all(Array.from({ length: 10 }, () => storage.deviceCodes.createDeviceAuthorization(request({ userCodeHash }))));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('locks after the given number of wrong codes, and only a pending request', async () => {
    const r = request();
    await storage.deviceCodes.createDeviceAuthorization(r);
    expect(await storage.deviceCodes.recordWrongUserCode(r.deviceCodeHash, 3, NOW)).toBe(false);
    expect(await storage.deviceCodes.recordWrongUserCode(r.deviceCodeHash, 3, NOW)).toBe(false);
    expect(await storage.deviceCodes.recordWrongUserCode(r.deviceCodeHash, 3, NOW)).toBe(true);
    expect(await storage.deviceCodes.findDeviceAuthorization(r.deviceCodeHash)).toMatchObject({ status: 'locked', failedAttempts: 3 });
    expect(await storage.deviceCodes.findPendingBySelector(r.selectorHash, NOW)).toEqual([]);
    expect(await storage.deviceCodes.denyDeviceAuthorization(r.deviceCodeHash, NOW)).toBe(false);
  });

  it('concurrent decisions: exactly one counts, and consent is recorded only when an approval wins', async () => {
    for (let round = 0; round < 5; round++) {
      const r = request();
      await storage.deviceCodes.createDeviceAuthorization(r);
      const user = await storage.users.createUser({ username: `u${n}` }, null, NOW);
      const approval = { userId: user.userId, sid: null, authTime: NOW, acr: null, amr: ['pwd'] };
      const decisions = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? storage.deviceCodes.approveDeviceAuthorization(r.deviceCodeHash, approval, NOW) : storage.deviceCodes.denyDeviceAuthorization(r.deviceCodeHash, NOW))),
      );
      expect(decisions.filter(Boolean)).toHaveLength(1);
      const stored = await storage.deviceCodes.findDeviceAuthorization(r.deviceCodeHash);
      const grant = await storage.grants.findGrant(user.userId, 'tv');
      if (stored?.status === 'approved') {
        expect(grant?.scope).toEqual(['tv:watch']);
        expect(stored.approval).toEqual({ ...approval, grantId: grant?.grantId });
      } else {
        expect(stored?.status).toBe('denied');
        expect(grant).toBeUndefined();
      }
    }
  });

  it('concurrent redemptions of an approved request: exactly one records a lineage', async () => {
    const r = request();
    await storage.deviceCodes.createDeviceAuthorization(r);
    const user = await storage.users.createUser({ username: `u${n}` }, null, NOW);
    expect(await storage.deviceCodes.approveDeviceAuthorization(r.deviceCodeHash, { userId: user.userId, sid: null, authTime: NOW, acr: null, amr: [] }, NOW)).toBe(true);
    const grant = await storage.grants.findGrant(user.userId, 'tv');
    if (grant === undefined) throw new Error('no grant');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        storage.deviceCodes.redeemDeviceCode(r.deviceCodeHash, NOW + 1, { familyId: `fam-${n}-${i}`, familyExpiresAt: NOW + 3600, accessTokenJti: `jti-${n}-${i}`, accessTokenExpiresAt: NOW + 600 }),
      ),
    );
    expect(results.filter((x) => x === 'redeemed')).toHaveLength(1);
    const families = await storage.handle.db.selectFrom('token_families').select('family_id').where('grant_id', '=', grant.grantId).execute();
    expect(families).toHaveLength(1);
  });

  it('polls: on time, too soon (the interval grows by 5), on time again at the new interval', async () => {
    const r = request();
    await storage.deviceCodes.createDeviceAuthorization(r);
    const poll = (at: number) => storage.deviceCodes.recordPoll(r.deviceCodeHash, at, minimumPollGap, 5);
    expect(await poll(NOW)).toEqual({ tooSoon: false });
    expect(await poll(NOW + 2)).toEqual({ tooSoon: true, pollInterval: 10 });
    expect(await poll(NOW + 8)).toEqual({ tooSoon: true, pollInterval: 15 });
    expect(await poll(NOW + 8 + 14)).toEqual({ tooSoon: false });
  });
});
