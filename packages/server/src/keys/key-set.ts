import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { KeyPurpose, StoredSigningKey } from '../model.js';
import type { KeyRepository } from '../storage/repositories/key-repository.js';
import { isJwsAlg, type JwsAlg } from '../tokens/jws.js';
import { generateSigningKey } from './key-generation.js';
import type { KeyEncryptionKey } from './key-encryption.js';

export interface KeyPolicy {
  /** Algorithm each purpose signs with. */
  algs: Record<KeyPurpose, JwsAlg>;
  rotationInterval: number;
  prePublication: number;
  /** How long a retired key stays published: the longest lifetime of anything it signed, plus skew. */
  retention: number;
}

export interface ActiveKey {
  kid: string;
  alg: JwsAlg;
  privateKey: KeyObject;
}

interface LoadedKey {
  stored: StoredSigningKey;
  alg: JwsAlg;
  publicKey: KeyObject;
  privateKey: KeyObject | null;
}

/** A public JWK as published at the jwks_uri. */
export type PublicJwk = Record<string, unknown> & { kid: string; alg: string; use: 'sig' };

/**
 * The signing keys every instance shares through the database. Each instance re-reads the set
 * on a timer; because a new key is published `prePublication` seconds before it signs, every
 * instance (and every client caching the JWKS) knows it before the first token it signs.
 */
export class KeySet {
  #loaded = new Map<string, LoadedKey>();
  #jwks: { keys: PublicJwk[] } = { keys: [] };

  constructor(
    private readonly repository: KeyRepository,
    private readonly kek: KeyEncryptionKey,
    private readonly policy: KeyPolicy,
  ) {}

