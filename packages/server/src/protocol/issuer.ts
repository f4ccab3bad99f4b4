/** Pure checks on the issuer identifier (RFC 8414 §2, DESIGN decision 10). */

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || h === '::1' || /^127(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(h);
}

export type IssuerVerdict = { ok: true; issuer: string } | { ok: false; reason: string };

export function checkIssuer(value: string): IssuerVerdict {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, reason: 'must be an absolute URL' };
  }
  // RFC 8414 §2: "a URL that uses the "https" scheme and has no query or fragment components".
  if (url.search || url.hash || value.includes('?') || value.includes('#')) {
    return { ok: false, reason: 'must have no query or fragment' };
  }
  if (url.username || url.password) return { ok: false, reason: 'must not contain credentials' };
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    return { ok: false, reason: 'must use https:// unless its host is a loopback address (127.0.0.1, [::1], localhost)' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: 'must be an http(s) URL' };
  // Normalise: no trailing slash, so endpoint URLs are issuer + path.
  const issuer = value.endsWith('/') ? value.slice(0, -1) : value;
  return { ok: true, issuer };
}
