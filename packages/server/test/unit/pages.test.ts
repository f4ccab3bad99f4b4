import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type GatehouseConfig } from '../../src/config/schema.js';
import { createHttpApp } from '../../src/http/app.js';
import {
  BUILTIN_TEMPLATES_DIR,
  createPageRenderer,
  PAGE_NAMES,
  registerAssets,
  type PageDataMap,
  type PageName,
  type PageRenderer,
} from '../../src/interaction/pages.js';
import { createLogger } from '../../src/logging.js';

const ISSUER = 'http://127.0.0.1:4000';
const root = mkdtempSync(join(tmpdir(), 'gatehouse-pages-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;

function ui(input: Record<string, unknown> = {}): GatehouseConfig['ui'] {
  return configSchema.parse({ ui: input }).ui;
}

/** A templates directory holding the given files. */
function templatesDir(files: Record<string, string>): string {
  const dir = join(root, `t${++dirCount}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

const XSS = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "'><svg onload=alert(1)>",
  'javascript:alert(1)',
  '</textarea></title><script>alert(2)</script>',
  '&lt;script&gt;',
];
const hostile = (i: number) => XSS[i % XSS.length] ?? '';
const ALL_HOSTILE = XSS.join(' ');

/** Every page with a hostile value in every free-text field (URLs valid, with hostile parts). */
function hostileData(): PageDataMap {
  const scopes = XSS.map((x, i) => ({ name: `scope${i}${x}`, description: x }));
  return {
    login: { action: `/login?x=${encodeURI(ALL_HOSTILE)}`, csrfToken: hostile(1), username: hostile(0), error: hostile(1), clientName: hostile(2), retryAfter: 30 },
    consent: {
      action: `/consent/"><script>alert(1)</script>`,
      csrfToken: hostile(0),
      clientName: ALL_HOSTILE,
      clientUnverified: true,
      scopes,
      resources: XSS,
      userName: ALL_HOSTILE,
    },
    error: { title: ALL_HOSTILE, message: ALL_HOSTILE, requestId: hostile(1) },
    'logout-confirm': { action: '/logout?"onmouseover=alert(1)', csrfToken: hostile(1), clientName: ALL_HOSTILE, userName: ALL_HOSTILE },
    'logged-out': { clientName: ALL_HOSTILE },
    account: {
      userName: ALL_HOSTILE,
      csrfToken: hostile(1),
      grants: XSS.map((x, i) => ({
        grantId: x,
        clientName: x,
        scopes: [x, `s${i}`],
        createdAt: x,
        lastUsedAt: i % 2 === 0 ? null : x,
        revokeAction: `/account/grants/${encodeURIComponent(x)}/revoke`,
      })),
      logoutAction: '/logout?"><script>alert(1)</script>',
    },
    'form-post': {
      action: 'https://client.example.com/cb?x="><script>alert(1)</script>',
      fields: Object.fromEntries(XSS.map((x, i) => [`f${i}${x}`, x])),
    },
    'device-code': { action: '/device', csrfToken: hostile(1), userCode: hostile(1), error: ALL_HOSTILE },
    'device-confirm': {
      action: '/device/confirm',
      csrfToken: hostile(1),
      clientName: ALL_HOSTILE,
      clientUnverified: true,
      userCode: ALL_HOSTILE,
      scopes,
      resources: XSS,
      userName: ALL_HOSTILE,
    },
    'device-done': { approved: true, clientName: ALL_HOSTILE },
  };
}

const ALLOWED_TAGS = new Set([
  'html', 'head', 'meta', 'title', 'link', 'script', 'body', 'header', 'img', 'span', 'main', 'h1', 'h2', 'h3', 'p', 'strong',
  'form', 'input', 'div', 'label', 'button', 'ul', 'li', 'code', 'dl', 'dt', 'dd', 'time',
]);
const ALLOWED_ATTRIBUTES = new Set([
  'lang', 'charset', 'name', 'content', 'rel', 'href', 'src', 'defer', 'class', 'alt', 'width', 'height', 'method', 'action',
  'type', 'value', 'id', 'for', 'autocomplete', 'autocapitalize', 'spellcheck', 'required', 'autofocus', 'aria-describedby',
  'aria-invalid', 'role', 'data-auto-submit', 'datetime',
]);

interface Tag {
  name: string;
  attributes: Map<string, string>;
}

/**
 * Every start tag with its attributes. Attribute values must be double-quoted and contain no
 * `<`, `>` or `"`, so an injection that broke out of a value shows up as a foreign tag or
 * attribute.
 */
function tags(html: string): Tag[] {
  const out: Tag[] = [];
  const doctypeless = html.replace(/^<!doctype html>/i, '');
  for (const m of doctypeless.matchAll(/<([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>/g)) {
    const attributes = new Map<string, string>();
    let rest = m[2] ?? '';
    while (rest.trim() !== '') {
      const a = /^\s+([a-zA-Z][a-zA-Z0-9-]*)(?:="([^"<>]*)")?/.exec(rest);
      if (a === null) throw new Error(`unparseable attributes in <${m[1]}${m[2]}>`);
      attributes.set(a[1] ?? '', a[2] ?? '');
      rest = rest.slice(a[0].length);
    }
    out.push({ name: (m[1] ?? '').toLowerCase(), attributes });
  }
  return out;
}

/** Text outside tags must hold no `<` or `>`. */
function strayAngleBrackets(html: string): string[] {
  return html.replace(/^<!doctype html>/i, '').replace(/<\/?[a-zA-Z][a-zA-Z0-9-]*[^<>]*>/g, '').match(/[<>]/g) ?? [];
}

describe('built-in templates', () => {
  const renderer = createPageRenderer({ issuer: ISSUER, ui: ui() });
  const data = hostileData();

  it.each(PAGE_NAMES.map((p) => [p]))('%s escapes hostile data everywhere', (page: PageName) => {
    const html = renderer.renderToString(page, data[page]);
    const all = tags(html);
    for (const tag of all) {
      expect(ALLOWED_TAGS, `<${tag.name}> in ${page}`).toContain(tag.name);
      for (const name of tag.attributes.keys()) {
        expect(ALLOWED_ATTRIBUTES, `attribute ${name} on <${tag.name}> in ${page}`).toContain(name);
        expect(name).not.toMatch(/^on/i);
      }
    }
    expect(strayAngleBrackets(html)).toEqual([]);
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<svg');
    expect(html).not.toMatch(/\sstyle=/i);
    // The hostile strings arrive, escaped.
    if (page !== 'login' && page !== 'form-post' && page !== 'device-code') expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // Pre-escaped input is escaped again, never decoded.
    if (page === 'error') expect(html).toContain('&amp;lt;script&amp;gt;');
    // The only script is the form_post one, by URL.
    const scripts = all.filter((t) => t.name === 'script');
    expect(scripts.map((s) => s.attributes.get('src'))).toEqual(page === 'form-post' ? [expect.stringMatching(/^\/assets\/form-post\.js\?v=/)] : []);
    // No link may carry a javascript: URL; every src/href/action is what the renderer vouched for.
    for (const tag of all) {
      for (const attr of ['href', 'src', 'action']) {
        const value = tag.attributes.get(attr);
        if (value !== undefined) expect(value).not.toMatch(/^\s*javascript:/i);
      }
    }
  });

  it.each(PAGE_NAMES.map((p) => [p]))('%s is accessible markup: lang, one h1, labelled inputs, buttons for actions', (page: PageName) => {
    const html = renderer.renderToString(page, data[page]);
    const all = tags(html);
    expect(all.find((t) => t.name === 'html')?.attributes.get('lang')).toBe('en');
    expect(all.filter((t) => t.name === 'h1')).toHaveLength(1);
    expect(all.filter((t) => t.name === 'main')).toHaveLength(1);
    expect(all.some((t) => t.name === 'a')).toBe(false);
    const labels = new Set(all.filter((t) => t.name === 'label').map((t) => t.attributes.get('for')));
    const ids = new Set(all.map((t) => t.attributes.get('id')).filter((id) => id !== undefined));
    for (const input of all.filter((t) => t.name === 'input' && t.attributes.get('type') !== 'hidden')) {
      expect(labels).toContain(input.attributes.get('id'));
    }
    for (const tag of all) {
      for (const ref of (tag.attributes.get('aria-describedby') ?? '').split(' ').filter(Boolean)) expect(ids).toContain(ref);
    }
    for (const form of html.match(/<form[\s\S]*?<\/form>/g) ?? []) expect(form).toMatch(/<button type="submit"/);
  });

  it('form pages carry the CSRF token in a hidden field; form-post does not (it posts to the client)', () => {
    const token = 'tok_0123456789-abcdefghijklmnopqrstuvwxyzABCDEF';
    const cases: [PageName, object][] = [
      ['login', { action: '/l', csrfToken: token }],
      ['consent', { action: '/c', csrfToken: token, clientName: 'C', clientUnverified: false, scopes: [], resources: [], userName: 'u' }],
      ['logout-confirm', { action: '/o', csrfToken: token }],
      ['device-code', { action: '/d', csrfToken: token }],
      ['device-confirm', { action: '/d', csrfToken: token, clientName: 'C', clientUnverified: false, userCode: 'X', scopes: [], resources: [], userName: 'u' }],
      ['account', { userName: 'u', csrfToken: token, logoutAction: '/o', grants: [{ grantId: 'g', clientName: 'C', scopes: [], createdAt: 'x', lastUsedAt: null, revokeAction: '/r' }] }],
    ];
    for (const [page, d] of cases) {
      const html = renderer.renderToString(page, d as PageDataMap[typeof page]);
      const forms = html.match(/<form[\s\S]*?<\/form>/g) ?? [];
      expect(forms.length, page).toBeGreaterThan(0);
      for (const form of forms) expect(form).toContain(`<input type="hidden" name="csrf_token" value="${token}">`);
    }
    const formPost = renderer.renderToString('form-post', { action: 'https://c.example/cb', fields: { code: 'abc', state: 'xyz' } });
    expect(formPost).not.toContain('csrf_token');
    expect(formPost).toContain('<form method="post" action="https://c.example/cb" data-auto-submit>');
    expect(formPost).toContain('<input type="hidden" name="code" value="abc">');
    expect(formPost).toContain('<input type="hidden" name="state" value="xyz">');
    expect(formPost).toMatch(/<button type="submit"[^>]*>Continue<\/button>/);
  });

  it('login: autocomplete, the error linked to the inputs, the retry delay', () => {
    const html = renderer.renderToString('login', { action: '/l', csrfToken: 't', username: 'alice', error: 'Wrong username or password.', retryAfter: 300 });
    expect(html).toMatch(/<input id="username" name="username" type="text" value="alice" autocomplete="username"/);
    expect(html).toMatch(/<input id="password" name="password" type="password" autocomplete="current-password"/);
    expect(html).toContain('<p class="alert" id="login-error" role="alert">Wrong username or password.</p>');
    expect(html).toContain('aria-describedby="login-error login-retry"');
    expect(html).toContain('aria-invalid="true"');
    expect(html).toContain('Try again in 5 minutes.');
    const plain = renderer.renderToString('login', { action: '/l', csrfToken: 't' });
    expect(plain).not.toContain('aria-describedby');
    expect(plain).not.toContain('role="alert"');
    expect(plain).toMatch(/name="username"[^>]*autofocus/);
  });

  it('consent: client, unverified marker, scopes with descriptions, resources, one form with Allow and Deny', () => {
    const d: PageDataMap['consent'] = {
      action: '/interaction/abc/consent',
      csrfToken: 't',
      clientName: 'Photo Printer',
      clientUnverified: true,
      scopes: [
        { name: 'photos:read', description: 'See your photos' },
        { name: 'profile', description: '' },
      ],
      resources: ['https://photos.example.com'],
      userName: 'alice',
    };
    const html = renderer.renderToString('consent', d);
    expect(html).toContain('<h1>Allow Photo Printer to access your account?</h1>');
    expect(html).toContain('Unverified');
    expect(html).toContain('<span class="scope-description">See your photos</span> <code class="scope-name">photos:read</code>');
    expect(html).toContain('<li><code class="scope-name">profile</code></li>');
    expect(html).toContain('<li><code>https://photos.example.com</code></li>');
    expect(html).toContain('alice');
    expect(html.match(/<form/g)).toHaveLength(1);
    expect(html).toContain('<button type="submit" name="decision" value="approve" class="button primary">Allow</button>');
    expect(html).toContain('<button type="submit" name="decision" value="deny" class="button secondary">Deny</button>');
    expect(renderer.renderToString('consent', { ...d, clientUnverified: false })).not.toContain('Unverified');
  });

  it('account: a revoke form per grant with an accessible name, never-used grants', () => {
    const html = renderer.renderToString('account', {
      userName: 'alice',
      csrfToken: 't',
      logoutAction: '/logout',
      grants: [{ grantId: 'g1', clientName: 'Photo Printer', scopes: ['photos:read'], createdAt: '2025-01-02T03:04:05Z', lastUsedAt: null, revokeAction: '/account/grants/g1/revoke' }],
    });
    expect(html).toContain('<form method="post" action="/account/grants/g1/revoke">');
    expect(html).toContain('Revoke access<span class="visually-hidden"> for Photo Printer</span></button>');
    expect(html).toContain('<time datetime="2025-01-02T03:04:05Z">2025-01-02T03:04:05Z</time>');
    expect(html).toContain('<dd>Never</dd>');
    expect(html).toContain('<form method="post" action="/logout">');
  });

  it('device-done says whether the device was connected', () => {
    expect(renderer.renderToString('device-done', { approved: true })).toContain('<h1>Device connected</h1>');
    expect(renderer.renderToString('device-done', { approved: false })).toContain('<h1>Access denied</h1>');
  });

  it('escapes by default: <%= %> escapes, and raw output appears only as the layout body slot', () => {
    expect(renderer.renderToString('error', { title: 't', message: `<b a="1" b='2'>&` })).toContain('&lt;b a=&quot;1&quot; b=&#39;2&#39;&gt;&amp;');
    for (const file of readdirSync(BUILTIN_TEMPLATES_DIR).filter((f) => f.endsWith('.eta'))) {
      const source = readFileSync(join(BUILTIN_TEMPLATES_DIR, file), 'utf8');
      const raw = source.match(/<%[-_]?\s*~[^%]*%>/g) ?? [];
      expect(raw, file).toEqual(file === 'layout.eta' ? ['<%~ it.body %>'] : []);
      expect(source, file).not.toMatch(/\sstyle=|\son[a-z]+=|<script>/i);
    }
  });

  it('caller data cannot switch on the auto-submit script or replace the brand', () => {
    const d = { title: 'T', message: 'M', autoSubmit: true, brand: { name: 'Evil' }, assets: { css: 'https://evil.example/x.css' } };
    const html = renderer.renderToString('error', d as PageDataMap['error']);
    expect(html).not.toContain('<script');
    expect(html).not.toContain('Evil');
    expect(html).not.toContain('evil.example');
  });

  it('refuses action URLs that do not post back to the issuer, and non-http(s) form-post targets', () => {
    for (const action of ['javascript:alert(1)', '//evil.example/login', '/\\evil.example', 'https://evil.example/login', 'login', 'data:text/html,x', ' /login']) {
      expect(() => renderer.renderToString('login', { action, csrfToken: 't' }), action).toThrow(/action/);
    }
    expect(renderer.renderToString('login', { action: `${ISSUER}/login`, csrfToken: 't' })).toContain(`action="${ISSUER}/login"`);
    expect(() =>
      renderer.renderToString('account', { userName: 'u', csrfToken: 't', logoutAction: '/o', grants: [{ grantId: 'g', clientName: 'C', scopes: [], createdAt: 'x', lastUsedAt: null, revokeAction: 'javascript:alert(1)' }] }),
    ).toThrow(/revokeAction/);
    for (const action of ['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'com.example.app:/cb', '/cb', 'https://c.example/cb#frag', 'vbscript:x']) {
      expect(() => renderer.renderToString('form-post', { action, fields: {} }), action).toThrow(/form-post action/);
    }
  });
});

describe('brand', () => {
  it('shows the name and logo and generates brand.css with readable text colours', () => {
    const renderer = createPageRenderer({
      issuer: ISSUER,
      ui: ui({ brand: { name: 'Acme <ID>', logoUrl: 'https://cdn.example.com/logo.svg?a=1&b="2"', primaryColor: '#ffd400', backgroundColor: '#101820' } }),
    });
    const html = renderer.renderToString('logged-out', {});
    expect(html).toContain('<span class="site-name">Acme &lt;ID&gt;</span>');
    expect(html).toContain('<title>Signed out · Acme &lt;ID&gt;</title>');
    expect(html).toContain('<img class="site-logo" src="https://cdn.example.com/logo.svg?a=1&amp;b=&quot;2&quot;" alt="" width="40" height="40">');
    const css = renderer.assets.find((a) => a.path === '/assets/brand.css')?.body ?? '';
    expect(css).toContain('--gh-primary: #ffd400;');
    expect(css).toContain('--gh-on-primary: #1b1f24;'); // dark text on yellow
    expect(css).toContain('--gh-background: #101820;');
    expect(css).toContain('--gh-on-background: #ffffff;'); // light text on near-black
    expect(createPageRenderer({ issuer: ISSUER, ui: ui() }).renderToString('logged-out', {})).not.toContain('<img');
  });

  it('refuses colours that are not #rrggbb even when the schema is bypassed', () => {
    const bad = { ...ui(), brand: { ...ui().brand, primaryColor: 'red;} body{display:none' } };
    expect(() => createPageRenderer({ issuer: ISSUER, ui: bad })).toThrow(/primaryColor/);
  });
});

describe('templatesDir overrides', () => {
  it('replace one template, file by file; the others stay built in', () => {
    const dir = templatesDir({
      'error.eta': `<% layout('@layout', { title: 'Oops' }) %>\n<h1>Custom: <%= it.title %></h1>\n<p><%= it.message %></p>\n`,
      'gatehouse.css': 'body { color: rebeccapurple; }\n',
      'README.md': 'not a template',
    });
    const renderer = createPageRenderer({ issuer: ISSUER, ui: ui({ templatesDir: dir }) });
    const html = renderer.renderToString('error', { title: '<x>', message: 'm' });
    expect(html).toContain('<h1>Custom: &lt;x&gt;</h1>');
    expect(html).toContain('<title>Oops · Gatehouse</title>');
    expect(renderer.renderToString('login', { action: '/l', csrfToken: 't' })).toContain('<h1>Sign in</h1>');
    expect(renderer.assets.find((a) => a.path === '/assets/gatehouse.css')?.body).toBe('body { color: rebeccapurple; }\n');
  });

  it('can replace the layout', () => {
    const dir = templatesDir({ 'layout.eta': '<!doctype html><html lang="de"><body><main><%~ it.body %></main></body></html>' });
    const html = createPageRenderer({ issuer: ISSUER, ui: ui({ templatesDir: dir }) }).renderToString('logged-out', {});
    expect(html).toMatch(/^<!doctype html><html lang="de"><body><main>\n?<h1>You have signed out<\/h1>/);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['a syntax error', { 'login.eta': '<% if ( %>\n<h1>x</h1>' }, /login\.eta does not compile/],
    ['an unclosed tag', { 'consent.eta': '<h1><%= it.clientName </h1>' }, /consent\.eta does not compile/],
    ['a runtime error', { 'error.eta': '<h1><%= it.nothing.deeper %></h1>' }, /error\.eta fails to render/],
    ['a layout that is missing', { 'logged-out.eta': `<% layout('@nope') %><h1>x</h1>` }, /logged-out\.eta fails to render/],
    ['a form without the CSRF field', { 'login.eta': '<h1>Sign in</h1><form method="post" action="<%= it.action %>"></form>' }, /login\.eta has a form without the hidden csrf_token/],
    ['an unknown template name', { 'logn.eta': '<h1>typo</h1>' }, /logn\.eta replaces no template/],
  ])('fail at startup on %s', (_what, files, message) => {
    expect(() => createPageRenderer({ issuer: ISSUER, ui: ui({ templatesDir: templatesDir(files) }) })).toThrow(message);
  });

  it('fail at startup when the directory does not exist', () => {
    expect(() => createPageRenderer({ issuer: ISSUER, ui: ui({ templatesDir: join(root, 'missing') }) })).toThrow(/is not a directory/);
  });
});

describe('over HTTP', () => {
  let app: FastifyInstance;
  let base: string;
  let renderer: PageRenderer;

  beforeAll(async () => {
    renderer = createPageRenderer({ issuer: ISSUER, ui: ui() });
    app = createHttpApp({ logger: createLogger('silent'), bodyLimit: 65536, requestTimeout: 10_000, maxConnections: 100, trustedProxies: [] });
    registerAssets(app, renderer);
    app.get('/login', async (_request, reply) => renderer.render(reply, 'login', { action: '/login', csrfToken: 't' }));
    app.get('/denied', async (_request, reply) => renderer.render(reply, 'error', { title: 'No', message: 'no' }, { status: 403 }));
    app.get('/consent', async (_request, reply) =>
      renderer.render(
        reply,
        'consent',
        { action: '/consent', csrfToken: 't', clientName: 'C', clientUnverified: false, scopes: [], resources: [], userName: 'u' },
        { formAction: ['https://client.example.com:8443/cb?x=1', 'http://127.0.0.1:9999/cb', 'com.example.app:/cb', 'https://client.example.com:8443/other'] },
      ),
    );
    app.get('/form-post', async (_request, reply) =>
      renderer.render(reply, 'form-post', { action: 'https://client.example.com/cb', fields: { code: 'c', state: 's' } }),
    );
    app.get('/bad-form-action', async (_request, reply) =>
      renderer.render(reply, 'error', { title: 'x', message: 'y' }, { formAction: ['javascript:alert(1)'] }),
    );
    app.get('/semicolon', async (_request, reply) =>
      renderer.render(reply, 'error', { title: 'x', message: 'y' }, { formAction: ['https://a%3Bscript-src%20*.example/'] }),
    );
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    base = address;
  });
  afterAll(async () => app.close());

  it('pages carry exactly the required headers', async () => {
    const res = await fetch(`${base}/login`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; script-src 'self'",
    );
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await res.text()).toMatch(/^<!doctype html>/);
  });

  it('honours the status option', async () => {
    const res = await fetch(`${base}/denied`);
    expect(res.status).toBe(403);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('formAction adds exact origins (and private-use schemes) to form-action, once each', async () => {
    const res = await fetch(`${base}/consent`);
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self' https://client.example.com:8443 http://127.0.0.1:9999 com.example.app:; frame-ancestors 'none'; base-uri 'none'; script-src 'self'",
    );
  });

  it('form-post allows its own target origin and loads the auto-submit script from self', async () => {
    const res = await fetch(`${base}/form-post`);
    expect(res.headers.get('content-security-policy')).toContain("form-action 'self' https://client.example.com;");
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    const script = /<script src="([^"]+)" defer><\/script>/.exec(html)?.[1] ?? '';
    expect(script).toMatch(/^\/assets\/form-post\.js\?v=[A-Za-z0-9_-]{12}$/);
    const js = await fetch(`${base}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toContain("document.querySelector('form[data-auto-submit]')");
  });

  it('refuses unusable formAction values (a bug in the caller: 500, no page)', async () => {
    const bad = await fetch(`${base}/bad-form-action`);
    expect(bad.status).toBe(500);
    expect(bad.headers.get('content-security-policy')).toBeNull();
    expect((await fetch(`${base}/semicolon`)).status).toBe(500);
  });

  it('serves the assets with cache headers; the page links them by content-hashed URL', async () => {
    const html = await (await fetch(`${base}/login`)).text();
    const links = [...html.matchAll(/<link rel="stylesheet" href="([^"]+)">/g)].map((m) => m[1] ?? '');
    expect(links).toHaveLength(2);
    for (const link of links) {
      const res = await fetch(`${base}${link}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/css; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('public, max-age=86400');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const brand = await (await fetch(`${base}/assets/brand.css`)).text();
    expect(brand).toContain('--gh-primary: #1f5fbf;');
    const css = await (await fetch(`${base}/assets/gatehouse.css`)).text();
    expect(css).toContain(':focus-visible');
    expect((await fetch(`${base}/assets/gatehouse.css`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${base}/assets/gatehouse.css`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('issuer with a path', () => {
  it('links and serves assets under the issuer path', async () => {
    const renderer = createPageRenderer({ issuer: 'https://id.example.com/tenant', ui: ui() });
    expect(renderer.assets.map((a) => a.path)).toEqual(['/tenant/assets/gatehouse.css', '/tenant/assets/brand.css', '/tenant/assets/form-post.js', '/tenant/assets/favicon.svg']);
    const html = renderer.renderToString('login', { action: '/tenant/login', csrfToken: 't' });
    expect(html).toMatch(/href="\/tenant\/assets\/gatehouse\.css\?v=/);
    expect(() => renderer.renderToString('login', { action: 'http://127.0.0.1:4000/login', csrfToken: 't' })).toThrow(/action/);
    expect(renderer.renderToString('login', { action: 'https://id.example.com/tenant/login', csrfToken: 't' })).toContain('action="https://id.example.com/tenant/login"');
  });
});
