import * as oauth from 'oauth4webapi';
import { FORM_FIELDS } from '../../src/interaction/pages.js';
import type { User } from '../../src/storage/repositories/user-repository.js';
import { hashPassword } from '../../src/users/passwords.js';
import { basicAuth, type TestServer } from './server.js';

/**
 * A tiny cookie-keeping HTTP user agent for the browser-facing endpoints, on fetch: no redirect
 * is followed automatically (`redirect: 'manual'`), cookies are kept per name from Set-Cookie and
 * sent back in Cookie, and 30x responses are followed only while they stay on the server's origin,
 * so the final redirect to a client is observed, never fetched.
 */

export interface AgentResponse {
  status: number;
  headers: Headers;
  /** The URL requested. */
  url: URL;
  /** The Location header resolved against the request URL, when there is one. */
  location: URL | undefined;
  /** Raw Set-Cookie header values of this response. */
  setCookies: string[];
  text: string;
}

export interface HtmlForm {
  /** The `action` attribute, entity-decoded, resolved against the page URL. */
  action: string;
  method: string;
  /** Hidden inputs and other inputs with a value, entity-decoded. */
  fields: Record<string, string>;
  /** Submit buttons: name → values. */
  buttons: Array<{ name: string; value: string }>;
}

export type PageKind = 'login' | 'consent' | 'form-post' | 'logout-confirm' | 'logged-out' | 'account' | 'device-code' | 'device-confirm' | 'device-done' | 'error';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes the HTML character references Eta's escaping produces (and numeric ones). */
export function decodeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    return ENTITIES[ref] ?? whole;
  });
}

/** Attributes of one start tag (`name="value"`; the templates always double-quote). */
function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*"([^"]*)")?/g)) {
    const name = m[1];
    if (name !== undefined) out.set(name.toLowerCase(), decodeHtml(m[2] ?? ''));
  }
  return out;
}

/** Every `<form>` of a page, with its action, hidden fields and submit buttons. */
export function readForms(html: string, pageUrl?: URL): HtmlForm[] {
  const forms: HtmlForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1] ?? '');
    const rawAction = attrs.get('action') ?? '';
    const action = pageUrl === undefined ? rawAction : new URL(rawAction, pageUrl).toString();
    const fields: Record<string, string> = {};
    const buttons: Array<{ name: string; value: string }> = [];
    const body = m[2] ?? '';
    for (const input of body.matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1] ?? '');
      const name = a.get('name');
      if (name === undefined) continue;
      const type = (a.get('type') ?? 'text').toLowerCase();
      if (type === 'hidden' || a.has('value')) fields[name] = a.get('value') ?? '';
    }
    for (const button of body.matchAll(/<button\b([^>]*)>/gi)) {
      const a = attributes(button[1] ?? '');
      const name = a.get('name');
      if (name !== undefined) buttons.push({ name, value: a.get('value') ?? '' });
    }
    forms.push({ action, method: (attrs.get('method') ?? 'get').toLowerCase(), fields, buttons });
  }
  return forms;
}

/** The one form of a page whose action contains `actionPart` (or the only form). */
export function readForm(page: AgentResponse, actionPart?: string): HtmlForm {
  const forms = readForms(page.text, page.url).filter((f) => actionPart === undefined || f.action.includes(actionPart));
  const [form] = forms;
  if (form === undefined || forms.length !== 1) {
    throw new Error(`expected one form${actionPart ? ` posting to …${actionPart}…` : ''} on the page (${page.status} ${page.url.pathname}), found ${forms.length}`);
  }
  return form;
}

/** Which built-in page this is, from its title (every page but the error page has a fixed one). */
export function pageKind(html: string): PageKind {
  const title = /<title>([^<]*)<\/title>/i.exec(html)?.[1] ?? '';
  const name = decodeHtml(title).split(' · ')[0];
  switch (name) {
    case 'Sign in':
      return 'login';
    case 'Allow access':
      return 'consent';
    case 'Returning to the application':
      return 'form-post';
    case 'Sign out':
      return 'logout-confirm';
    case 'Signed out':
      return 'logged-out';
    case 'Your account':
      return 'account';
    case 'Connect a device':
      // The code entry and the confirmation share a title; only the confirmation asks for a decision.
      return /name="decision"/.test(html) ? 'device-confirm' : 'device-code';
    case 'Device connected':
    case 'Access denied':
      return 'device-done';
    default:
      return 'error';
  }
}

/** The title of a page (for error pages, what went wrong). */
export function pageTitle(html: string): string {
  return decodeHtml(/<h1>([^<]*)<\/h1>/i.exec(html)?.[1] ?? '');
}

function parseSetCookie(header: string): { name: string; value: string; expired: boolean } | undefined {
  const [pair = '', ...attrs] = header.split(';');
  const eq = pair.indexOf('=');
  if (eq <= 0) return undefined;
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  let expired = value === '';
  for (const attr of attrs) {
    const [k = '', v = ''] = attr.split('=').map((s) => s.trim());
    if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
    if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
  }
  return { name, value, expired };
}

