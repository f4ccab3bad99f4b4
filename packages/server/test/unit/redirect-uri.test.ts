import { describe, expect, it } from 'vitest';
import { checkRedirectUri, isLoopbackIpLiteral, matchRedirectUri } from '../../src/protocol/redirect-uri.js';

describe('isLoopbackIpLiteral', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.0.0.2', true],
    ['127.255.255.254', true],
    ['[::1]', true],
    ['localhost', false],
    ['LOCALHOST', false],
    ['::1', false],
    ['128.0.0.1', false],
    ['10.0.0.1', false],
    ['0.0.0.0', false],
    ['127.0.0.1.example.com', false],
    ['127.999.0.1', false],
    ['127.0.0.256', false],
    ['127.00.0.1', false],
    ['127.0.0', false],
    ['example.127.0.0.1', false],
    ['[::2]', false],
    ['', false],
  ])('%j → %s', (hostname, expected) => {
    expect(isLoopbackIpLiteral(hostname)).toBe(expected);
  });
});

describe('checkRedirectUri accepts', () => {
  it.each([
    ['https://client.example.com/cb'],
    ['https://client.example.com/cb?state_hint=1'],
    ['https://client.example.com:8443/a/b/c'],
    ['HTTPS://client.example.com/cb'],
    // RFC 8252 §7.3: loopback redirects over plain http, any port, IP literals only.
    ['http://127.0.0.1/cb'],
    ['http://127.0.0.1:51004/oauth/callback'],
    ['http://127.10.20.30:8080/cb'],
    ['http://[::1]/cb'],
    ['http://[::1]:8080/cb'],
    // RFC 8252 §7.1: private-use schemes in reverse domain name form.
    ['com.example.app:/oauth2redirect'],
    ['com.example.app://callback'],
    ['Com.Example.App:/cb'],
  ])('%s', (uri) => {
    expect(checkRedirectUri(uri)).toEqual({ ok: true });
  });
});

describe('checkRedirectUri refuses', () => {
  it.each([
    // not absolute
    ['', /absolute URI/],
    ['/callback', /absolute URI/],
    ['client.example.com/cb', /absolute URI/],
    // RFC 6749 §3.1.2: no fragment, not even an empty one
    ['https://client.example.com/cb#frag', /fragment/],
    ['https://client.example.com/cb#', /fragment/],
    ['http://127.0.0.1/cb#x', /fragment/],
    ['com.example.app:/cb#x', /fragment/],
    // dangerous schemes, in any letter case
    ['javascript:alert(1)', /javascript: scheme is not allowed/],
    ['JavaScript:alert(1)', /javascript: scheme is not allowed/],
    ['JAVASCRIPT://%0aalert(1)', /javascript: scheme is not allowed/],
    ['data:text/html,<script>alert(1)</script>', /data: scheme is not allowed/],
    ['DATA:text/html;base64,PHNjcmlwdD4=', /data: scheme is not allowed/],
    ['file:///etc/passwd', /file: scheme is not allowed/],
    ['FiLe://host/share', /file: scheme is not allowed/],
    ['vbscript:msgbox(1)', /vbscript: scheme is not allowed/],
    ['VBScript:msgbox(1)', /vbscript: scheme is not allowed/],
    ['blob:https://client.example.com/uuid', /blob: scheme is not allowed/],
    ['about:blank', /about: scheme is not allowed/],
    // plain http off loopback literals (RFC 8252 §8.3: `localhost` is NOT RECOMMENDED)
    ['http://localhost/cb', /loopback IP literals/],
    ['http://localhost:8080/cb', /loopback IP literals/],
    ['http://client.example.com/cb', /loopback IP literals/],
    ['http://127.0.0.1.example.com/cb', /loopback IP literals/],
    ['http://10.0.0.1/cb', /loopback IP literals/],
    ['http://[::2]/cb', /loopback IP literals/],
    // custom schemes without a period (RFC 8252 §7.1)
    ['myapp:/callback', /reverse domain names/],
    ['myapp://callback', /reverse domain names/],
    ['ftp://files.example.com/cb', /reverse domain names/],
    // credentials in https
    ['https://user:pass@client.example.com/cb', /credentials/],
    ['https://user@client.example.com/cb', /credentials/],
    ['https://:pass@client.example.com/cb', /credentials/],
    // overlong
    [`https://client.example.com/${'a'.repeat(2001 - 'https://client.example.com/'.length)}`, /too long/],
    [`https://client.example.com/${'a'.repeat(10_000)}`, /too long/],
  ])('%s', (uri, reason) => {
    const verdict = checkRedirectUri(uri);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });
});

describe('checkRedirectUri length boundary', () => {
  it('accepts exactly 2000 characters and refuses 2001', () => {
    const base = 'https://client.example.com/';
    const at = `${base}${'a'.repeat(2000 - base.length)}`;
    expect(at).toHaveLength(2000);
    expect(checkRedirectUri(at).ok).toBe(true);
    expect(checkRedirectUri(`${at}a`).ok).toBe(false);
  });
});

describe('matchRedirectUri (OAuth 2.1 §2.3.1 exact match; RFC 8252 §7.3 any loopback port)', () => {
  it.each<[string[], string, boolean]>([
    [['https://app.example.com/cb'], 'https://app.example.com/cb', true],
    [['https://app.example.com/cb'], 'https://app.example.com/cb/', false],
    [['https://app.example.com/cb'], 'https://APP.example.com/cb', false],
    [['https://app.example.com/cb'], 'https://app.example.com/cb?x=1', false],
    [['https://app.example.com:443/cb'], 'https://app.example.com/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:51004/cb', true],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:80/cb', true],
    [['http://127.0.0.1:80/cb'], 'http://127.0.0.1:8080/cb', true],
    [['http://127.0.0.1:5000/cb'], 'http://127.0.0.1/cb', true],
    [['http://[::1]/cb'], 'http://[::1]:4321/cb', true],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:51004/other', false],
    [['http://127.0.0.1/cb'], 'http://localhost:51004/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.2:51004/cb', false],
    [['http://127.0.0.1/cb'], 'https://127.0.0.1:51004/cb', false],
    [['http://127.0.0.1/cb?a=1'], 'http://127.0.0.1:9/cb?a=1', true],
    [['http://127.0.0.1/cb?a=1'], 'http://127.0.0.1:9/cb?a=2', false],
    [['https://app.example.com/cb'], 'http://127.0.0.1:9/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:99999/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:65536/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:0/cb', false],
    [['http://127.0.0.1/cb'], 'http://127.0.0.1:65535/cb', true],
  ])('registered %j, requested %s → %s', (registered, requested, expected) => {
    expect(matchRedirectUri(registered, requested) !== undefined).toBe(expected);
  });
});

describe('checkRedirectUri refuses hosts and schemes a browser form cannot target', () => {
  it.each([['https://my_app.example.com/cb'], ['https://ex ample.com/cb'], ['com.example_app:/cb'], ['com.:/cb']])('%s', (uri) => {
    expect(checkRedirectUri(uri).ok).toBe(false);
  });
});
