import { expect } from 'vitest';

/** An HTTP answer with its body as text and, when it parses, as JSON. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export interface ErrorBody {
  error: string;
  error_description?: string;
}

export function toAnswer(status: number, headers: Headers, text: string): Answer {
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, headers, text, json };
}

/** An RFC 6749 §5.2-style error: status, JSON `error`, `no-store`, and optionally the description. */
export function expectOAuthError(answer: Answer, status: number, error: string, description?: string | RegExp): ErrorBody {
  expect({ status: answer.status, body: answer.json }).toMatchObject({ status, body: { error } });
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  const body = answer.json as ErrorBody;
  if (body.error_description !== undefined) expect(typeof body.error_description).toBe('string');
  if (typeof description === 'string') expect(body.error_description).toBe(description);
  else if (description) expect(body.error_description).toMatch(description);
  return body;
}
