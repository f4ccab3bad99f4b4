import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomToken, sha256 } from '../../src/tokens/random.js';
import { isoTimestamp } from '../../src/logging.js';

describe('randomToken', () => {
  it('gives 256-bit base64url values, all distinct, across several refills of its pool', () => {
    // The pool holds 128 tokens: 1,000 draws refill it seven times.
    const tokens = Array.from({ length: 1000 }, () => randomToken());
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    }
    expect(new Set(tokens).size).toBe(tokens.length);
    // The pool wipes what it hands out; wiped bytes are never handed out again.
    expect(tokens).not.toContain(Buffer.alloc(32).toString('base64url'));
  });

  it('uses every bit: each of the 256 bit positions is set in some tokens and clear in others', () => {
    const ones = new Array<number>(256).fill(0);
    const n = 400;
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.from(randomToken(), 'base64url');
      for (let bit = 0; bit < 256; bit++) if ((bytes[bit >> 3]! >> (bit & 7)) & 1) ones[bit]!++;
    }
    // Binomial(400, 1/2): 140..260 holds with overwhelming probability (> 6 standard deviations).
    expect(Math.min(...ones)).toBeGreaterThan(140);
    expect(Math.max(...ones)).toBeLessThan(260);
  });
});

describe('sha256', () => {
  it('is the base64url SHA-256 of the UTF-8 bytes (FIPS 180-4 test vector "abc")', () => {
    expect(sha256('abc')).toBe(Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex').toString('base64url'));
    // Strings are hashed as UTF-8: "é" is the two bytes C3 A9.
    expect(sha256('\u00e9')).toBe(createHash('sha256').update(Buffer.from([0xc3, 0xa9])).digest('base64url'));
  });
});

describe('isoTimestamp', () => {
  it('is pino\'s ISO time field for the current millisecond', () => {
    const before = Date.now();
    const field = isoTimestamp();
    const after = Date.now();
    const match = /^,"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"$/.exec(field);
    expect(match).not.toBeNull();
    const at = Date.parse(match![1]!);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(after);
  });
});
