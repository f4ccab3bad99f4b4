import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, outcome, pkcePair } from '../helpers/browser-agent.js';
import { startGatehouseCluster, stopAllGatehouseProcesses, type GatehouseCluster, type GatehouseInstance } from '../helpers/cluster.js';
import { TEST_DATABASE_URL } from '../helpers/postgres.js';
import { basicAuth } from '../helpers/server.js';

/**
 * Crash safety: three instances on one PostgreSQL database under a steady load of code
 * redemptions and refreshes, while instances are killed with SIGKILL at random moments and
 * started again on the same port. A request that got no answer (connection refused or reset)
 * proves nothing either way and is not counted as answered; every answer that was given must
 * hold afterwards:
 *
 * - every access token answered with 200 introspects active (and verifies, when a JWT), unless
 *   its lineage was deliberately replayed (below), which revokes it by design;
 * - no code and no refresh token was honoured twice: some are deliberately presented at all three
 *   instances at once, and each got at most one 200 over all its attempts;
 * - a code or refresh token presented once, whose answer arrived, was answered 200, and the last
 *   refresh token of every lineage still works afterwards (what was answered was committed).
 */

const JWT_API = 'https://jwt-api.example.com';
const OPAQUE_API = 'https://opaque-api.example.com';
const REDIRECT_URI = 'https://client.example.com/cb';
const PASSWORD = 'correct horse battery staple';
const WORKERS = 10;
const KILLS = 5;
/** Load keeps running this long after the last restart, so every restarted instance serves. */
const TAIL_MS = 1500;
/** A request that takes longer than this is a hang, and fails the test. */
const REQUEST_TIMEOUT_MS = 10_000;

type Api = 'jwt' | 'opaque';
const SCOPES: Record<Api, string> = { jwt: 'offline_access jwt:read', opaque: 'offline_access opaque:read' };

interface TokenBody {
  access_token?: string;
  refresh_token?: string;
  error?: string;
}

/** One presentation of a code or refresh token at the token endpoint. */
interface Attempt {
  kind: 'code' | 'refresh';
  /** The code or refresh token presented. */
  credential: string;
  /**
   * `single`: presented once, in a lineage never replayed; `doomed`: presented once, but its
   * lineage's refresh token is replayed next (which revokes the lineage by design); `replayed`:
   * presented at all three instances at once.
   */
  population: 'single' | 'doomed' | 'replayed';
  api: Api;
  instance: number;
  /** The instance's run (its start count) when the request was sent. */
  run: number;
  /** The status, or `no-answer` (connection refused, reset, or closed before an answer). */
  status: number | 'no-answer';
  error?: string;
  accessToken?: string;
  refreshToken?: string;
}

