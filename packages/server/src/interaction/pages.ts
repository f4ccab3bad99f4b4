import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatehouseConfig } from '../config/schema.js';
import { methodNotAllowed } from '../http/app.js';
import { CSRF_FIELD } from './csrf.js';

/**
 * The server-rendered pages of the interaction layer (sign-in, consent, logout, device, account,
 * form_post): Eta templates compiled once at startup with escaping on (`<%= %>`; the built-in
 * templates use raw output only for the layout's body slot, which is HTML the page template
 * rendered and escaped), the operator's brand, and the headers every page carries.
 *
 * Form fields the templates submit (see `FORM_FIELDS`): `csrf_token` on every form posting back
 * here; login `username` and `password`; consent and device confirmation `decision` = `approve` |
 * `deny`; logout confirmation `decision` = `logout` | `cancel`; device code entry `user_code`.
 */

export const PAGE_NAMES = [
  'login',
  'consent',
  'error',
  'logout-confirm',
  'logged-out',
  'account',
  'form-post',
  'device-code',
  'device-confirm',
  'device-done',
] as const;

export type PageName = (typeof PAGE_NAMES)[number];

/** The names of the form fields the built-in templates submit. */
export const FORM_FIELDS = {
  csrf: CSRF_FIELD,
  username: 'username',
  password: 'password',
  decision: 'decision',
  userCode: 'user_code',
} as const;

export const CONSENT_DECISIONS = ['approve', 'deny'] as const;
export type ConsentDecision = (typeof CONSENT_DECISIONS)[number];
export const LOGOUT_DECISIONS = ['logout', 'cancel'] as const;
export type LogoutDecision = (typeof LOGOUT_DECISIONS)[number];

export interface ScopeDescription {
  name: string;
  /** Shown to the user; the name alone is shown when empty. */
  description: string;
}

/**
 * Every `action` of a form posting back to this server is an absolute path (`/…`, not `//…`) or
 * an absolute URL on the issuer's origin; anything else is refused when rendering.
 */
export interface LoginPageData {
  action: string;
  csrfToken: string;
  /** Prefilled (after a failed attempt, or from login_hint). */
  username?: string;
  /** Shown above the form and linked to the inputs with aria-describedby. */
  error?: string;
  clientName?: string;
  /** The application registered itself (RFC 7591): its name is not vouched for. */
  clientUnverified?: boolean;
  /** Seconds before another attempt is accepted (the caller also sends 429 and Retry-After). */
  retryAfter?: number;
}

export interface ConsentPageData {
  action: string;
  csrfToken: string;
  clientName: string;
  /** Shows a visible "unverified" marker and a warning. */
  clientUnverified: boolean;
  scopes: ScopeDescription[];
  /** Resource identifiers (RFC 8707) the tokens will be for. */
  resources: string[];
  userName: string;
}

export interface ErrorPageData {
  title: string;
  message: string;
  requestId?: string;
}

export interface LogoutConfirmPageData {
  action: string;
  csrfToken: string;
  /** The client that asked for the logout, when known. */
  clientName?: string;
  userName?: string;
}

export interface LoggedOutPageData {
  /** The client the user signed out from, when known. */
  clientName?: string;
}

export interface AccountGrant {
  grantId: string;
  clientName: string;
  scopes: string[];
  /** ISO 8601 date-time (shown as given, and in `<time datetime>`). */
  createdAt: string;
  lastUsedAt: string | null;
  /** Where the grant's "Revoke access" form posts (with the page's CSRF token). */
  revokeAction: string;
}

export interface AccountPageData {
  userName: string;
  /** One token for every form on the page (revoke and sign out). */
  csrfToken: string;
  grants: AccountGrant[];
  logoutAction: string;
}

/** OAuth 2.0 Form Post Response Mode: the browser posts `fields` to the client's redirect URI. */
export interface FormPostPageData {
  /** The client's redirect URI: an absolute http(s) URL; its origin is added to CSP form-action. */
  action: string;
  fields: Record<string, string>;
}

export interface DeviceCodePageData {
  action: string;
  csrfToken: string;
  /** Prefilled (from verification_uri_complete, or after a failed attempt). */
  userCode?: string;
  error?: string;
}

export interface DeviceConfirmPageData {
  action: string;
  csrfToken: string;
  clientName: string;
  clientUnverified: boolean;
  /** Shown so the user can check it matches the device's. */
  userCode: string;
  scopes: ScopeDescription[];
  resources: string[];
  userName: string;
}

export interface DeviceDonePageData {
  approved: boolean;
  clientName?: string;
}

