/**
 * Redirect URI registration policy. Pure; the authorization endpoint compares registered URIs
 * as exact strings (OAuth 2.1 §2.3.1), this module only decides which URIs may be registered.
 */

export type RedirectUriVerdict = { ok: true } | { ok: false; reason: string };

const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'vbscript:', 'blob:', 'about:']);

/** RFC 1123 host names (after the URL parser's IDNA mapping) and IP literals: what a browser and a CSP can name. */
const HOST = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/;
/** RFC 8252 §7.1 private-use scheme: a reverse domain name. */
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:$/;

/** RFC 8252 §7.3: loopback redirects use IP literals, not `localhost`. */
export function isLoopbackIpLiteral(hostname: string): boolean {
  return hostname === '[::1]' || /^127(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(hostname);
}

export function checkRedirectUri(uri: string): RedirectUriVerdict {
  if (uri.length > 2000) return { ok: false, reason: 'redirect URI is too long' };
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return { ok: false, reason: 'redirect URI must be an absolute URI' };
  }
  // RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component."
  if (uri.includes('#')) return { ok: false, reason: 'redirect URI must not contain a fragment' };
  const scheme = url.protocol.toLowerCase();
  if (FORBIDDEN_SCHEMES.has(scheme)) return { ok: false, reason: `the ${scheme} scheme is not allowed` };
  if ((scheme === 'https:' || scheme === 'http:') && !HOST.test(url.hostname)) {
    return { ok: false, reason: 'the host must be a DNS name (letters, digits, hyphens) or an IP literal' };
  }
  if (scheme === 'https:') {
    if (url.username || url.password) return { ok: false, reason: 'redirect URI must not contain credentials' };
    return { ok: true };
  }
  if (scheme === 'http:') {
    // RFC 8252 §7.3 / OAuth 2.1 §2.3.1: plain http only for loopback IP literals.
    if (isLoopbackIpLiteral(url.hostname)) return { ok: true };
    return { ok: false, reason: 'http redirect URIs are allowed only for loopback IP literals (127.0.0.1, [::1])' };
  }
  // RFC 8252 §7.1: "apps MUST use a URI scheme based on a domain name under their control,
  // expressed in reverse order" — a private-use scheme must contain a period.
  if (PRIVATE_USE_SCHEME.test(scheme)) return { ok: true };
  return { ok: false, reason: 'custom URI schemes must be reverse domain names (e.g. com.example.app:/callback)' };
}

/**
 * Which registered redirect URI a request names. OAuth 2.1 §2.3.1: "the authorization server
 * MUST compare the two URIs using simple string comparison". RFC 8252 §7.3: "The authorization
 * server MUST allow any port to be specified at the time of the request for loopback IP redirect
 * URIs" — for a registered loopback IP literal URI, only the port may differ.
 */
export function matchRedirectUri(registered: readonly string[], requested: string): string | undefined {
  if (registered.includes(requested)) return requested;
  const asked = withoutLoopbackPort(requested);
  if (asked === undefined) return undefined;
  // Same URI apart from the port, compared as strings once the ports are taken out.
  return registered.some((candidate) => withoutLoopbackPort(candidate) === asked) ? requested : undefined;
}

/** An http loopback IP literal URI with its port removed (an explicit :80 too); undefined otherwise. */
function withoutLoopbackPort(uri: string): string | undefined {
  const match = /^http:\/\/(127(?:\.\d{1,3}){3}|\[::1\])(?::(\d{1,5}))?([/?].*)?$/.exec(uri);
  if (!match?.[1] || !isLoopbackIpLiteral(match[1])) return undefined;
  if (match[2] !== undefined && (Number(match[2]) < 1 || Number(match[2]) > 65535)) return undefined;
  return `http://${match[1]}${match[3] ?? ''}`;
}
