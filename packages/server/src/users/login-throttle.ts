import { isIPv4, isIPv6 } from 'node:net';
import type { GatehouseConfig } from '../config/schema.js';
import type { LoginThrottleRepository, ThrottleState } from '../storage/repositories/login-throttle-repository.js';
import { usernameKey } from '../storage/repositories/user-repository.js';
import { sha256 } from '../tokens/random.js';

/**
 * Growing delays after failed sign-ins (NIST SP 800-63B §5.2.2: "Verifiers SHALL implement a
 * throttling mechanism that effectively limits the number of failed authentication attempts an
 * attacker can make on the subscriber's account").
 *
 * Failures are counted per account ("user:<username_key>", whether or not the account exists,
 * so the counters reveal nothing) and per client address ("ip:<address>", an IPv6 address by
 * its /64, which one subscriber usually holds whole). The `freeAttempts`-th failure within
 * `window` blocks the key for `baseDelay`, and each further one for twice as long as the one
 * before, up to `maxDelay`:
 *
 *   blocked_until = now + min(maxDelay, baseDelay × 2^(failures − freeAttempts))  when failures ≥ freeAttempts
 *
 * so with the defaults (5, 1 s, 15 min) five attempts go through at once, the sixth waits 1 s,
 * the seventh 2 s, … A counter is forgotten `window` after its last failure. Delays, never a
 * lock-out: someone failing on purpose can slow an account down by at most `maxDelay`. A
 * success resets the account's counter, not the address's (one valid account must not buy an
 * address more guesses). While a key is blocked, attempts are refused without checking the
 * password and without counting.
 */

export type LoginPolicy = GatehouseConfig['login'];

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfter: number };

/** An admitted attempt, and what to restore for its address if it succeeds. */
export type Reservation = { allowed: true; accountBlockedUntil: number; addressBlockedUntil: number } | { allowed: false; retryAfter: number };

/** The SHA-256 digests under which one sign-in attempt is counted. */
export interface LoginThrottleKeys {
  account: string;
  address: string;
}

/** How long a key is blocked after its `failures`-th failure within the window; 0: not blocked. */
export function blockDuration(failures: number, policy: LoginPolicy): number {
  if (failures < policy.freeAttempts) return 0;
  // 2^60 seconds is beyond any maxDelay; the cap keeps the arithmetic finite.
  const exponent = Math.min(failures - policy.freeAttempts, 60);
  return Math.min(policy.maxDelay, policy.baseDelay * 2 ** exponent);
}

/** Failures whose last one is at or before this time are forgotten. */
export function forgetFailuresBefore(now: number, policy: LoginPolicy): number {
  return now - policy.window;
}

/**
 * A key's state after one more failure at `now` (what the repository's atomic update and
 * `LoginThrottle.recordFailure` do together). A block only ever grows.
 */
export function stateAfterFailure(previous: ThrottleState | undefined, now: number, policy: LoginPolicy): ThrottleState {
  const forgotten = previous === undefined || previous.lastFailureAt <= forgetFailuresBefore(now, policy);
  const failures = forgotten ? 1 : previous.failures + 1;
  const block = blockDuration(failures, policy);
  const blockedUntil = Math.max(previous?.blockedUntil ?? 0, block > 0 ? now + block : 0);
  return { failures, lastFailureAt: now, blockedUntil };
}

/** Whether an attempt may go ahead at `now` given the states of its keys; else seconds to wait. */
export function throttleVerdict(states: Iterable<ThrottleState | undefined>, now: number): ThrottleVerdict {
  let until = 0;
  for (const s of states) if (s !== undefined && s.blockedUntil > until) until = s.blockedUntil;
  return until > now ? { allowed: false, retryAfter: until - now } : { allowed: true };
}

/**
 * The address part of a throttle key: an IPv4 address as is (also when IPv4-mapped), an IPv6
 * address as its /64 prefix, anything else (no address known) as given.
 */