export type FormInput = Record<string, string> | URLSearchParams;

export interface AuthorizationOutcome {
  /** The pages of the server shown on the way, in order (e.g. login, consent). */
  pages: PageKind[];
  /**
   * `redirect`: a 30x to the client's redirect URI; `form_post`: the form_post page; `page`: the
   * flow stopped on a page of the server (an error page, or a page the caller must handle).
   */
  kind: 'redirect' | 'form_post' | 'page';
  response: AgentResponse;
  /** Where the response goes: the Location without its query, or the form_post action. */
  target: string | undefined;
  /** The authorization response parameters (Location query, or form_post fields). */
  params: URLSearchParams;
  code: string | undefined;
  state: string | undefined;
  iss: string | undefined;
  error: string | undefined;
  errorDescription: string | undefined;
}

export interface CredentialsInput {
  username: string;
  password: string;
}

export class BrowserAgent {
  readonly cookies = new Map<string, string>();
  readonly origin: string;

  /** `base` is the issuer (endpoints are resolved under it). */
  constructor(readonly base: string) {
    this.origin = new URL(base).origin;
  }

  /** The Cookie header this agent sends. */
  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** A copy of this agent (same cookies): the same browser in another tab, or a stolen cookie jar. */
  clone(): BrowserAgent {
    const other = new BrowserAgent(this.base);
    for (const [k, v] of this.cookies) other.cookies.set(k, v);
    return other;
  }

  url(path: string): URL {
    return new URL(path.startsWith('http') ? path : `${this.base}${path}`);
  }

  async request(target: string | URL, init: { method?: string; form?: FormInput | string; headers?: Record<string, string> } = {}): Promise<AgentResponse> {
    const url = typeof target === 'string' ? this.url(target) : target;
    const headers: Record<string, string> = { ...init.headers };
    const cookie = this.cookieHeader();
    if (cookie !== '') headers.cookie = cookie;
    let body: string | undefined;
    if (init.form !== undefined) {
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
      body = typeof init.form === 'string' ? init.form : new URLSearchParams(init.form).toString();
    }
    const response = await fetch(url, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, redirect: 'manual' });
    const setCookies = response.headers.getSetCookie();
    for (const header of setCookies) {
      const parsed = parseSetCookie(header);
      if (parsed === undefined) continue;
      if (parsed.expired) this.cookies.delete(parsed.name);
      else this.cookies.set(parsed.name, parsed.value);
    }
    const location = response.headers.get('location');
    return {
      status: response.status,
      headers: response.headers,
      url,
      location: location === null ? undefined : new URL(location, url),
      setCookies,
      text: await response.text(),
    };
  }

  get(target: string | URL): Promise<AgentResponse> {
    return this.request(target);
  }

  post(target: string | URL, form: FormInput | string, headers: Record<string, string> = {}): Promise<AgentResponse> {
    return this.request(target, { method: 'POST', form, headers });
  }

  /** Follows redirects while they stay on the server's origin (303: GET); returns the last response. */
  async follow(response: AgentResponse, maxHops = 10): Promise<AgentResponse> {
    let current = response;
    for (let hop = 0; hop < maxHops; hop++) {
      if (current.status < 300 || current.status >= 400 || current.location === undefined || current.location.origin !== this.origin) return current;
      current = await this.get(current.location);
    }
    throw new Error('too many redirects');
  }

  /** GET a URL of the server and follow its redirects inside the server. */
  async open(target: string | URL): Promise<AgentResponse> {
    return this.follow(await this.get(target));
  }

  /** Submits a form of the page (its hidden fields, plus `extra`), following redirects inside the server. */
  async submit(form: HtmlForm, extra: Record<string, string> = {}): Promise<AgentResponse> {
    return this.follow(await this.post(form.action, { ...form.fields, ...extra }));
  }

  /** GET /authorize?… and follow to the first page (or the redirect to the client). */
  startAuthorization(params: Record<string, string>, path = '/authorize'): Promise<AgentResponse> {
    return this.open(`${path}?${new URLSearchParams(params).toString()}`);
  }

  /** Fills in the login page and submits it. */
  submitLogin(page: AgentResponse, credentials: CredentialsInput, override: Record<string, string> = {}): Promise<AgentResponse> {
    const form = readForm(page);
    return this.submit(form, { [FORM_FIELDS.username]: credentials.username, [FORM_FIELDS.password]: credentials.password, ...override });
  }

  /** Chooses approve or deny on the consent page. */
  submitConsent(page: AgentResponse, decision: 'approve' | 'deny', override: Record<string, string> = {}): Promise<AgentResponse> {
    const form = readForm(page);
    if (!form.buttons.some((b) => b.name === FORM_FIELDS.decision && b.value === decision)) throw new Error(`the consent page offers no ${decision} button`);
    return this.submit(form, { [FORM_FIELDS.decision]: decision, ...override });
  }

  /**
   * Runs an authorization request to its end: signs in when the login page appears (with
   * `credentials`), answers the consent page with `consent` (default approve), and returns the
   * outcome: the redirect to the client, the form_post page, or the page it stopped on.
   */
  async authorize(
    params: Record<string, string>,
    options: { credentials?: CredentialsInput; consent?: 'approve' | 'deny' } = {},
  ): Promise<AuthorizationOutcome> {
    const pages: PageKind[] = [];
    let response = await this.startAuthorization(params);
    for (let step = 0; step < 6; step++) {
      if (response.status >= 300 && response.status < 400) return outcome(response, pages);
      const kind = pageKind(response.text);
      if (kind === 'login' && options.credentials !== undefined && !pages.includes('login')) {
        pages.push(kind);
        response = await this.submitLogin(response, options.credentials);
      } else if (kind === 'consent' && !pages.includes('consent')) {
        pages.push(kind);
        response = await this.submitConsent(response, options.consent ?? 'approve');
      } else {
        return outcome(response, pages);
      }
    }
    throw new Error('the authorization did not finish');
  }
}

