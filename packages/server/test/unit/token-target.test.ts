import { describe, expect, it } from 'vitest';
import { decideTokenTarget, ownerOf, quoteScopes, scopeLineage, type TargetDecision, type TargetInput, type TargetResource } from '../../src/protocol/token-target.js';

const ORDERS = 'https://orders.example.com';
const ITEMS = 'https://items.example.com';
const BILLING = 'https://billing.example.com';
const DEFAULT_AUDIENCE = 'https://auth.example.com';

/** Scope owners as storage reports them: `orders:items` is defined by a separate API. */
const OWNERS: ReadonlyMap<string, string> = new Map([
  ['orders', ORDERS],
  ['orders:items', ITEMS],
  ['billing', BILLING],
]);

const RESOURCES: Record<string, TargetResource> = {
  [ORDERS]: { identifier: ORDERS, scopes: ['orders'] },
  [ITEMS]: { identifier: ITEMS, scopes: ['orders:items'] },
  [BILLING]: { identifier: BILLING, scopes: ['billing'] },
};

function decide(clientScopes: string[], requested: string[] | null, resourceParam: string | null = null): TargetDecision {
  const input: TargetInput = {
    clientScopes,
    requested,
    resourceParam,
    resource: resourceParam === null ? undefined : RESOURCES[resourceParam],
    owners: OWNERS,
    defaultAudience: DEFAULT_AUDIENCE,
  };
  return decideTokenTarget(input);
}

describe('scopeLineage', () => {
  it.each([
    ['a', ['a']],
    ['orders', ['orders']],
    ['orders:items', ['orders:items', 'orders']],
    ['a:b:c', ['a:b:c', 'a:b', 'a']],
    ['a:b:c:d', ['a:b:c:d', 'a:b:c', 'a:b', 'a']],
    ['a:', ['a:', 'a']],
    [':a', [':a']],
  ])('%j → %j', (scope, expected) => {
    expect(scopeLineage(scope)).toEqual(expected);
  });
});

describe('ownerOf', () => {
  it.each<[string, string | undefined]>([
    ['orders', ORDERS],
    ['orders:read', ORDERS],
    ['orders:items', ITEMS],
    ['orders:items:read', ITEMS],
    ['billing:invoices:write', BILLING],
    ['ordersX', undefined],
    ['orders-items', undefined],
    ['profile', undefined],
    ['items', undefined],
  ])('%s → %s', (scope, owner) => {
    expect(ownerOf(scope, OWNERS)).toBe(owner);
  });

  it('finds nothing in an empty map', () => {
    expect(ownerOf('orders', new Map())).toBeUndefined();
  });
});

describe('decideTokenTarget: scopes the client was not granted', () => {
  it.each<[string, string[], string[], string | null]>([
    ['a scope outside the client', ['orders'], ['billing'], null],
    ['a parent of a granted child (grants flow down only)', ['orders:items'], ['orders'], null],
    ['a sibling name', ['orders'], ['ordersX'], null],
    ['one bad scope among good ones', ['orders'], ['orders', 'billing'], null],
    ['the same, with a resource', ['orders'], ['orders', 'billing'], ORDERS],
    ['any scope for a client holding none', [], ['orders'], null],
  ])('%s → invalid_scope', (_name, clientScopes, requested, resource) => {
    const decision = decide(clientScopes, requested, resource);
    expect(decision).toMatchObject({ ok: false, error: 'invalid_scope' });
    if (!decision.ok) expect(decision.description).toMatch(/not allowed for this client/);
  });

  it('names only the refused scopes', () => {
    const decision = decide(['orders'], ['orders', 'billing', 'profile']);
    expect(decision).toEqual({ ok: false, error: 'invalid_scope', description: 'scope not allowed for this client: billing profile' });
  });
});

