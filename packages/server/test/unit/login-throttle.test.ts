import { describe, expect, it } from 'vitest';
import type { ThrottleState } from '../../src/storage/repositories/login-throttle-repository.js';
import {
  addressThrottleKey,
  blockDuration,
  loginThrottleKeys,
  stateAfterFailure,
  throttleVerdict,
  type LoginPolicy,
} from '../../src/users/login-throttle.js';

const NOW = 1_800_000_000;
/** The defaults of config.login. */
const POLICY: LoginPolicy = { freeAttempts: 5, baseDelay: 1, maxDelay: 900, window: 3600 };

describe('blockDuration', () => {
  it.each<[string, LoginPolicy, number, number]>([
    ['first failure', POLICY, 1, 0],
    ['fourth failure', POLICY, 4, 0],
    ['the freeAttempts-th failure blocks for baseDelay', POLICY, 5, 1],
    ['then doubles', POLICY, 6, 2],
    ['and doubles', POLICY, 7, 4],
    ['14th', POLICY, 14, 512],
    ['15th reaches maxDelay', POLICY, 15, 900],
    ['stays at maxDelay', POLICY, 100, 900],
    ['huge counts stay finite', POLICY, 1_000_000, 900],
    ['one free attempt', { ...POLICY, freeAttempts: 1 }, 1, 1],
    ['larger base delay', { ...POLICY, baseDelay: 30 }, 6, 60],
    ['max below base', { ...POLICY, baseDelay: 30, maxDelay: 10 }, 5, 10],
    ['zero base delay never blocks', { ...POLICY, baseDelay: 0 }, 50, 0],
  ])('%s', (_name, policy, failures, seconds) => {
    expect(blockDuration(failures, policy)).toBe(seconds);
  });
});

describe('stateAfterFailure', () => {
  const state = (failures: number, lastFailureAt: number, blockedUntil = 0): ThrottleState => ({ failures, lastFailureAt, blockedUntil });

  it.each<[string, ThrottleState | undefined, number, ThrottleState]>([
    ['first failure ever', undefined, NOW, state(1, NOW)],
    ['counts within the window', state(3, NOW - 60), NOW, state(4, NOW)],
    ['the 5th failure blocks for 1 s', state(4, NOW - 10), NOW, state(5, NOW, NOW + 1)],
    ['the 6th for 2 s', state(5, NOW - 10, NOW - 9), NOW, state(6, NOW, NOW + 2)],
    ['the 10th for 32 s', state(9, NOW - 10, NOW - 2), NOW, state(10, NOW, NOW + 32)],
    ['a failure just inside the window still counts', state(7, NOW - 3599), NOW, state(8, NOW, NOW + 8)],
    ['a failure exactly a window old is forgotten', state(7, NOW - 3600), NOW, state(1, NOW)],
    ['older failures are forgotten', state(40, NOW - 7200), NOW, state(1, NOW)],
    ['a longer block is never shortened', state(2, NOW - 10, NOW + 500), NOW, state(3, NOW, NOW + 500)],
    ['a block in force survives forgetting', state(20, NOW - 3600, NOW + 100), NOW, state(1, NOW, NOW + 100)],
  ])('%s', (_name, previous, now, expected) => {
    expect(stateAfterFailure(previous, now, POLICY)).toEqual(expected);
  });

  it('five quick failures then waits of 1, 2, 4, 8 … seconds, capped at 15 minutes', () => {
    let s: ThrottleState | undefined;
    const blocks: number[] = [];
    let t = NOW;
    for (let i = 0; i < 16; i++) {
      s = stateAfterFailure(s, t, POLICY);
      blocks.push(Math.max(0, s.blockedUntil - t));
      t = Math.max(t, s.blockedUntil);
    }
    expect(blocks).toEqual([0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
  });
});

describe('throttleVerdict', () => {
  it.each<[string, (ThrottleState | undefined)[], ReturnType<typeof throttleVerdict>]>([
    ['no counters', [], { allowed: true }],
    ['unknown keys', [undefined, undefined], { allowed: true }],
    ['failures but no block', [{ failures: 3, lastFailureAt: NOW - 1, blockedUntil: 0 }], { allowed: true }],
    ['a block that has ended', [{ failures: 6, lastFailureAt: NOW - 5, blockedUntil: NOW - 1 }], { allowed: true }],
    ['a block ending now has ended', [{ failures: 6, lastFailureAt: NOW - 5, blockedUntil: NOW }], { allowed: true }],
    ['a block in force', [{ failures: 6, lastFailureAt: NOW, blockedUntil: NOW + 2 }], { allowed: false, retryAfter: 2 }],
    [
      'the longer of two blocks',
      [
        { failures: 6, lastFailureAt: NOW, blockedUntil: NOW + 2 },
        { failures: 12, lastFailureAt: NOW, blockedUntil: NOW + 128 },
      ],
      { allowed: false, retryAfter: 128 },
    ],
  ])('%s', (_name, states, expected) => {
    expect(throttleVerdict(states, NOW)).toEqual(expected);
  });
});

describe('addressThrottleKey', () => {
  it.each([
    ['192.0.2.1', 'ip:192.0.2.1'],
    [' 192.0.2.1 ', 'ip:192.0.2.1'],
    ['::ffff:192.0.2.1', 'ip:192.0.2.1'],
    ['::ffff:c000:201', 'ip:192.0.2.1'],
    ['2001:db8:85a3:8d3:1319:8a2e:370:7348', 'ip:2001:db8:85a3:8d3::/64'],
    ['2001:DB8:85A3:08D3::1', 'ip:2001:db8:85a3:8d3::/64'],
    ['2001:db8:85a3:8d3:ffff::9', 'ip:2001:db8:85a3:8d3::/64'],
    ['2001:db8::1', 'ip:2001:db8:0:0::/64'],
    ['[2001:db8::1]', 'ip:2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'ip:fe80:0:0:0::/64'],
    ['::1', 'ip:0:0:0:0::/64'],
    ['::', 'ip:0:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', 'ip:64:ff9b:0:0::/64'],
    ['unknown', 'ip:unknown'],
    ['', 'ip:'],
  ])('%j → %j', (ip, key) => {
    expect(addressThrottleKey(ip)).toBe(key);
  });
});

describe('loginThrottleKeys', () => {
  it('keys an account by its normalized username, whatever the case or width typed', () => {
    const a = loginThrottleKeys('Alice', '192.0.2.1');
    expect(loginThrottleKeys('ALICE', '192.0.2.1')).toEqual(a);
    expect(loginThrottleKeys('Ａｌｉｃｅ', '::ffff:192.0.2.1')).toEqual(a);
    expect(loginThrottleKeys('bob', '192.0.2.1').address).toBe(a.address);
    expect(loginThrottleKeys('bob', '192.0.2.1').account).not.toBe(a.account);
    // Digests only: neither the username nor the address is stored.
    expect(a.account).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.account).not.toBe(a.address);
  });

  it('keeps account and address keys apart even when the strings collide', () => {
    // A username equal to an address string must not share the address's counter.
    const k = loginThrottleKeys('192.0.2.1', '192.0.2.1');
    expect(k.account).not.toBe(k.address);
  });
});
