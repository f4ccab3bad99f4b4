import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyDecryptionError, KeyEncryptionKey, loadKeyEncryptionKey } from '../../src/keys/key-encryption.js';

const SECRET = 'a-key-encryption-secret-of-enough-length-0123';
const KID = 'kid-1';
const PLAINTEXT = Buffer.from('-----BEGIN PRIVATE KEY-----\nnot really a key, but bytes all the same\n', 'utf8');

const root = mkdtempSync(join(tmpdir(), 'gatehouse-kek-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${++dirCount}`);

/** Flips one bit in part `index` (1 = iv, 2 = tag, 3 = ciphertext) of a sealed value. */
function tamper(sealed: string, index: 1 | 2 | 3, at = 0): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[index] ?? '', 'base64url');
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('KeyEncryptionKey', () => {
  const kek = KeyEncryptionKey.fromSecret(SECRET);

  it('round-trips, with a versioned four-part format', () => {
    const sealed = kek.encrypt(PLAINTEXT, KID);
    expect(sealed.split('.')).toHaveLength(4);
    expect(sealed.startsWith('v1.')).toBe(true);
    expect(sealed).not.toContain(PLAINTEXT.toString('base64url'));
    expect(kek.decrypt(sealed, KID).equals(PLAINTEXT)).toBe(true);
  });

  it.each([[0], [1], [4096]])('round-trips %i bytes', (size) => {
    const data = randomBytes(size);
    expect(kek.decrypt(kek.encrypt(data, KID), KID).equals(data)).toBe(true);
  });

  it('uses a fresh IV each time', () => {
    const a = kek.encrypt(PLAINTEXT, KID);
    const b = kek.encrypt(PLAINTEXT, KID);
    expect(a).not.toBe(b);
    expect(a.split('.')[1]).not.toBe(b.split('.')[1]);
  });

  it('derives the same key from the same secret', () => {
    expect(KeyEncryptionKey.fromSecret(SECRET).decrypt(kek.encrypt(PLAINTEXT, KID), KID).equals(PLAINTEXT)).toBe(true);
  });

  it.each<[string, 1 | 2 | 3, number]>([
    ['the first ciphertext byte', 3, 0],
    ['the last ciphertext byte', 3, PLAINTEXT.length - 1],
    ['the tag', 2, 0],
    ['the end of the tag', 2, 15],
    ['the IV', 1, 0],
  ])('detects a flipped bit in %s', (_name, part, at) => {
    const sealed = kek.encrypt(PLAINTEXT, KID);
    expect(() => kek.decrypt(tamper(sealed, part, at), KID)).toThrow(KeyDecryptionError);
  });

  it.each([[4], [8], [12], [15]])('refuses the real tag truncated to %i bytes', (length) => {
    const [version, iv, tag, ct] = kek.encrypt(PLAINTEXT, KID).split('.');
    const truncated = Buffer.from(tag ?? '', 'base64url').subarray(0, length).toString('base64url');
    expect(() => kek.decrypt([version, iv, truncated, ct].join('.'), KID)).toThrow(KeyDecryptionError);
  });

  it('binds the kid as additional authenticated data', () => {
    const sealed = kek.encrypt(PLAINTEXT, KID);
    expect(() => kek.decrypt(sealed, 'kid-2')).toThrow(KeyDecryptionError);
    expect(() => kek.decrypt(sealed, `${KID} `)).toThrow(KeyDecryptionError);
    expect(() => kek.decrypt(sealed, '')).toThrow(KeyDecryptionError);
  });

  it('refuses a ciphertext sealed under another secret, naming the kid and the cause', () => {
    const other = KeyEncryptionKey.fromSecret(`${SECRET}-other`);
    const sealed = other.encrypt(PLAINTEXT, KID);
    let error: unknown;
    try {
      kek.decrypt(sealed, KID);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(KeyDecryptionError);
    expect((error as Error).message).toContain(KID);
    expect((error as Error).message).toContain('GATEHOUSE_SECRET');
  });

  it.each([
    ['empty', ''],
    ['another version', 'v2.AAAA.AAAA.AAAA'],
    ['too few parts', 'v1.AAAA.AAAA'],
    ['a truncated tag', (() => {
      const parts = KeyEncryptionKey.fromSecret(SECRET).encrypt(PLAINTEXT, KID).split('.');
      return [parts[0], parts[1], (parts[2] ?? '').slice(0, 8), parts[3]].join('.');
    })()],
    ['a dropped ciphertext', (() => {
      const parts = KeyEncryptionKey.fromSecret(SECRET).encrypt(PLAINTEXT, KID).split('.');
      return [parts[0], parts[1], parts[2], ''].join('.');
    })()],
  ])('refuses a malformed value: %s', (_name, sealed) => {
    expect(() => kek.decrypt(sealed, KID)).toThrow(KeyDecryptionError);
  });
});

describe('loadKeyEncryptionKey', () => {
  it('generates DATA_DIR/secret.key with mode 0600 (and the directory 0700), then reuses it', () => {
    const dataDir = freshDir();
    const first = loadKeyEncryptionKey({ dataDir });
    const file = join(dataDir, 'secret.key');
    expect(first.origin).toBe('generated secret file');
    expect(first.file).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    const content = readFileSync(file, 'utf8');
    expect(content.trim().length).toBeGreaterThanOrEqual(32);

    const second = loadKeyEncryptionKey({ dataDir });
    expect(second.origin).toBe('secret file');
    expect(second.file).toBe(file);
    expect(readFileSync(file, 'utf8')).toBe(content);
    // Same key: what the first sealed, the second opens.
    expect(second.kek.decrypt(first.kek.encrypt(PLAINTEXT, KID), KID).equals(PLAINTEXT)).toBe(true);
    // And it is the key derived from the file's content.
    expect(KeyEncryptionKey.fromSecret(content.trim()).decrypt(first.kek.encrypt(PLAINTEXT, KID), KID).equals(PLAINTEXT)).toBe(true);
  });

  it('generates a different secret for each data directory', () => {
    const a = loadKeyEncryptionKey({ dataDir: freshDir() });
    const b = loadKeyEncryptionKey({ dataDir: freshDir() });
    expect(() => b.kek.decrypt(a.kek.encrypt(PLAINTEXT, KID), KID)).toThrow(KeyDecryptionError);
  });

  it.each([[0o644], [0o640], [0o604], [0o660], [0o606]])('refuses a secret file with mode %o', (mode) => {
    const dataDir = freshDir();
    loadKeyEncryptionKey({ dataDir });
    const file = join(dataDir, 'secret.key');
    chmodSync(file, mode);
    expect(() => loadKeyEncryptionKey({ dataDir })).toThrow(/readable by group or others.*chmod 600/);
  });

  it('accepts a 0400 secret file', () => {
    const dataDir = freshDir();
    loadKeyEncryptionKey({ dataDir });
    chmodSync(join(dataDir, 'secret.key'), 0o400);
    expect(loadKeyEncryptionKey({ dataDir }).origin).toBe('secret file');
  });

  it('reads GATEHOUSE_SECRET_FILE, trimmed, and never generates it', () => {
    const dataDir = freshDir();
    const secretFile = join(root, `explicit-${dirCount}.key`);
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const loaded = loadKeyEncryptionKey({ dataDir, secretFile });
    expect(loaded.origin).toBe('secret file');
    expect(loaded.file).toBe(secretFile);
    expect(existsSync(join(dataDir, 'secret.key'))).toBe(false);
    expect(KeyEncryptionKey.fromSecret(SECRET).decrypt(loaded.kek.encrypt(PLAINTEXT, KID), KID).equals(PLAINTEXT)).toBe(true);

    expect(() => loadKeyEncryptionKey({ dataDir, secretFile: join(root, 'missing.key') })).toThrow(/does not exist/);
    expect(existsSync(join(root, 'missing.key'))).toBe(false);
  });

  it('refuses a secret file shorter than 32 characters', () => {
    const secretFile = join(root, `short-${++dirCount}.key`);
    writeFileSync(secretFile, `${'s'.repeat(31)}\n`, { mode: 0o600 });
    expect(() => loadKeyEncryptionKey({ dataDir: freshDir(), secretFile })).toThrow(/at least 32 characters/);
  });

  it('prefers GATEHOUSE_SECRET over any file, and writes nothing', () => {
    const dataDir = freshDir();
    const fromEnv = loadKeyEncryptionKey({ dataDir, secret: SECRET });
    expect(fromEnv.origin).toBe('GATEHOUSE_SECRET');
    expect(fromEnv.file).toBeUndefined();
    expect(existsSync(join(dataDir, 'secret.key'))).toBe(false);

    // Even with a (badly permissioned) generated file and a secret file present.
    loadKeyEncryptionKey({ dataDir });
    chmodSync(join(dataDir, 'secret.key'), 0o644);
    const secretFile = join(root, `ignored-${dirCount}.key`);
    writeFileSync(secretFile, 'another-secret-that-is-long-enough-to-count', { mode: 0o600 });
    const again = loadKeyEncryptionKey({ dataDir, secret: SECRET, secretFile });
    expect(again.origin).toBe('GATEHOUSE_SECRET');
    expect(KeyEncryptionKey.fromSecret(SECRET).decrypt(again.kek.encrypt(PLAINTEXT, KID), KID).equals(PLAINTEXT)).toBe(true);
  });
});