/** mulberry32: a seeded PRNG, so a failing run's choices can be replayed (timing still varies). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.skipIf(TEST_DATABASE_URL === undefined)('crash safety: kill -9 under load', { timeout: 120_000 }, () => {
  let cluster: GatehouseCluster;
  let appId: string;
  /** Introspection credentials of each API's own client. */
  const apiAuth: Partial<Record<Api, string>> = {};
  let cookies: Map<string, string>;

  beforeAll(async () => {
    cluster = await startGatehouseCluster({ size: 3 });
    // With the CLI against the shared database, independent commands side by side.
    const apis = [['jwt', JWT_API, 'jwt'], ['opaque', OPAQUE_API, 'opaque']] as const;
    const [app] = await Promise.all([
      cluster.cliJson<{ client_id: string }>([
        'clients', 'create', '--name', 'app', '--auth-method', 'none', '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
        '--redirect-uri', REDIRECT_URI, '--scope', 'offline_access jwt:read opaque:read',
      ]),
      cluster.cliJson(['users', 'create', '--username', 'carol'], `${PASSWORD}\n`),
      ...apis.map(async ([api, identifier, format]) => {
        const rs = await cluster.cliJson<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', `${api} api`]);
        apiAuth[api] = basicAuth(rs.client_id, rs.client_secret);
        await cluster.cliJson(['resources', 'create', '--identifier', identifier, '--name', api, '--scope', `${api}:read`, '--format', format, '--client', rs.client_id]);
      }),
    ]);
    appId = app.client_id;
    // Sign in once and consent to each API once; from then on /authorize answers with a code at once.
    const browser = new BrowserAgent(cluster.instances[0]?.url ?? '');
    for (const api of ['jwt', 'opaque'] as const) {
      const { challenge } = await pkcePair();
      const out = await browser.authorize(authorizeParams(api, challenge), { credentials: { username: 'carol', password: PASSWORD } });
      expect(out.code).toBeDefined();
    }
    cookies = browser.cookies;
  });

  afterAll(async () => {
    try {
      await cluster?.close();
    } finally {
      stopAllGatehouseProcesses();
    }
  });

  function authorizeParams(api: Api, challenge: string): Record<string, string> {
    return { response_type: 'code', client_id: appId, redirect_uri: REDIRECT_URI, scope: SCOPES[api], state: 's', code_challenge: challenge, code_challenge_method: 'S256' };
  }

  it(`${KILLS} SIGKILLs under mixed code redemptions and refreshes: every answer given holds afterwards`, async () => {
    const seed = Number(process.env.GATEHOUSE_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const instances = cluster.instances;
    const attempts: Attempt[] = [];
    /** Authorization requests that got an answer other than the redirect with a code. */
    const badAuthorizations: string[] = [];
    const noAnswerReasons = new Map<string, number>();
    let stop = false;

    const noAnswer = (err: unknown): 'no-answer' => {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = (err as Error).name === 'TimeoutError' ? 'timeout' : (cause?.code ?? cause?.message ?? (err as Error).message);
      noAnswerReasons.set(reason, (noAnswerReasons.get(reason) ?? 0) + 1);
      return 'no-answer';
    };

    async function present(kind: Attempt['kind'], credential: string, form: Record<string, string>, index: number, population: Attempt['population'], api: Api): Promise<Attempt> {
      const instance = instances[index] as GatehouseInstance;
      const attempt: Attempt = { kind, credential, population, api, instance: index, run: instance.starts, status: 'no-answer' };
      try {
        const response = await fetch(`${instance.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ client_id: appId, ...form }).toString(),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        // The status line alone is not an answer: only a complete body counts.
        const text = await response.text();
        attempt.status = response.status;
        const body = JSON.parse(text) as TokenBody;
        if (body.error !== undefined) attempt.error = body.error;
        if (body.access_token !== undefined) attempt.accessToken = body.access_token;
        if (body.refresh_token !== undefined) attempt.refreshToken = body.refresh_token;
      } catch (err) {
        if (attempt.status === 'no-answer') noAnswer(err);
        else attempt.error = `unparsable body: ${String(err)}`;
      }
      attempts.push(attempt);
      return attempt;
    }

    /** A fresh code, from whichever instance answers first (trying each at most once). */
    async function mintCode(api: Api): Promise<{ code: string; verifier: string; from: number } | undefined> {
      const { verifier, challenge } = await pkcePair();
      const first = Math.floor(random() * instances.length);
      for (let k = 0; k < instances.length; k++) {
        const index = (first + k) % instances.length;
        const agent = new BrowserAgent((instances[index] as GatehouseInstance).url);
        for (const [name, value] of cookies) agent.cookies.set(name, value);
        let response;
        try {
          response = await agent.get(`/authorize?${new URLSearchParams(authorizeParams(api, challenge)).toString()}`);
        } catch (err) {
          noAnswer(err);
          continue;
        }
        const out = outcome(response);
        if (out.code !== undefined) return { code: out.code, verifier, from: index };
        badAuthorizations.push(`${response.status} ${out.error ?? response.text.slice(0, 200)}`);
        return undefined;
      }
      return undefined;
    }

    const redeem = (code: { code: string; verifier: string }, index: number, population: Attempt['population'], api: Api) =>
      present('code', code.code, { grant_type: 'authorization_code', code: code.code, redirect_uri: REDIRECT_URI, code_verifier: code.verifier }, index, population, api);
    const refresh = (token: string, index: number, population: Attempt['population'], api: Api) =>
      present('refresh', token, { grant_type: 'refresh_token', refresh_token: token }, index, population, api);
    const elsewhere = (index: number) => (index + 1 + Math.floor(random() * (instances.length - 1))) % instances.length;

    interface Lineage {
      api: Api;
      refreshToken: string;
      steps: number;
    }
    /** Lineages presented once each step whose last answer was a 200: their refresh token must still work. */
    const liveLineages = new Set<Lineage>();

    /** A lineage: its code issued by one instance, redeemed once at another. */
    async function startLineage(population: Attempt['population']): Promise<Lineage | undefined> {
      const api = pick(['jwt', 'opaque'] as const);
      const code = await mintCode(api);
      if (code === undefined) return undefined;
      const answer = await redeem(code, elsewhere(code.from), population, api);
      if (answer.status !== 200 || answer.refreshToken === undefined) return undefined;
      return { api, refreshToken: answer.refreshToken, steps: 0 };
    }

    async function worker(): Promise<void> {
      let lineage: Lineage | undefined;
      while (!stop) {
        const r = random();
        if (r < 0.2) {
          // One code at all three instances at once.
          const api = pick(['jwt', 'opaque'] as const);
          const code = await mintCode(api);
          if (code !== undefined) await Promise.all(instances.map((_, index) => redeem(code, index, 'replayed', api)));
        } else if (r < 0.3) {
          // One refresh token at all three instances at once (its lineage ends by design).
          const replayed = await startLineage('doomed');
          if (replayed !== undefined) await Promise.all(instances.map((_, index) => refresh(replayed.refreshToken, index, 'replayed', replayed.api)));
        } else if (lineage === undefined || lineage.steps >= 8) {
          if (lineage !== undefined) liveLineages.add(lineage);
          lineage = await startLineage('single');
        } else {
          const answer = await refresh(lineage.refreshToken, Math.floor(random() * instances.length), 'single', lineage.api);
          if (answer.status === 200 && answer.refreshToken !== undefined) {
            lineage.refreshToken = answer.refreshToken;
            lineage.steps += 1;
          } else {
            // No answer: whether the rotation was committed is unknown, so this refresh token is
            // never presented again (a second presentation would be a replay and end the lineage).
            lineage = undefined;
          }
        }
      }
      if (lineage !== undefined) liveLineages.add(lineage);
    }

    // Every instance killed at least once, the others at random; each kill after a random pause.
    const order = [0, 1, 2].sort(() => random() - 0.5);
    while (order.length < KILLS) order.push(Math.floor(random() * instances.length));
    const kills: Array<{ instance: number; atMs: number; restartMs: number }> = [];
    const started = Date.now();
    const killer = (async () => {
      for (const index of order) {
        await new Promise((r) => setTimeout(r, 500 + random() * 1000));
        const instance = instances[index] as GatehouseInstance;
        const atMs = Date.now() - started;
        const exit = await instance.kill('SIGKILL');
        expect(exit.signal).toBe('SIGKILL');
        const before = Date.now();
        await instance.start();
        kills.push({ instance: index, atMs, restartMs: Date.now() - before });
      }
      await new Promise((r) => setTimeout(r, TAIL_MS));
    })();
    const workers = Array.from({ length: WORKERS }, () => worker());
    try {
      await killer;
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const loadMs = Date.now() - started;

    // Every instance is up again, each in a new run.
    for (const instance of instances) expect(instance.running).toBe(true);

    const answered = attempts.filter((a) => a.status !== 'no-answer');
    const ok = answered.filter((a) => a.status === 200);
    const summary = {
      seed,
      loadMs,
      kills,
      attempts: attempts.length,
      answered: answered.length,
      ok: { code: ok.filter((a) => a.kind === 'code').length, refresh: ok.filter((a) => a.kind === 'refresh').length },
      noAnswer: Object.fromEntries(noAnswerReasons),
      liveLineages: liveLineages.size,
    };
    console.log(`crash safety: ${JSON.stringify(summary)}`);

    // The load really ran through the kills.
    expect(kills).toHaveLength(KILLS);
    expect(new Set(kills.map((k) => k.instance)).size).toBe(3);
    expect(summary.ok.code).toBeGreaterThanOrEqual(50);
    expect(summary.ok.refresh).toBeGreaterThanOrEqual(50);
    expect(attempts.some((a) => a.status === 'no-answer')).toBe(true);
    // Each instance answered in its last run, on the port it had before.
    for (const [index, instance] of instances.entries()) {
      expect(instance.starts).toBeGreaterThanOrEqual(2);
      expect(ok.some((a) => a.instance === index && a.run === instance.starts), `${instance.name} answered after its restart`).toBe(true);
    }
    // No request hung, every authorization request answered was a redirect with a code.
    expect(noAnswerReasons.get('timeout') ?? 0).toBe(0);
    expect(badAuthorizations).toEqual([]);

    // Every answer was a 200 or the refusal of a replay: no 5xx, nothing else.
    // (A code or refresh token presented once, whose answer arrived, was answered 200.)
    const unexpected = answered.filter((a) => a.status !== 200 && !(a.population === 'replayed' && a.status === 400 && a.error === 'invalid_grant'));
    expect(unexpected.map((a) => `${a.kind} ${a.population} at ${a.instance}: ${String(a.status)} ${a.error ?? ''}`)).toEqual([]);

    // No code and no refresh token was honoured twice.
    const honoured = new Map<string, number>();
    for (const a of ok) honoured.set(a.credential, (honoured.get(a.credential) ?? 0) + 1);
    expect([...honoured.values()].filter((n) => n > 1)).toEqual([]);
    // Presented at all three at once and all three answered: exactly one 200 for a code.
    const byCredential = new Map<string, Attempt[]>();
    for (const a of attempts.filter((x) => x.population === 'replayed')) byCredential.set(a.credential, [...(byCredential.get(a.credential) ?? []), a]);
    const raced = [...byCredential.values()].filter((list) => list.length === 3);
    expect(raced.length).toBeGreaterThanOrEqual(10);
    for (const list of raced.filter((l) => l[0]?.kind === 'code' && l.every((a) => a.status !== 'no-answer'))) {
      expect(list.filter((a) => a.status === 200)).toHaveLength(1);
    }

    // Every access token answered to a once-presented code or refresh token is still good: active
    // at introspection (asked of an instance at random, by the API's own client), and a JWT verifies.
    const jwks = createLocalJWKSet((await (await fetch(`${instances[0]?.url}/jwks`)).json()) as Parameters<typeof createLocalJWKSet>[0]);
    const issued = ok.filter((a) => a.population === 'single');
    const inactive: string[] = [];
    for (let i = 0; i < issued.length; i += 25) {
      await Promise.all(
        issued.slice(i, i + 25).map(async (a) => {
          const token = a.accessToken ?? '';
          const response = await fetch(`${pick(instances).url}/introspect`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: apiAuth[a.api] ?? '' },
            body: new URLSearchParams({ token }).toString(),
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          const body = (await response.json()) as { active?: boolean; client_id?: string };
          if (response.status !== 200 || body.active !== true || body.client_id !== appId) inactive.push(`${a.kind} at ${a.instance}: ${response.status} ${JSON.stringify(body)}`);
          if (a.api === 'jwt') await jwtVerify(token, jwks, { issuer: cluster.issuer, audience: JWT_API, typ: 'at+jwt' });
        }),
      );
    }
    expect(issued.length).toBeGreaterThanOrEqual(100);
    expect(inactive).toEqual([]);

    // The last refresh token answered to each lineage was committed: it works, once.
    const finals = await Promise.all([...liveLineages].map((l, i) => refresh(l.refreshToken, i % instances.length, 'single', l.api)));
    expect(finals.length).toBeGreaterThanOrEqual(WORKERS / 2);
    expect(finals.filter((a) => a.status !== 200).map((a) => `${String(a.status)} ${a.error ?? ''}`)).toEqual([]);
  });
});
