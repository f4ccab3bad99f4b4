import { InvalidClientError } from '../errors.js';
import { verifyClientSecret } from './client-secret.js';
import type { ClientAuthMethod } from './types.js';

const challenge = () => new InvalidClientError(undefined, { headers: { 'www-authenticate': 'Basic realm="gatehouse", charset="UTF-8"' } });

function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

/** Splits an `Authorization: Basic` value into client id and secret; null when malformed. */
export function parseBasicCredentials(authorization: string): { clientId: string; secret: string } | null {
  const match = /^basic +([A-Za-z0-9+/]+={0,2})$/i.exec(authorization);
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  // RFC 6749 §2.3.1: "The client identifier is encoded using the
  // "application/x-www-form-urlencoded" encoding algorithm [...] and the encoded value is used
  // as the username; the client password is encoded using the same algorithm and used as the
  // password."
  const clientId = formDecode(decoded.slice(0, colon));
  const secret = formDecode(decoded.slice(colon + 1));
  if (clientId === null || secret === null || clientId.length === 0 || secret.length === 0) return null;
  return { clientId, secret };
}

export const clientSecretBasic: ClientAuthMethod = {
  name: 'client_secret_basic',
  present: (request) => request.authorization !== undefined && /^basic(\s|$)/i.test(request.authorization),
  async authenticate(request, deps, now) {
    const credentials = parseBasicCredentials(request.authorization ?? '');
    if (credentials === null) throw challenge();
    const bodyClientId = request.params.get('client_id');
    // A client_id in the body must name the same client.
    if (bodyClientId !== undefined && bodyClientId !== credentials.clientId) throw challenge();
    return verifyClientSecret(credentials.clientId, credentials.secret, 'client_secret_basic', deps, now, challenge);
  },
};
