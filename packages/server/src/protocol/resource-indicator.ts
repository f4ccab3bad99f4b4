/**
 * RFC 8707 §2: "The value of the resource parameter MUST be an absolute URI, as specified by
 * Section 4.3 of [RFC3986], that MAY include a query component, but MUST NOT include a
 * fragment component."
 */
export function isValidResourceIndicator(value: string): boolean {
  if (value.length > 2048 || value.includes('#')) return false;
  // RFC 3986 §4.3: absolute-URI = scheme ":" hier-part [ "?" query ]
  if (!/^[a-z][a-z0-9+.-]*:/i.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}