  /** Reads the published keys, decrypting private keys that can still sign. */
  async refresh(now: number): Promise<void> {
    const stored = await this.repository.listPublishedKeys(now);
    const next = new Map<string, LoadedKey>();
    for (const key of stored) {
      if (!isJwsAlg(key.alg)) continue;
      const previous = this.#loaded.get(key.kid);
      const canSign = key.retiresAt === null || key.retiresAt > now;
      let privateKey = previous?.privateKey ?? null;
      if (canSign && privateKey === null) {
        privateKey = createPrivateKey({ key: this.kek.decrypt(key.encryptedPrivateKey, key.kid), format: 'der', type: 'pkcs8' });
      }
      if (!canSign) privateKey = null;
      const publicKey = previous?.publicKey ?? createPublicKey({ key: key.publicJwk as JsonWebKey, format: 'jwk' });
      next.set(key.kid, { stored: key, alg: key.alg, publicKey, privateKey });
    }
    this.#loaded = next;
    this.#jwks = {
      keys: stored.filter((k) => isJwsAlg(k.alg)).map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' as const })),
    };
  }

  /** The key that signs `purpose` at `now`: the newest active one. */
  signingKey(purpose: KeyPurpose, now: number): ActiveKey | undefined {
    let best: LoadedKey | undefined;
    for (const key of this.#loaded.values()) {
      const s = key.stored;
      if (s.purpose !== purpose || key.privateKey === null || s.activatesAt > now) continue;
      if (s.retiresAt !== null && s.retiresAt <= now) continue;
      if (best === undefined || s.activatesAt > best.stored.activatesAt) best = key;
    }
    return best && best.privateKey ? { kid: best.stored.kid, alg: best.alg, privateKey: best.privateKey } : undefined;
  }

  /**
   * A published key by `kid`, for verifying tokens this server signed, with the time it stopped
   * signing (null while current): a token claiming a later `iat` was not signed by this server.
   */
  verificationKey(kid: string, purpose: KeyPurpose): { alg: JwsAlg; publicKey: KeyObject; retiresAt: number | null } | undefined {
    const key = this.#loaded.get(kid);
    return key && key.stored.purpose === purpose ? { alg: key.alg, publicKey: key.publicKey, retiresAt: key.stored.retiresAt } : undefined;
  }

  /**
   * Withdraws a key at once (suspected compromise): it leaves the JWKS and stops verifying and
   * signing on every instance at its next key refresh. Tokens it signed stop being accepted.
   */
  async revoke(kid: string, now: number): Promise<boolean> {
    const revoked = await this.repository.revokeSigningKey(kid, now);
    await this.refresh(now);
    return revoked;
  }

  jwks(): { keys: PublicJwk[] } {
    return this.#jwks;
  }

  /** Algorithms of the published keys of a purpose. */
  algorithms(purpose: KeyPurpose): JwsAlg[] {
    return [...new Set([...this.#loaded.values()].filter((k) => k.stored.purpose === purpose).map((k) => k.alg))];
  }

  /**
   * Rotates where needed: a purpose without a key gets one that signs at once; a current key
   * older than the rotation interval (or of another algorithm than configured) gets a successor
   * published now that signs after the pre-publication period. Safe to call from every instance.
   */
  async ensureKeys(now: number): Promise<KeyPurpose[]> {
    const rotated: KeyPurpose[] = [];
    for (const purpose of Object.keys(this.policy.algs) as KeyPurpose[]) {
      const alg = this.policy.algs[purpose];
      const due = (published: StoredSigningKey[]): 'none' | 'first' | 'rotate' => {
        const own = published.filter((k) => k.purpose === purpose);
        if (!own.some((k) => k.retiresAt === null)) return 'first';
        // A successor is already waiting.
        if (own.some((k) => k.retiresAt === null && k.activatesAt > now)) return 'none';
        const current = own.filter((k) => k.retiresAt === null).sort((a, b) => b.activatesAt - a.activatesAt)[0];
        if (current === undefined) return 'first';
        if (current.alg !== alg) return 'rotate';
        return current.activatesAt + this.policy.rotationInterval - this.policy.prePublication <= now ? 'rotate' : 'none';
      };
      const stored = await this.repository.listPublishedKeys(now);
      const verdict = due(stored);
      if (verdict === 'none') continue;
      const activatesAt = verdict === 'first' ? now : now + this.policy.prePublication;
      if (await this.#rotate(purpose, alg, now, activatesAt, (published) => due(published) === verdict)) rotated.push(purpose);
    }
    if (rotated.length > 0) await this.refresh(now);
    return rotated;
  }

  /**
   * Forces a rotation (`gatehouse keys rotate`). Normally the new key signs after the
   * pre-publication period; `immediate` makes it sign at once (for a suspected key compromise:
   * clients that cached the JWKS will refetch on the unknown `kid`).
   */
  async rotate(purpose: KeyPurpose, now: number, options: { immediate?: boolean } = {}): Promise<string> {
    const alg = this.policy.algs[purpose];
    const activatesAt = options.immediate ? now : now + this.policy.prePublication;
    let kid = '';
    await this.#rotate(purpose, alg, now, activatesAt, () => true, (k) => (kid = k));
    await this.refresh(now);
    return kid;
  }

  async #rotate(
    purpose: KeyPurpose,
    alg: JwsAlg,
    now: number,
    activatesAt: number,
    shouldRotate: (published: StoredSigningKey[]) => boolean,
    onKid?: (kid: string) => void,
  ): Promise<boolean> {
    const generated = await generateSigningKey(alg);
    const pkcs8 = generated.privateKey.export({ format: 'der', type: 'pkcs8' });
    const next: StoredSigningKey = {
      kid: generated.kid,
      purpose,
      alg,
      publicJwk: generated.publicJwk,
      encryptedPrivateKey: this.kek.encrypt(pkcs8, generated.kid),
      createdAt: now,
      activatesAt,
      retiresAt: null,
      expiresAt: null,
    };
    onKid?.(generated.kid);
    return this.repository.rotateSigningKey({ purpose, next, retiredExpireAt: activatesAt + this.policy.retention }, shouldRotate, now);
  }
}
