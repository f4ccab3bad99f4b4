import { describe, expect, it } from 'vitest';
import { isScopeGranted, missingScopes, parseScope, scopeSatisfies, scopesOverlap } from '../../src/protocol/scope.js';

describe('scope hierarchy', () => {
  it.each([
    ['orders', 'orders', true],
    ['orders', 'orders:items', true],
    ['orders', 'orders:items:read', true],
    ['orders:items', 'orders', false],
    ['orders', 'ordersX', false],
    ['orders', 'orders-items', false],
    ['orders:', 'orders:items', false],
    ['a:b', 'a:bc', false],
    ['a:b', 'a:b:c', true],
  ])('granted %s satisfies %s → %s', (granted, required, expected) => {
    expect(scopeSatisfies(granted, required)).toBe(expected);
  });

  it('checks lists and reports what is missing', () => {
    expect(isScopeGranted(['a', 'orders'], 'orders:items')).toBe(true);
    expect(isScopeGranted(['orders:items'], 'orders')).toBe(false);
    expect(missingScopes(['orders'], ['orders:items', 'billing', 'orders'])).toEqual(['billing']);
    expect(scopesOverlap('a:b', 'a')).toBe(true);
    expect(scopesOverlap('a:b', 'a:c')).toBe(false);
  });
});

describe('parseScope', () => {
  it.each([
    ['a b c', ['a', 'b', 'c']],
    ['a a b', ['a', 'b']],
    ['orders:items', ['orders:items']],
  ])('parses %j', (input, expected) => {
    expect(parseScope(input)).toEqual(expected);
  });

  it.each([['a  b'], [' a'], ['a '], ['a"b'], ['a\\b'], ['é'], ['a\tb'], [Array.from({ length: 101 }, (_, i) => `s${i}`).join(' ')]])(
    'rejects %j',
    (input) => {
      expect(parseScope(input)).toBeNull();
    },
  );
});
