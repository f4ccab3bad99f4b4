import { describe, expect, it } from 'vitest';
import { MAX_PARAMETERS, parseForm, safeName, type FormParams } from '../../src/protocol/form.js';

const REPEATABLE = new Set(['resource']);

function parsed(body: Buffer | string, repeatable?: ReadonlySet<string>): FormParams {
  const result = parseForm(body, repeatable);
  if (!result.ok) throw new Error(`expected a parse, got: ${result.reason}`);
  return result.params;
}

function refused(body: Buffer | string, repeatable?: ReadonlySet<string>): string {
  const result = parseForm(body, repeatable);
  if (result.ok) throw new Error(`expected a refusal of ${JSON.stringify(body)}`);
  return result.reason;
}

describe('parseForm values', () => {
  it.each<[string, string, string | undefined]>([
    ['grant_type=client_credentials', 'grant_type', 'client_credentials'],
    ['scope=a+b', 'scope', 'a b'],
    ['scope=a%20b', 'scope', 'a b'],
    ['scope=a%2Bb', 'scope', 'a+b'],
    ['a+b=1', 'a b', '1'],
    ['x=%E2%9C%93', 'x', '✓'],
    ['x=%c3%a9', 'x', 'é'],
    ['x=1=2', 'x', '1=2'],
    ['x=%26%3D', 'x', '&='],
    ['x=1&&y=2', 'x', '1'],
    ['&x=1&', 'x', '1'],
    // RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were omitted"
    ['x=', 'x', undefined],
    ['x', 'x', undefined],
    ['x=&y=2', 'x', undefined],
  ])('%j: %s → %j', (body, name, value) => {
    const params = parsed(body);
    expect(params.get(name)).toBe(value);
    expect(params.has(name)).toBe(value !== undefined);
  });

  it('parses an empty body, string or buffer, to no parameters', () => {
    expect(parsed('').names()).toEqual([]);
    expect(parsed(Buffer.alloc(0)).names()).toEqual([]);
  });

  it('decodes a UTF-8 buffer', () => {
    const params = parsed(Buffer.from('client_id=caf%C3%A9&name=caf\u00e9', 'utf8'));
    expect(params.get('client_id')).toBe('café');
    expect(params.get('name')).toBe('café');
  });

  it('lists every name, and getAll of an absent or single name', () => {
    const params = parsed('a=1&resource=https%3A%2F%2Fr1&b=2', REPEATABLE);
    expect(params.names().sort()).toEqual(['a', 'b', 'resource']);
    expect(params.getAll('a')).toEqual(['1']);
    expect(params.getAll('missing')).toEqual([]);
  });
});

describe('parseForm repetition', () => {
  it.each([
    ['a=1&a=2', 'a'],
    ['grant_type=client_credentials&grant_type=client_credentials', 'grant_type'],
    ['scope=a&x=1&scope=a', 'scope'],
    ['a+b=1&a%20b=2', '(unnamed)'],
  ])('refuses %j (names %s)', (body, name) => {
    expect(refused(body)).toBe(`parameter '${name}' is repeated`);
  });

  it('refuses a repeated name that is repeatable only elsewhere', () => {
    expect(refused('resource=a&resource=b')).toMatch(/resource/);
  });

  it('keeps every value of a repeatable name, in order', () => {
    const params = parsed('resource=https%3A%2F%2Fa&scope=x&resource=https%3A%2F%2Fb', REPEATABLE);
    expect(params.getAll('resource')).toEqual(['https://a', 'https://b']);
    expect(params.get('resource')).toBe('https://a');
    expect(params.get('scope')).toBe('x');
  });

  it('does not count an empty value as a repetition', () => {
    expect(parsed('a=&a=1').get('a')).toBe('1');
    expect(parsed('a=1&a=').get('a')).toBe('1');
    expect(parsed('resource=&resource=x', REPEATABLE).getAll('resource')).toEqual(['x']);
  });

  it('does not quote an unsafe name back', () => {
    const reason = refused('%3Cscript%3E=1&%3Cscript%3E=2');
    expect(reason).not.toContain('<script>');
    expect(reason).toContain('(unnamed)');
  });
});

describe('parseForm encoding errors', () => {
  it.each([['a=%'], ['a=%Z1'], ['a=%E9'], ['a=%C3'], ['a=%ED%A0%80'], ['%ZZ=1'], ['a=1&b=%G0']])('refuses %j', (body) => {
    expect(refused(body)).toBe('the request body is not valid form encoding');
  });

  it.each([
    ['a lone continuation byte', Buffer.from([0x61, 0x3d, 0x80])],
    ['a truncated sequence', Buffer.from([0x61, 0x3d, 0xc3])],
    ['an invalid byte', Buffer.from([0x61, 0x3d, 0xff])],
    ['an overlong encoding', Buffer.from([0x61, 0x3d, 0xc0, 0xaf])],
    ['an encoded surrogate', Buffer.from([0x61, 0x3d, 0xed, 0xa0, 0x80])],
  ])('refuses a buffer with %s', (_name, body) => {
    expect(refused(body)).toBe('the request body is not valid UTF-8');
  });
});

describe('parseForm parameter count', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `p${i}=v`).join('&');

  it(`accepts ${MAX_PARAMETERS} parameters`, () => {
    expect(MAX_PARAMETERS).toBe(64);
    expect(parsed(body(MAX_PARAMETERS)).names()).toHaveLength(MAX_PARAMETERS);
  });

  it.each([[MAX_PARAMETERS + 1], [1000]])('refuses %i parameters', (n) => {
    expect(refused(body(n))).toBe('too many parameters');
  });

  it('counts repeated values of a repeatable name', () => {
    const many = Array.from({ length: MAX_PARAMETERS + 1 }, (_, i) => `resource=r${i}`).join('&');
    expect(refused(many, REPEATABLE)).toBe('too many parameters');
  });
});

describe('safeName', () => {
  it.each([
    ['client_id', 'client_id'],
    ['grant-type.v2', 'grant-type.v2'],
    ['A1', 'A1'],
    ['x'.repeat(40), 'x'.repeat(40)],
    ['x'.repeat(41), '(unnamed)'],
    ['', '(unnamed)'],
    ['a b', '(unnamed)'],
    ['<script>', '(unnamed)'],
    ["a'b", '(unnamed)'],
    ['a\nb', '(unnamed)'],
    ['é', '(unnamed)'],
  ])('%j → %j', (name, expected) => {
    expect(safeName(name)).toBe(expected);
  });
});
