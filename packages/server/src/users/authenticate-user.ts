import type { User, UserRepository } from '../storage/repositories/user-repository.js';
import { loginThrottleKeys, type LoginThrottle } from './login-throttle.js';
import { DUMMY_PASSWORD_HASH, hashPassword, passwordNeedsRehash, verifyPassword, type PasswordVerifier } from './passwords.js';

export interface SignInAttempt {
  /** As typed; compared after normalization (NFKC, lowercase). */
  username: string;
  password: string;
  /** The client's address (behind trusted proxies, the forwarded one). */
  ip: string;
  now: number;
}

export type AuthenticationResult =
  | { ok: true; user: User }
  | { ok: false; reason: 'invalid_credentials' }
  /** Too many recent failures for this account or address: try again after `retryAfter` seconds. */
  | { ok: false; reason: 'throttled'; retryAfter: number };

export interface AuthenticateUserDeps {
  users: Pick<UserRepository, 'findCredentials' | 'setPasswordHash'>;
  throttle: Pick<LoginThrottle, 'reserve' | 'recordSuccess'>;
  /** Defaults to argon2id verification; tests inject a counting one. */
  verifyPassword?: PasswordVerifier;
  /** Defaults to `hashPassword`; used to upgrade a hash made with older parameters. */
  hashPassword?: (password: string) => Promise<string>;
}

/**
 * Checks a username and password.
 *
 * - Throttled (account or address): refused with `retryAfter`, without looking at the password.
 * - Otherwise exactly one password verification runs, against the user's hash, or against a
 *   dummy hash with the same parameters when the user is unknown or has no password, so an
 *   unknown user, a wrong password and a disabled user give the same `invalid_credentials`
 *   after the same work, and each counts as a failure for the account and the address.
 * - Success resets the account's counter and, when the stored hash was made with older
 *   parameters, stores a new one (sessions kept; not when the password changed meanwhile).
 */
export async function authenticateUser(attempt: SignInAttempt, deps: AuthenticateUserDeps): Promise<AuthenticationResult> {
  const { username, password, ip, now } = attempt;
  const keys = loginThrottleKeys(username, ip);
  // Counted before the password is checked, so parallel guesses are throttled too.
  const verdict = await deps.throttle.reserve(keys, now);
  if (!verdict.allowed) return { ok: false, reason: 'throttled', retryAfter: verdict.retryAfter };

  const verify = deps.verifyPassword ?? verifyPassword;
  const credentials = await deps.users.findCredentials(username);
  const storedHash = credentials?.passwordHash ?? null;
  const matches = await verify(storedHash ?? DUMMY_PASSWORD_HASH, password);

  // The failure was counted in advance.
  if (credentials === undefined || storedHash === null || !matches || credentials.user.disabled) return { ok: false, reason: 'invalid_credentials' };

  await deps.throttle.recordSuccess(keys, verdict);
  if (passwordNeedsRehash(storedHash)) {
    const rehashed = await (deps.hashPassword ?? hashPassword)(password);
    await deps.users.setPasswordHash(credentials.user.userId, rehashed, now, { endSessions: false, ifCurrentHash: storedHash });
  }
  return { ok: true, user: credentials.user };
}
