/**
 * Strict `application/x-www-form-urlencoded` parsing for protocol endpoints.
 *
 * RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were omitted from
 * the request. [...] Request and response parameters MUST NOT be included more than once."
 */

export const MAX_PARAMETERS = 64;

export type FormParseResult =
  | { ok: true; params: FormParams }
  | { ok: false; reason: string };

/** Parsed parameters: single values by name, plus the repeatable ones listed by the caller. */
export class FormParams {
  readonly #single: Map<string, string>;
  readonly #multi: Map<string, string[]>;

  constructor(single: Map<string, string>, multi: Map<string, string[]>) {
    this.#single = single;
    this.#multi = multi;
  }

  get(name: string): string | undefined {
    return this.#single.get(name) ?? this.#multi.get(name)?.[0];
  }

  getAll(name: string): string[] {
    const multi = this.#multi.get(name);
    if (multi) return multi;
    const single = this.#single.get(name);
    return single === undefined ? [] : [single];
  }

  has(name: string): boolean {
    return this.#single.has(name) || this.#multi.has(name);
  }

  /** Every parameter name present. */
  names(): string[] {
    return [...this.#single.keys(), ...this.#multi.keys()];
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function decodeComponent(raw: string): string | null {
  try {
    // §17.2 of the URL standard: '+' is a space in form encoding.
    return decodeURIComponent(raw.includes('+') ? raw.replaceAll('+', ' ') : raw);
  } catch {
    return null;
  }
}

/**
 * Parses a form body. `repeatable` names the parameters that may appear more than once
 * (RFC 8707 `resource`); every other name repeated is an error.
 */
export function parseForm(body: Buffer | string, repeatable: ReadonlySet<string> = new Set()): FormParseResult {
  let text: string;
  if (typeof body === 'string') {
    text = body;
  } else {
    try {
      text = decoder.decode(body);
    } catch {
      return { ok: false, reason: 'the request body is not valid UTF-8' };
    }
  }
  const single = new Map<string, string>();
  const multi = new Map<string, string[]>();
  if (text.length === 0) return { ok: true, params: new FormParams(single, multi) };
  const pairs = text.split('&');
  if (pairs.length > MAX_PARAMETERS) return { ok: false, reason: 'too many parameters' };
  for (const pair of pairs) {
    if (pair.length === 0) continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(pair.slice(eq + 1));
    if (name === null || value === null) return { ok: false, reason: 'the request body is not valid form encoding' };
    if (value.length === 0) continue;
    if (repeatable.has(name)) {
      const list = multi.get(name);
      if (list) list.push(value);
      else multi.set(name, [value]);
      continue;
    }
    if (single.has(name)) return { ok: false, reason: `parameter '${safeName(name)}' is repeated` };
    single.set(name, value);
  }
  return { ok: true, params: new FormParams(single, multi) };
}

/** A parameter name fit to quote back in an error description. */
export function safeName(name: string): string {
  return /^[a-z0-9_.-]{1,40}$/i.test(name) ? name : '(unnamed)';
}