export interface PageDataMap {
  login: LoginPageData;
  consent: ConsentPageData;
  error: ErrorPageData;
  'logout-confirm': LogoutConfirmPageData;
  'logged-out': LoggedOutPageData;
  account: AccountPageData;
  'form-post': FormPostPageData;
  'device-code': DeviceCodePageData;
  'device-confirm': DeviceConfirmPageData;
  'device-done': DeviceDonePageData;
}

export interface RenderOptions {
  /** Default 200. */
  status?: number;
  /**
   * Extra CSP form-action sources, as URLs (their exact origin is allowed) or private-use scheme
   * redirect URIs (`com.example.app:/cb`: the scheme is allowed). Browsers apply form-action to
   * every redirect that follows a form submission (Chromium blocks a POST → 303 to self → 302 to
   * the client too), so a page whose POST may end at a client's redirect URI (login and consent
   * in an authorization request, logout with a post_logout_redirect_uri) must list that URI here.
   * `form-post` adds its own action's origin.
   */
  formAction?: string[];
}

/** A plain gate in the brand colour (validated as #rrggbb by the config schema, checked again here). */
function faviconSvg(color: string): string {
  const fill = /^#[0-9a-fA-F]{6}$/.test(color) ? color : '#1f5fbf';
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="${fill}"/><path d="M9 26V13l7-6 7 6v13h-4v-8h-6v8z" fill="#fff"/></svg>`;
}

export interface StaticAsset {
  /** Route path, under the issuer's path. */
  path: string;
  /** The URL pages link to: the path with a content hash, so it can be cached. */
  url: string;
  contentType: string;
  body: string;
}

export interface PageRenderer {
  /** Renders the page and sends it with the page headers; returns the reply for `return`. */
  render<P extends PageName>(reply: FastifyReply, template: P, data: PageDataMap[P], options?: RenderOptions): FastifyReply;
  /** The error page, with the request's id for support: what every page's refusal answers. */
  renderError(request: FastifyRequest, reply: FastifyReply, status: number, title: string, message: string): FastifyReply;
  /** The HTML alone (no headers). */
  renderToString<P extends PageName>(template: P, data: PageDataMap[P]): string;
  /** The Content-Security-Policy a page rendered with these options carries. */
  contentSecurityPolicy(formAction?: readonly string[]): string;
  /** gatehouse.css, brand.css, form-post.js and favicon.svg, served by `registerAssets`. */
  readonly assets: readonly StaticAsset[];
}

export interface PageRendererOptions {
  issuer: string;
  ui: GatehouseConfig['ui'];
}

/** packages/server/templates, from src/interaction (vitest) and dist/interaction (built) alike. */
export const BUILTIN_TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

const LAYOUT = 'layout';
const TEMPLATE_NAMES: readonly string[] = [LAYOUT, ...PAGE_NAMES];
/** Files of templatesDir that may replace built-in ones besides the templates. */
const OVERRIDABLE_ASSETS = ['gatehouse.css'] as const;

const COLOR = /^#[0-9a-fA-F]{6}$/;
const HTTP_ORIGIN = /^https?:\/\/(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:$/;

/** A CSP source for a form target: the exact origin of an http(s) URL, or a private-use scheme. */
function formActionSource(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`formAction ${JSON.stringify(value)} is not an absolute URL`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    if (!HTTP_ORIGIN.test(url.origin)) throw new TypeError(`formAction ${JSON.stringify(value)} has an unusable origin`);
    return url.origin;
  }
  if (PRIVATE_USE_SCHEME.test(url.protocol)) return url.protocol;
  throw new TypeError(`formAction ${JSON.stringify(value)}: only http(s) URLs and private-use schemes may receive forms`);
}

/** WCAG 2 relative luminance of #rrggbb. */
function luminance(hex: string): number {
  const channel = (i: number) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

/** White or near-black, whichever contrasts more with the colour. */
function readableOn(hex: string): string {
  const l = luminance(hex);
  const dark = '#1b1f24';
  return (1.05 / (l + 0.05) >= (l + 0.05) / (luminance(dark) + 0.05)) ? '#ffffff' : dark;
}

function brandCss(brand: GatehouseConfig['ui']['brand']): string {
  for (const [name, value] of [['primaryColor', brand.primaryColor], ['backgroundColor', brand.backgroundColor]] as const) {
    if (!COLOR.test(value)) throw new Error(`ui.brand.${name} must be a colour like #1f5fbf`);
  }
  return [
    '/* Generated from ui.brand */',
    ':root {',
    `  --gh-primary: ${brand.primaryColor};`,
    `  --gh-on-primary: ${readableOn(brand.primaryColor)};`,
    `  --gh-background: ${brand.backgroundColor};`,
    `  --gh-on-background: ${readableOn(brand.backgroundColor)};`,
    '}',
    '',
  ].join('\n');
}

