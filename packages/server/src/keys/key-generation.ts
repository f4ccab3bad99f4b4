import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { JwsAlg } from '../tokens/jws.js';

export interface GeneratedKey {
  kid: string;
  publicJwk: Record<string, unknown>;
  privateKey: KeyObject;
}

function generatePair(alg: JwsAlg): { publicKey: KeyObject; privateKey: KeyObject } {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'EdDSA':
      return generateKeyPairSync('ed25519');
    case 'PS256':
    case 'RS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
  }
}

/** A fresh key pair; `kid` is the RFC 7638 JWK thumbprint of the public key. */
export async function generateSigningKey(alg: JwsAlg): Promise<GeneratedKey> {
  const { publicKey, privateKey } = generatePair(alg);
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, publicJwk: { ...jwk, kid, alg, use: 'sig' }, privateKey };
}