describe('decideTokenTarget with a resource', () => {
  it('refuses an unknown resource', () => {
    expect(decide(['orders'], ['orders'], 'https://unknown.example.com')).toEqual({ ok: false, error: 'invalid_target', description: 'unknown resource' });
    expect(decide(['orders'], null, 'https://unknown.example.com')).toMatchObject({ ok: false, error: 'invalid_target' });
  });

  it.each<[string, string[], string[], string, string[]]>([
    ['its own scope', ['orders'], ['orders'], ORDERS, ['orders']],
    ['a child of its scope, through the hierarchy', ['orders'], ['orders:read'], ORDERS, ['orders:read']],
    ['a child scope owned more specifically by another API', ['orders'], ['orders:items'], ITEMS, ['orders:items']],
    ['a grandchild owned through its nearest ancestor', ['orders:items'], ['orders:items:read'], ITEMS, ['orders:items:read']],
  ])('accepts %s', (_name, clientScopes, requested, resource, scope) => {
    expect(decide(clientScopes, requested, resource)).toEqual({ ok: true, audience: resource, resource, scope });
  });

  it.each<[string, string[], string[], string]>([
    ['a scope of another resource', ['orders', 'billing'], ['billing'], ORDERS],
    ['a scope no resource owns', ['orders', 'profile'], ['profile'], ORDERS],
    ['a mix of own and foreign scopes', ['orders', 'billing'], ['orders', 'billing'], ORDERS],
    ['a child owned by a more specific API', ['orders'], ['orders:items'], ORDERS],
    ['the parent of its own scope', ['orders'], ['orders'], ITEMS],
  ])('refuses %s → invalid_scope', (_name, clientScopes, requested, resource) => {
    const decision = decide(clientScopes, requested, resource);
    expect(decision).toMatchObject({ ok: false, error: 'invalid_scope' });
    if (!decision.ok) expect(decision.description).toMatch(/not defined by this resource/);
  });

  it.each<[string, string[], string, string[]]>([
    ['the client scopes it owns', ['orders', 'billing'], ORDERS, ['orders']],
    ['a client scope owned through the hierarchy', ['orders:read', 'billing'], ORDERS, ['orders:read']],
    ['its scopes granted through a parent the client holds', ['orders'], ITEMS, ['orders:items']],
    ['own and granted scopes, once each', ['orders:items', 'orders:items:read'], ITEMS, ['orders:items', 'orders:items:read']],
  ])('without scope, carries %s', (_name, clientScopes, resource, scope) => {
    expect(decide(clientScopes, null, resource)).toEqual({ ok: true, audience: resource, resource, scope });
  });

  it.each<[string, string[], string]>([
    ['the client holds only other resources’ scopes', ['billing'], ORDERS],
    ['the client holds no scope at all', [], ORDERS],
    ['the client holds only a child owned elsewhere', ['orders:items'], ORDERS],
  ])('without scope, refuses when %s → invalid_target', (_name, clientScopes, resource) => {
    const decision = decide(clientScopes, null, resource);
    expect(decision).toMatchObject({ ok: false, error: 'invalid_target' });
    if (!decision.ok) expect(decision.description).toMatch(/holds no scope of this resource/);
  });
});

describe('decideTokenTarget without a resource', () => {
  it.each<[string, string[], string[] | null, string, string | null, string[]]>([
    ['requested scopes of one resource → that resource', ['orders', 'billing'], ['orders'], ORDERS, ORDERS, ['orders']],
    ['a child scope → its most specific owner', ['orders'], ['orders:items:read'], ITEMS, ITEMS, ['orders:items:read']],
    ['a child of orders not claimed by items → orders', ['orders'], ['orders:write'], ORDERS, ORDERS, ['orders:write']],
    ['scopes no resource owns → the default audience', ['profile', 'email'], ['profile'], DEFAULT_AUDIENCE, null, ['profile']],
    ['owned and unowned scopes → the owner', ['orders', 'profile'], ['orders', 'profile'], ORDERS, ORDERS, ['orders', 'profile']],
    ['no scope parameter → the client scopes of one resource', ['orders', 'orders:read'], null, ORDERS, ORDERS, ['orders', 'orders:read']],
    ['no scope parameter, unowned client scopes → the default audience', ['profile'], null, DEFAULT_AUDIENCE, null, ['profile']],
    ['no scope parameter, no client scopes → the default audience, no scope', [], null, DEFAULT_AUDIENCE, null, []],
  ])('%s', (_name, clientScopes, requested, audience, resource, scope) => {
    expect(decide(clientScopes, requested)).toEqual({ ok: true, audience, resource, scope });
  });

  it.each<[string, string[], string[] | null]>([
    ['requested scopes of two resources', ['orders', 'billing'], ['orders', 'billing']],
    ['a parent and a child owned by different APIs', ['orders'], ['orders', 'orders:items']],
    ['no scope parameter, client scopes of two resources', ['orders', 'billing'], null],
  ])('refuses %s → invalid_target', (_name, clientScopes, requested) => {
    const decision = decide(clientScopes, requested);
    expect(decision).toMatchObject({ ok: false, error: 'invalid_target' });
    if (!decision.ok) expect(decision.description).toMatch(/several resources/);
  });

  it('returns a copy of the requested scopes, not the caller’s array', () => {
    const requested = ['orders'];
    const decision = decide(['orders'], requested);
    expect(decision.ok && decision.scope).toEqual(['orders']);
    expect(decision.ok && decision.scope).not.toBe(requested);
  });
});

describe('quoteScopes', () => {
  it('quotes a few bounded names, never the whole input', () => {
    expect(quoteScopes(['a', 'b'])).toBe('a b');
    const many = Array.from({ length: 50 }, (_, i) => `s${i}`);
    expect(quoteScopes(many)).toBe('s0 s1 s2 s3 s4 (and 45 more)');
    expect(quoteScopes(['x'.repeat(60_000)]).length).toBeLessThan(100);
  });
});
