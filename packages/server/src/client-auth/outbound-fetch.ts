import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Addresses a client's `jwks_uri` must never reach: loopback, private, link-local, shared,
 * multicast and reserved ranges (RFC 6890), so a registered URL cannot turn the server into a
 * scanner of its own network (server-side request forgery).
 */
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['2001:db8::', 32],
  ['64:ff9b::', 96],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged by its IPv4 address. (BlockList
  // itself matches IPv4 addresses against ::ffff:0:0/96 rules, so that range is not listed.)
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return isPublicAddress(mapped[1]);
  if (family === 6 && /^::ffff:/i.test(address)) return false;
  return !NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Resolves like dns.lookup, but fails when any resolved address is not public. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 4);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused !== undefined || addresses.length === 0) {
      return callback(Object.assign(new Error(`${hostname} resolves to a non-public address`), { code: 'ENOTPUBLIC' }), '', 4);
    }
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    const first = addresses[0] as LookupAddress;
    callback(null, first.address, first.family);
  });
};

export interface OutboundFetchOptions {
  /** DANGEROUS: lets key-set URLs reach loopback and private addresses (local development). */
  allowPrivateAddresses: boolean;
  maxBytes: number;
}

/**
 * A fetch for client JWK Sets (the `customFetch` of jose's remote key set): https only, no
 * redirects, public addresses only (checked after DNS, at connect time), a size cap.
 */
export function createOutboundFetch(options: OutboundFetchOptions) {
  return (url: string, init: { headers?: Headers; signal?: AbortSignal }): Promise<Response> =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') return reject(new Error('key sets are fetched over https only'));
      const host = target.hostname.replace(/^\[|\]$/g, '');
      if (!options.allowPrivateAddresses && isIP(host) !== 0 && !isPublicAddress(host)) {
        return reject(new Error('the key set URL points to a non-public address'));
      }
      const req = httpsRequest(
        target,
        {
          method: 'GET',
          headers: { ...Object.fromEntries(init.headers ?? []), accept: 'application/json, application/jwk-set+json' },
          ...(init.signal ? { signal: init.signal } : {}),
          ...(options.allowPrivateAddresses ? {} : { lookup: publicOnlyLookup }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > options.maxBytes) {
              req.destroy(new Error('the key set is too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500 })));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
}