export function addressThrottleKey(ip: string): string {
  const address = ip.trim().replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  if (isIPv4(address)) return `ip:${address}`;
  if (isIPv6(address)) {
    const groups = ipv6Groups(address);
    if (groups !== undefined) {
      const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
      if (mapped) {
        const [hi = 0, lo = 0] = groups.slice(6);
        return `ip:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
      }
      return `ip:${groups
        .slice(0, 4)
        .map((g) => g.toString(16))
        .join(':')}::/64`;
    }
  }
  return `ip:${address.toLowerCase()}`;
}

/** The eight 16-bit groups of a valid IPv6 address (with an optional dotted IPv4 tail). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' || halves[0] === undefined ? [] : halves[0].split(':');
  const tail = halves.length === 2 && halves[1] !== '' && halves[1] !== undefined ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return undefined;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...tail].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** The keys one attempt is counted under: its account (normalized username) and client address. */
export function loginThrottleKeys(username: string, ip: string): LoginThrottleKeys {
  return { account: sha256(`user:${usernameKey(username)}`), address: sha256(addressThrottleKey(ip)) };
}

/**
 * The keys typed device user codes are counted under (RFC 8628 §5.1: "the authorization server
 * SHOULD rate-limit user code entry"): the browser session and the client address, separate
 * from the sign-in counters.
 */
export function userCodeThrottleKeys(sid: string, ip: string): LoginThrottleKeys {
  return { account: sha256(`device-session:${sid}`), address: sha256(`device-${addressThrottleKey(ip)}`) };
}

/** The policy over the shared counters. */
export class LoginThrottle {
  constructor(
    private readonly repository: LoginThrottleRepository,
    private readonly policy: LoginPolicy,
  ) {}

  /** Whether an attempt under these keys may be checked now. */
  async check(keys: LoginThrottleKeys, now: number): Promise<ThrottleVerdict> {
    const states = await this.repository.findThrottleStates([keys.account, keys.address]);
    return throttleVerdict(states.values(), now);
  }

  /** Counts a failure under both keys; returns whether the next attempt must wait. */
  async recordFailure(keys: LoginThrottleKeys, now: number): Promise<ThrottleVerdict> {
    const after: ThrottleState[] = [];
    for (const key of [keys.account, keys.address]) {
      const counted = await this.repository.recordFailure(key, now, forgetFailuresBefore(now, this.policy));
      const block = blockDuration(counted.failures, this.policy);
      if (block > 0 && now + block > counted.blockedUntil) {
        await this.repository.extendBlock(key, now + block);
        after.push({ ...counted, blockedUntil: now + block });
      } else {
        after.push(counted);
      }
    }
    return throttleVerdict(after, now);
  }

  /**
   * Admits one attempt, counted as a failure before the password is checked (a success gives it
   * back), so attempts sent in parallel cannot all pass a check made before any of them failed:
   * an attempt goes ahead only if its count came right after the state it was admitted on;
   * the others are refused, and stay counted.
   */
  async reserve(keys: LoginThrottleKeys, now: number): Promise<Reservation> {
    const before = await this.repository.findThrottleStates([keys.account, keys.address]);
    const verdict = throttleVerdict(before.values(), now);
    if (!verdict.allowed) return verdict;
    const forgetBefore = forgetFailuresBefore(now, this.policy);
    let nextInLine = true;
    let wait = 1;
    for (const key of [keys.account, keys.address]) {
      const previous = before.get(key);
      const observed = previous === undefined || previous.lastFailureAt <= forgetBefore ? 0 : previous.failures;
      const counted = await this.repository.recordFailure(key, now, forgetBefore);
      const block = blockDuration(counted.failures, this.policy);
      if (block > 0 && now + block > counted.blockedUntil) await this.repository.extendBlock(key, now + block);
      if (counted.failures !== observed + 1) {
        nextInLine = false;
        wait = Math.max(wait, block);
      }
    }
    return nextInLine
      ? { allowed: true, accountBlockedUntil: before.get(keys.account)?.blockedUntil ?? 0, addressBlockedUntil: before.get(keys.address)?.blockedUntil ?? 0 }
      : { allowed: false, retryAfter: wait };
  }

  /**
   * After a successful sign-in: the account's failures are forgotten; the address gets back the
   * failure counted in advance (its earlier failures stay: one valid account must not buy an
   * address more guesses).
   */
  async recordSuccess(keys: LoginThrottleKeys, reservation: { addressBlockedUntil: number }): Promise<void> {
    await this.repository.resetThrottle(keys.account);
    await this.repository.refundFailure(keys.address, reservation.addressBlockedUntil);
  }

  /**
   * After an attempt that turned out right where a success must not wipe the slate (a device user
   * code: anyone can get a right one from their own device): both keys get back only the failure
   * counted in advance.
   */
  async refund(keys: LoginThrottleKeys, reservation: { accountBlockedUntil: number; addressBlockedUntil: number }): Promise<void> {
    await this.repository.refundFailure(keys.account, reservation.accountBlockedUntil);
    await this.repository.refundFailure(keys.address, reservation.addressBlockedUntil);
  }
}