/** Sample data: every template is rendered once at startup, so a broken override fails there. */
const SAMPLE: PageDataMap = {
  login: { action: '/login', csrfToken: 'sample-csrf-token', username: 'user', error: 'error', clientName: 'Client', retryAfter: 30 },
  consent: {
    action: '/consent',
    csrfToken: 'sample-csrf-token',
    clientName: 'Client',
    clientUnverified: true,
    scopes: [{ name: 'openid', description: 'Know who you are' }, { name: 'sample', description: '' }],
    resources: ['https://api.example.com'],
    userName: 'user',
  },
  error: { title: 'Error', message: 'Something went wrong', requestId: 'request-id' },
  'logout-confirm': { action: '/logout', csrfToken: 'sample-csrf-token', clientName: 'Client', userName: 'user' },
  'logged-out': { clientName: 'Client' },
  account: {
    userName: 'user',
    csrfToken: 'sample-csrf-token',
    grants: [{ grantId: 'g', clientName: 'Client', scopes: ['openid'], createdAt: '2025-01-01T00:00:00Z', lastUsedAt: null, revokeAction: '/account/grants/g/revoke' }],
    logoutAction: '/logout',
  },
  'form-post': { action: 'https://client.example.com/cb', fields: { code: 'code', state: 'state' } },
  'device-code': { action: '/device', csrfToken: 'sample-csrf-token', userCode: 'ABCD-EFGH', error: 'error' },
  'device-confirm': {
    action: '/device/confirm',
    csrfToken: 'sample-csrf-token',
    clientName: 'Client',
    clientUnverified: false,
    userCode: 'ABCD-EFGH',
    scopes: [{ name: 'sample', description: 'Sample' }],
    resources: [],
    userName: 'user',
  },
  'device-done': { approved: true, clientName: 'Client' },
};

interface LoadedFiles {
  templates: Map<string, { source: string; file: string }>;
  css: { source: string; file: string };
}

function loadFiles(templatesDir: string | undefined): LoadedFiles {
  const read = (file: string) => ({ source: readFileSync(file, 'utf8'), file });
  const templates = new Map(TEMPLATE_NAMES.map((name) => [name, read(join(BUILTIN_TEMPLATES_DIR, `${name}.eta`))]));
  let css = read(join(BUILTIN_TEMPLATES_DIR, 'assets', 'gatehouse.css'));
  if (templatesDir === undefined) return { templates, css };

  const dir = resolve(templatesDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`ui.templatesDir: ${dir} is not a directory`);
  for (const entry of readdirSync(dir)) {
    const file = join(dir, entry);
    if (entry.endsWith('.eta')) {
      const name = entry.slice(0, -'.eta'.length);
      if (!TEMPLATE_NAMES.includes(name)) {
        throw new Error(`ui.templatesDir: ${file} replaces no template; the templates are ${TEMPLATE_NAMES.map((n) => `${n}.eta`).join(', ')}`);
      }
      templates.set(name, read(file));
    } else if ((OVERRIDABLE_ASSETS as readonly string[]).includes(entry)) {
      css = read(file);
    }
  }
  return { templates, css };
}

function assetHash(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('base64url').slice(0, 12);
}

/** An action posting back here: an absolute path or a URL on the issuer's origin. */
function checkSelfAction(value: unknown, origin: string, what: string): void {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string`);
  if (/^\/(?![/\\])/.test(value) && !/[\s\\]/.test(value)) return;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.origin !== origin || /\s/.test(value)) {
    throw new TypeError(`${what} must be an absolute path or a URL on the issuer's origin`);
  }
}

function checkFormPostAction(value: unknown): void {
  if (typeof value !== 'string') throw new TypeError('form-post action must be a string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError('form-post action must be an absolute URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hash !== '' || value.includes('#')) {
    throw new TypeError('form-post action must be an http(s) URL without a fragment');
  }
}

/** Refuses data whose URLs could not be the ones meant (javascript:, other origins, …). */
function checkData<P extends PageName>(template: P, data: PageDataMap[P], origin: string): void {
  const d = data as Partial<Record<string, unknown>>;
  if (template === 'form-post') {
    checkFormPostAction(d.action);
    return;
  }
  if (template === 'account') {
    const account = data as AccountPageData;
    checkSelfAction(account.logoutAction, origin, 'account logoutAction');
    for (const grant of account.grants) checkSelfAction(grant.revokeAction, origin, 'account revokeAction');
    return;
  }
  if ('action' in d) checkSelfAction(d.action, origin, `${template} action`);
}