/** Reads the authorization response out of a redirect to the client or a form_post page. */
export function outcome(response: AgentResponse, pages: PageKind[] = []): AuthorizationOutcome {
  let kind: AuthorizationOutcome['kind'] = 'page';
  let params = new URLSearchParams();
  let target: string | undefined;
  if (response.status >= 300 && response.status < 400 && response.location !== undefined) {
    kind = 'redirect';
    params = new URLSearchParams(response.location.search);
    target = `${response.location.origin}${response.location.pathname}`;
  } else if (response.status === 200 && pageKind(response.text) === 'form-post') {
    kind = 'form_post';
    const form = readForm(response);
    params = new URLSearchParams(form.fields);
    target = form.action;
  }
  const get = (name: string) => params.get(name) ?? undefined;
  return {
    pages,
    kind,
    response,
    target,
    params,
    code: get('code'),
    state: get('state'),
    iss: get('iss'),
    error: get('error'),
    errorDescription: get('error_description'),
  };
}

/** A PKCE pair (RFC 7636, S256) from oauth4webapi. */
export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const verifier = oauth.generateRandomCodeVerifier();
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier) };
}

export interface TestUser extends CredentialsInput {
  user: User;
}

/** Creates a local user with a password (argon2id), as `gatehouse users create` would. */
export async function createUser(
  t: TestServer,
  input: { username: string; password?: string; email?: string; emailVerified?: boolean; name?: string },
): Promise<TestUser> {
  const password = input.password ?? 'correct horse battery staple';
  const user = await t.server.storage.users.createUser(
    { username: input.username, email: input.email ?? null, emailVerified: input.emailVerified ?? false, name: input.name ?? null },
    await hashPassword(password),
    t.clock.now(),
  );
  return { user, username: input.username, password };
}

export interface CodeClient {
  clientId: string;
  clientSecret: string | undefined;
  /** The first registered redirect URI. */
  redirectUri: string;
  /** For oauth4webapi. */
  client: oauth.Client;
  auth: oauth.ClientAuth;
  /** Authorization header value for raw requests of a confidential client (else undefined). */
  basic: string | undefined;
}

/** Creates a code-flow client (authorization_code + refresh_token) the way the CLI does. */
export async function createCodeClient(
  t: TestServer,
  options: {
    name?: string;
    confidential?: boolean;
    redirectUris?: string[];
    scope?: string;
    firstParty?: boolean;
    postLogoutRedirectUris?: string[];
    grantTypes?: string[];
    alwaysIssueRefreshToken?: boolean;
  } = {},
): Promise<CodeClient> {
  const redirectUris = options.redirectUris ?? ['https://client.example.com/cb'];
  const confidential = options.confidential ?? false;
  const created = await t.createClient({
    ...(options.name === undefined ? {} : { client_name: options.name }),
    grant_types: options.grantTypes ?? ['authorization_code', 'refresh_token'],
    redirect_uris: redirectUris,
    token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
    scope: options.scope ?? 'openid profile email offline_access',
    ...(options.firstParty === undefined ? {} : { first_party: options.firstParty }),
    ...(options.alwaysIssueRefreshToken === undefined ? {} : { always_issue_refresh_token: options.alwaysIssueRefreshToken }),
    ...(options.postLogoutRedirectUris === undefined ? {} : { post_logout_redirect_uris: options.postLogoutRedirectUris }),
  });
  const secret = created.clientSecret;
  if (confidential && secret === undefined) throw new Error('a confidential client was created without a secret');
  const [redirectUri] = redirectUris;
  if (redirectUri === undefined) throw new Error('no redirect URI');
  return {
    clientId: created.clientId,
    clientSecret: secret,
    redirectUri,
    client: { client_id: created.clientId },
    auth: secret === undefined ? oauth.None() : oauth.ClientSecretBasic(secret),
    basic: secret === undefined ? undefined : basicAuth(created.clientId, secret),
  };
}
