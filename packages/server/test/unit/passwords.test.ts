import { hash, parseOptions } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import {
  DUMMY_PASSWORD_HASH,
  MAX_PASSWORD_LENGTH,
  PASSWORD_HASH_PARAMETERS,
  hashPassword,
  passwordNeedsRehash,
  passwordPolicyProblem,
  verifyPassword,
} from '../../src/users/passwords.js';

const PREFIX = '$argon2id$v=19$m=19456,t=2,p=1$';

describe('hashPassword / verifyPassword', () => {
  it('hashes with argon2id and the OWASP parameters, a fresh salt each time', async () => {
    const a = await hashPassword('correct horse battery staple');
    const b = await hashPassword('correct horse battery staple');
    expect(a.startsWith(PREFIX)).toBe(true);
    expect(a).not.toBe(b);
    expect(a).not.toContain('correct horse');
    expect(parseOptions(a)).toMatchObject({ ...PASSWORD_HASH_PARAMETERS, saltLen: 16 });
    expect(passwordNeedsRehash(a)).toBe(false);
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const stored = await hashPassword('correct horse battery staple');
    expect(await verifyPassword(stored, 'correct horse battery staple')).toBe(true);
    expect(await verifyPassword(stored, 'correct horse battery stapl')).toBe(false);
    expect(await verifyPassword(stored, 'Correct horse battery staple')).toBe(false);
    expect(await verifyPassword(stored, '')).toBe(false);
  });

  it('normalizes with NFKC, so one password typed two ways matches', async () => {
    // U+FB01 LATIN SMALL LIGATURE FI and full-width digits are compatibility forms.
    const stored = await hashPassword('\uFB01nancial１２３');
    expect(await verifyPassword(stored, 'financial123')).toBe(true);
    // Composed and decomposed é.
    const accented = await hashPassword('caf\u00e9-au-lait');
    expect(await verifyPassword(accented, 'cafe\u0301-au-lait')).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'not a hash'],
    ['truncated', `${PREFIX}0K8rvosQoDCy5jWr355rJg$`],
    ['bad base64', `${PREFIX}!!!!$!!!!`],
    ['bcrypt', '$2b$10$abcdefghijklmnopqrstuuK5yQ8Yx1o0s5tq4f8b0H3wJ8b0H3wJ8'],
    ['unknown algorithm', '$argon2x$v=19$m=19456,t=2,p=1$0K8rvosQoDCy5jWr355rJg$5vS92kg++BznzPhtl4yBebZFxhhh3ajSaj+cbOezylI'],
  ])('never throws on a malformed hash (%s): false', async (_name, stored) => {
    await expect(verifyPassword(stored, 'whatever-password')).resolves.toBe(false);
  });

  it('refuses an overlong password without hashing it', async () => {
    const stored = await hashPassword('x'.repeat(MAX_PASSWORD_LENGTH));
    expect(await verifyPassword(stored, 'x'.repeat(MAX_PASSWORD_LENGTH))).toBe(true);
    expect(await verifyPassword(stored, 'x'.repeat(MAX_PASSWORD_LENGTH + 1))).toBe(false);
  });
});

describe('the dummy hash', () => {
  it('has exactly the parameters of a real hash, so verifying against it costs the same', () => {
    expect(DUMMY_PASSWORD_HASH.startsWith(PREFIX)).toBe(true);
    expect(parseOptions(DUMMY_PASSWORD_HASH)).toMatchObject({ ...PASSWORD_HASH_PARAMETERS, saltLen: 16 });
    expect(passwordNeedsRehash(DUMMY_PASSWORD_HASH)).toBe(false);
  });

  it.each(['', 'password', 'correct horse battery staple'])('matches no likely password (%j)', async (password) => {
    expect(await verifyPassword(DUMMY_PASSWORD_HASH, password)).toBe(false);
  });
});

describe('passwordNeedsRehash', () => {
  it('is true for weaker parameters or an unreadable hash', async () => {
    const weak = await hash('password-1', { memoryCost: 4096, timeCost: 2, parallelism: 1 });
    expect(passwordNeedsRehash(weak)).toBe(true);
    const moreTime = await hash('password-1', { memoryCost: 19456, timeCost: 3, parallelism: 1 });
    expect(passwordNeedsRehash(moreTime)).toBe(true);
    expect(passwordNeedsRehash('not a hash')).toBe(true);
    // Still verifiable: old hashes keep working until they are replaced.
    expect(await verifyPassword(weak, 'password-1')).toBe(true);
  });
});

describe('passwordPolicyProblem', () => {
  it.each<[string, string, { username?: string }, string | undefined]>([
    ['8 characters', 'abcdefgh', {}, undefined],
    ['7 characters', 'abcdefg', {}, 'must be at least 8 characters'],
    ['empty', '', {}, 'must be at least 8 characters'],
    ['a passphrase with spaces', 'correct horse battery staple', {}, undefined],
    ['no composition rules: all lowercase letters', 'abcdefghij', {}, undefined],
    ['8 code points, 16 UTF-16 units (emoji)', '😀😀😀😀😀😀😀😀', {}, undefined],
    ['7 code points of astral characters', '😀😀😀😀😀😀😀', {}, 'must be at least 8 characters'],
    ['1024 characters', 'a'.repeat(1024), {}, undefined],
    ['1025 characters', 'a'.repeat(1025), {}, 'must be at most 1024 characters'],
    ['only spaces', '          ', {}, 'must not be only white space'],
    ['only mixed white space', ' \t \u00a0\u2003 \n  ', {}, 'must not be only white space'],
    ['spaces around words are fine', '  pass phrase  ', {}, undefined],
    ['the username', 'alice-wonderland', { username: 'alice-wonderland' }, 'must not be the username'],
    ['the username in other case', 'Alice-Wonderland', { username: 'alice-wonderland' }, 'must not be the username'],
    ['contains the username', 'alice-wonderland-2024', { username: 'alice-wonderland' }, undefined],
  ])('%s', (_name, password, context, expected) => {
    expect(passwordPolicyProblem(password, context)).toBe(expected);
  });
});