export function createPageRenderer(options: PageRendererOptions): PageRenderer {
  const issuerUrl = new URL(options.issuer);
  const origin = issuerUrl.origin;
  const base = issuerUrl.pathname.replace(/\/+$/, '');
  const { brand } = options.ui;
  if (brand.logoUrl !== undefined && new URL(brand.logoUrl).protocol !== 'https:') throw new Error('ui.brand.logoUrl must be an https URL');

  const files = loadFiles(options.ui.templatesDir);
  const formPostJs = readFileSync(join(BUILTIN_TEMPLATES_DIR, 'assets', 'form-post.js'), 'utf8');
  const asset = (name: string, contentType: string, body: string): StaticAsset => ({
    path: `${base}/assets/${name}`,
    url: `${base}/assets/${name}?v=${assetHash(body)}`,
    contentType,
    body,
  });
  const assets = [
    asset('gatehouse.css', 'text/css; charset=utf-8', files.css.source),
    asset('brand.css', 'text/css; charset=utf-8', brandCss(brand)),
    asset('form-post.js', 'text/javascript; charset=utf-8', formPostJs),
    // Pages name an icon, so browsers never ask for /favicon.ico (a JSON 404 in the console).
    asset('favicon.svg', 'image/svg+xml', faviconSvg(brand.primaryColor)),
  ] as const;
  const shared = {
    brand: { name: brand.name, logoUrl: brand.logoUrl ?? null },
    assets: { css: assets[0].url, brandCss: assets[1].url, formPostJs: assets[2].url, favicon: assets[3].url },
    // Set by the form-post template's layout() call only; callers' data cannot turn it on.
    autoSubmit: false,
  };

  // eta/core: no filesystem access at render time; every template is compiled here, once.
  const eta = new Eta({ autoEscape: true, autoFilter: false, autoTrim: [false, 'nl'], cache: true, useWith: false, varName: 'it', debug: false });
  for (const [name, { source, file }] of files.templates) {
    try {
      eta.loadTemplate(`@${name}`, source);
    } catch (cause) {
      throw new Error(`template ${file} does not compile: ${(cause as Error).message}`, { cause });
    }
  }

  const html = <P extends PageName>(template: P, data: PageDataMap[P]): string => {
    checkData(template, data, origin);
    return eta.render(`@${template}`, { ...data, ...shared });
  };

  // Fail fast: render every page once with sample data (a runtime error in an override, or a form
  // that lost its CSRF field, stops the server from starting rather than the first sign-in).
  for (const name of PAGE_NAMES) {
    const sample = SAMPLE[name];
    let out: string;
    try {
      out = html(name, sample);
    } catch (cause) {
      throw new Error(`template ${files.templates.get(name)?.file ?? name} fails to render: ${(cause as Error).message}`, { cause });
    }
    if ('csrfToken' in sample && !out.includes(`name="${CSRF_FIELD}"`)) {
      throw new Error(`template ${files.templates.get(name)?.file ?? name} has a form without the hidden ${CSRF_FIELD} field`);
    }
  }

  const contentSecurityPolicy = (formAction: readonly string[] = []): string => {
    const sources = ["'self'", ...new Set(formAction.map(formActionSource))];
    return [
      "default-src 'none'",
      "style-src 'self'",
      "img-src 'self' https:",
      `form-action ${sources.join(' ')}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "script-src 'self'",
    ].join('; ');
  };

  const render: PageRenderer['render'] = (reply, template, data, renderOptions = {}) => {
    const formAction = [...(renderOptions.formAction ?? [])];
    if (template === 'form-post') formAction.push((data as FormPostPageData).action);
    const csp = contentSecurityPolicy(formAction);
    const body = html(template, data);
    return reply
      .code(renderOptions.status ?? 200)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('pragma', 'no-cache')
      .header('content-security-policy', csp)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .send(body);
  };

  return {
    assets,
    contentSecurityPolicy,
    renderToString: html,
    render,
    renderError: (request, reply, status, title, message) => render(reply, 'error', { title, message, requestId: request.id }, { status }),
  };
}

/** Serves the stylesheets and the form_post script (GET and HEAD; other methods get 405). */
export function registerAssets(app: FastifyInstance, renderer: PageRenderer): void {
  for (const asset of renderer.assets) {
    app.get(asset.path, async (_request, reply) =>
      reply
        .header('content-type', asset.contentType)
        // The URLs pages use carry a content hash, so a day of caching never serves a stale file.
        .header('cache-control', 'public, max-age=86400')
        .header('cross-origin-resource-policy', 'same-origin')
        .send(asset.body),
    );
    methodNotAllowed(app, asset.path, ['GET', 'HEAD']);
  }
}
