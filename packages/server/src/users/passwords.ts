import type * as Argon2 from '@node-rs/argon2';
import { lazyModule } from '../lazy-module.js';

// Loaded at the first password hashed or checked: a server that signs nobody in never holds it.
const loadArgon2 = lazyModule<typeof Argon2>('@node-rs/argon2');

/**
 * Password hashing and the password policy.
 *
 * Hashing follows the OWASP Password Storage Cheat Sheet: "Use Argon2id with a minimum
 * configuration of 19 MiB of memory, an iteration count of 2, and 1 degree of parallelism."
 * The salt (16 random bytes) and the parameters travel inside the PHC string
 * (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so raising them later only needs
 * `passwordNeedsRehash` and a new hash at the next sign-in.
 *
 * The policy follows NIST SP 800-63B (revision 3) §5.1.1.2, memorized secret verifiers. (Revision
 * 4 asks for at least 15 characters when a password is the only factor; Gatehouse keeps 8 until
 * the login pages offer a second factor.)
 * - "Verifiers SHALL require subscriber-chosen memorized secrets to be at least 8 characters in
 *   length. Verifiers SHOULD permit subscriber-chosen memorized secrets at least 64 characters
 *   in length." — at least 8, at most 1024 (a bound on the work an attacker can ask for).
 * - "All printing ASCII characters as well as the space character SHOULD be acceptable in
 *   memorized secrets. Unicode characters SHOULD be accepted as well." and "Verifiers SHOULD NOT
 *   impose other composition rules" — no character-class rules.
 * - "Truncation of the secret SHALL NOT be performed." — the whole value is hashed.
 * - "each Unicode code point SHALL be counted as a single character" — lengths count code points.
 * - "the verifier SHOULD apply the Normalization Process for Stabilized Strings using either the
 *   NFKC or NFKD normalization" — passwords are NFKC-normalized before hashing and verifying,
 *   so the same password typed on different keyboards or input methods matches.
 * - "verifiers SHALL compare the prospective secrets against a list that contains values known
 *   to be commonly-used, expected, or compromised … Context-specific words, such as the name of
 *   the service, the username" — the username is refused here; no breached-password list ships
 *   with Gatehouse yet.
 */

/** m = 19456 KiB (19 MiB), t = 2, p = 1: the OWASP minimum quoted above; 32-byte output. */
export const PASSWORD_HASH_PARAMETERS = { memoryCost: 19456, timeCost: 2, parallelism: 1, outputLen: 32 } as const;

// The package declares Algorithm and Version as ambient const enums, which this project's
// verbatimModuleSyntax cannot read; their values are part of the package's API.
const ARGON2ID = 2 as Argon2.Algorithm; // Algorithm.Argon2id
const VERSION_0X13 = 1 as Argon2.Version; // Version.V0x13, "v=19"

const ARGON2_OPTIONS: Argon2.Options = { ...PASSWORD_HASH_PARAMETERS, algorithm: ARGON2ID, version: VERSION_0X13 };

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/** Verifies a password against a stored hash; never throws. Injectable for tests. */
export type PasswordVerifier = (passwordHash: string, password: string) => Promise<boolean>;

/**
 * The hash of a random value nobody knows, with the current parameters: verified against when
 * the user is unknown or has no password, so that costs what a wrong password costs.
 * (test/unit/passwords.test.ts checks it has today's parameters.)
 */
export const DUMMY_PASSWORD_HASH = '$argon2id$v=19$m=19456,t=2,p=1$0K8rvosQoDCy5jWr355rJg$5vS92kg++BznzPhtl4yBebZFxhhh3ajSaj+cbOezylI';

function normalize(password: string): string {
  return password.normalize('NFKC');
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * Why a new password is not acceptable, or undefined when it is. For choosing or setting a
 * password only; sign-in never applies it (a password set under older rules keeps working).
 */
export function passwordPolicyProblem(password: string, context: { username?: string } = {}): string | undefined {
  const normalized = normalize(password);
  const length = codePoints(normalized);
  if (length < MIN_PASSWORD_LENGTH) return `must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (length > MAX_PASSWORD_LENGTH) return `must be at most ${MAX_PASSWORD_LENGTH} characters`;
  if (/^\s*$/u.test(normalized)) return 'must not be only white space';
  if (context.username !== undefined) {
    const username = context.username.trim().normalize('NFKC').toLowerCase();
    if (username !== '' && normalized.trim().toLowerCase() === username) return 'must not be the username';
  }
  return undefined;
}

/** An argon2id PHC string for the password (NFKC-normalized first). */
export async function hashPassword(password: string): Promise<string> {
  return loadArgon2().hash(normalize(password), ARGON2_OPTIONS);
}

/**
 * Whether the password matches the hash. False, never an exception, for a malformed or
 * unsupported hash and for a password longer than any the policy allows.
 */
export const verifyPassword: PasswordVerifier = async (passwordHash, password) => {
  const normalized = normalize(password);
  if (codePoints(normalized) > MAX_PASSWORD_LENGTH) return false;
  // Outside the try: a missing native binding is an error to report, not a wrong password.
  const { verify } = loadArgon2();
  try {
    return await verify(passwordHash, normalized);
  } catch {
    return false;
  }
};

/** True when a stored hash was made with other parameters than today's (or cannot be read). */
export function passwordNeedsRehash(passwordHash: string): boolean {
  const { parseOptions } = loadArgon2();
  try {
    const p = parseOptions(passwordHash);
    return (
      p.algorithm !== ARGON2ID ||
      p.version !== VERSION_0X13 ||
      p.memoryCost !== PASSWORD_HASH_PARAMETERS.memoryCost ||
      p.timeCost !== PASSWORD_HASH_PARAMETERS.timeCost ||
      p.parallelism !== PASSWORD_HASH_PARAMETERS.parallelism ||
      p.outputLen !== PASSWORD_HASH_PARAMETERS.outputLen
    );
  } catch {
    return true;
  }
}
