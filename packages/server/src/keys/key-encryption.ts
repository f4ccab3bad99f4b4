import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Private signing keys are encrypted at rest with AES-256-GCM under a key-encryption key (KEK)
 * derived with HKDF-SHA256 from GATEHOUSE_SECRET, GATEHOUSE_SECRET_FILE, or a generated file
 * `DATA_DIR/secret.key` (mode 0600). The key id is bound as additional authenticated data, so a
 * ciphertext cannot be moved to another key's row.
 */
export class KeyEncryptionKey {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  static fromSecret(secret: string): KeyEncryptionKey {
    const derived = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'gatehouse', 'gatehouse key-encryption key v1', 32));
    return new KeyEncryptionKey(derived);
  }

  /**
   * A 256-bit sub-key for another purpose (e.g. CSRF tokens), derived with HKDF-SHA256 from this
   * key: identical on every instance sharing the secret, independent of the key-encryption key
   * itself and of every sub-key with another `info`.
   */
  deriveKey(info: string): Buffer {
    if (info.length === 0) throw new Error('deriveKey: info must name the purpose of the sub-key');
    return Buffer.from(hkdfSync('sha256', this.#key, 'gatehouse sub-key', info, 32));
  }

  encrypt(plaintext: Buffer, kid: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(kid, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  decrypt(sealed: string, kid: string): Buffer {
    const [version, iv, tag, ct] = sealed.split('.');
    if (version !== 'v1' || iv === undefined || tag === undefined || ct === undefined) throw new KeyDecryptionError(kid);
    try {
      // authTagLength: without it Node accepts a truncated tag (down to 4 bytes), weakening forgery resistance.
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
      decipher.setAAD(Buffer.from(kid, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    } catch (cause) {
      throw new KeyDecryptionError(kid, cause);
    }
  }
}

export class KeyDecryptionError extends Error {
  constructor(kid: string, cause?: unknown) {
    super(
      `cannot decrypt signing key ${kid}: the key-encryption key (GATEHOUSE_SECRET / secret file) is not the one the key was stored with`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'KeyDecryptionError';
  }
}

export interface KekSource {
  secret?: string | undefined;
  secretFile?: string | undefined;
  dataDir: string;
}

/** Where the KEK came from, for the startup log (never the value). */
export type KekOrigin = 'GATEHOUSE_SECRET' | 'secret file' | 'generated secret file';

export function loadKeyEncryptionKey(source: KekSource): { kek: KeyEncryptionKey; origin: KekOrigin; file?: string } {
  if (source.secret !== undefined) return { kek: KeyEncryptionKey.fromSecret(source.secret), origin: 'GATEHOUSE_SECRET' };
  const file = source.secretFile ?? join(source.dataDir, 'secret.key');
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0 && process.platform !== 'win32') {
      throw new Error(`secret file ${file} is readable by group or others; run: chmod 600 ${file}`);
    }
    const secret = readFileSync(file, 'utf8').trim();
    if (secret.length < 32) throw new Error(`secret file ${file} must hold at least 32 characters`);
    return { kek: KeyEncryptionKey.fromSecret(secret), origin: 'secret file', file };
  }
  if (source.secretFile !== undefined) throw new Error(`secret file ${file} does not exist`);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  // 'wx': never overwrite a file another process created a moment ago.
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadKeyEncryptionKey(source);
    throw err;
  }
  chmodSync(file, 0o600);
  return { kek: KeyEncryptionKey.fromSecret(secret), origin: 'generated secret file', file };
}
