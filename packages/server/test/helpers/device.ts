import { expect } from 'vitest';
import { FORM_FIELDS } from '../../src/interaction/pages.js';
import { pageKind, readForm, type AgentResponse, type BrowserAgent, type CredentialsInput, type PageKind } from './browser-agent.js';
import { toAnswer, type Answer } from './answers.js';
import type { TestServer } from './server.js';

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** RFC 8628 §3.2 device authorization response. */
export interface DeviceAuthorizationResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

export interface DeviceClient {
  clientId: string;
  /** Form fields naming (public) or the Authorization header authenticating (confidential) the client. */
  form: Record<string, string>;
  headers: Record<string, string>;
}

async function post(url: string, form: Record<string, string | string[]>, headers: Record<string, string>): Promise<Answer> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) body.append(k, item);
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: body.toString() });
  return toAnswer(response.status, response.headers, await response.text());
}

/** POST /device_authorization as this client. */
export function requestDeviceAuthorization(t: TestServer, client: DeviceClient, params: Record<string, string | string[]> = {}): Promise<Answer> {
  return post(`${t.issuer}/device_authorization`, { ...client.form, ...params }, client.headers);
}

/** A device authorization that must succeed. */
export async function startDeviceAuthorization(t: TestServer, client: DeviceClient, params: Record<string, string | string[]> = {}): Promise<DeviceAuthorizationResponse> {
  const answer = await requestDeviceAuthorization(t, client, params);
  expect(answer.status, answer.text).toBe(200);
  return answer.json as DeviceAuthorizationResponse;
}

/** One poll of the token endpoint (RFC 8628 §3.4). */
export function pollToken(t: TestServer, client: DeviceClient, deviceCode: string, extra: Record<string, string> = {}): Promise<Answer> {
  return post(`${t.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: deviceCode, ...client.form, ...extra }, client.headers);
}

/** Submits the code-entry page with `typed`. */
export function enterUserCode(agent: BrowserAgent, page: AgentResponse, typed: string): Promise<AgentResponse> {
  return agent.submit(readForm(page), { [FORM_FIELDS.userCode]: typed });
}

/** Opens the verification page, signing in first when asked; returns the code-entry page. */
export async function openVerification(agent: BrowserAgent, credentials: CredentialsInput, path = '/device'): Promise<AgentResponse> {
  let page = await agent.open(path);
  if (pageKind(page.text) === 'login') page = await agent.submitLogin(page, credentials);
  expect(pageKind(page.text)).toBe<PageKind>('device-code');
  return page;
}

/**
 * The user's whole side: sign in if needed, type the code, answer the confirmation. Returns the
 * final page (device-done on success).
 */
export async function decideOnPages(
  agent: BrowserAgent,
  credentials: CredentialsInput,
  userCode: string,
  decision: 'approve' | 'deny',
): Promise<AgentResponse> {
  const entry = await openVerification(agent, credentials);
  const confirm = await enterUserCode(agent, entry, userCode);
  expect(pageKind(confirm.text), confirm.text).toBe<PageKind>('device-confirm');
  return agent.submit(readForm(confirm), { [FORM_FIELDS.decision]: decision });
}
