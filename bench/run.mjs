// `npm run bench`: Gatehouse vs node-oidc-provider under the same load. Servers run pinned to
// CPU 0, the load generator (bench/load.mjs) to CPU 1.
//
// Options:
//   --db=sqlite|postgres|both   Gatehouse's storage (default: both when PostgreSQL answers at
//                               BENCH_POSTGRES_URL, else sqlite). Each PostgreSQL run gets a schema
//                               of its own (bench_<pid>_<n>), dropped at the end.
//   --only=gatehouse|oidc-provider|reference
//                               reference: bench/lean-server.mjs, the leanest correct client_credentials
//                               endpoint (node:http, ES256, one client in memory), the yardstick for
//                               "Gatehouse issues at least 80% of its rate"; measured on token-jwt.
//   --workloads=token-jwt,introspect-jwt,token-opaque,introspect-opaque,refresh,code
//   --scale[=10,10000,1000000]  instead of the comparison: client_credentials JWT rate with that many
//                               registered clients, one hot client and one picked at random per
//                               request among up to 100,000 of them (Gatehouse only).
//   --wait-quiet                first wait (up to 15 min) until the 1-minute load average is <= 0.5.
// Environment: BENCH_DURATION=<seconds> (default 10), BENCH_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/test), BENCH_CODE_RATE (codes pre-minted per second of run,
// default 2000), BENCH_CPU_PROF=<dir> (write a V8 CPU profile of every Gatehouse server there),
// BENCH_GATEHOUSE_NODE_ARGS (more node flags for Gatehouse, e.g. --trace-gc; its stdout is kept
// in the temporary directory only while the run lasts).
/* global AbortSignal */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Buffer } from 'node:buffer';
import { basicAuth, form, insertClients, mintAuthorizationCodes, openServerStorage } from './seed.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const GATEHOUSE_CLI = join(ROOT, 'packages/server/bin/gatehouse.js');
// Gatehouse runs as `npm start` runs it: with the node flags of package.json's start script.
const START_SCRIPT = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start;
const START_FLAGS = /\bnode((?: --[\w-]+(?:=\S+)?)*) packages\/server\/bin\/gatehouse\.js start\b/.exec(START_SCRIPT)?.[1]?.trim().split(' ').filter(Boolean);
if (START_FLAGS === undefined) throw new Error(`cannot find how package.json's start script runs the server: ${START_SCRIPT}`);
const RESOURCE = 'https://api.bench.example';
const SCOPE = 'bench:read';
const OPAQUE_RESOURCE = 'https://opaque.bench.example';
const OPAQUE_SCOPE = 'opaque:read';
const REDIRECT_URI = 'https://app.bench.example/callback';
const CODE_SCOPE = ['openid', 'offline_access', SCOPE];
// Both servers sign ID tokens with their default algorithm (Gatehouse: tokens.idTokenSigningAlg).
const ID_TOKEN_ALG = 'RS256';
const CONNECTIONS = 10;
const WARMUP = 2;
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CODE_RATE = Number(process.env.BENCH_CODE_RATE ?? 2000);
const PG_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const RANDOM_SUBSET = 100_000;
const EXPECT_TOKEN = '"access_token"';
const EXPECT_ACTIVE = '"active"\\s*:\\s*true';
const WORKLOADS = ['token-jwt', 'introspect-jwt', 'token-opaque', 'introspect-opaque', 'refresh', 'code'];

const option = (name) => {
  const arg = process.argv.slice(2).find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  return arg === undefined ? undefined : (arg.split('=')[1] ?? '');
};
const ONLY = option('only');
const DB_OPTION = option('db');
const ONLY_WORKLOADS = option('workloads')?.split(',').filter(Boolean);
const SCALE = option('scale');
const SCALE_SIZES = SCALE === undefined ? [] : (SCALE || '10,10000,1000000').split(',').map(Number);

if (!(DURATION > 0)) throw new Error(`BENCH_DURATION must be a positive number of seconds, got ${process.env.BENCH_DURATION}`);
if (!(CODE_RATE > 0)) throw new Error(`BENCH_CODE_RATE must be a positive number, got ${process.env.BENCH_CODE_RATE}`);
if (ONLY && !['gatehouse', 'oidc-provider', 'reference'].includes(ONLY)) throw new Error(`--only must be gatehouse, oidc-provider or reference, got ${ONLY}`);
if (DB_OPTION && !['sqlite', 'postgres', 'both'].includes(DB_OPTION)) throw new Error(`--db must be sqlite, postgres or both, got ${DB_OPTION}`);
for (const w of ONLY_WORKLOADS ?? []) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}; one of ${WORKLOADS.join(', ')}`);
if (SCALE_SIZES.some((n) => !(Number.isInteger(n) && n >= 1))) throw new Error(`--scale takes client counts, got ${SCALE}`);
const wanted = (workload) => !ONLY_WORKLOADS || ONLY_WORKLOADS.includes(workload);
const runs = (server) => !ONLY || ONLY === server;

const TASKSET = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'taskset')).find((p) => existsSync(p));
const execFileP = promisify(execFile);
const children = new Set();
const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));

// ---------- process helpers ----------

/** [command, args] running `args` pinned to `cpu` when taskset exists (taskset execs, so the pid is node's). */
const pinned = (cpu, args) => (TASKSET ? [TASKSET, ['-c', String(cpu), ...args]] : [args[0], args.slice(1)]);

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  if (await Promise.race([exited.then(() => true), sleep(5000, false)])) return;
  child.kill('SIGKILL');
  await exited;
}

// ---------- PostgreSQL schemas ----------

let pg;
const schemas = new Set();
let pgAdmin;

async function postgresReachable() {
  pg ??= (await import('pg')).default;
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function admin() {
  if (!pgAdmin) {
    pgAdmin = new pg.Client({ connectionString: PG_URL });
    await pgAdmin.connect();
  }
  return pgAdmin;
}

/** A fresh schema and a DATABASE_URL whose search_path is it; connections named for this run. */
async function createSchema() {
  const schema = `bench_${process.pid}_${schemas.size + 1}`;
  await (await admin()).query(`create schema ${schema}`);
  schemas.add(schema);
  const url = new URL(PG_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  url.searchParams.set('application_name', applicationName());
  return { schema, url: url.toString() };
}

const applicationName = () => `gatehouse-bench-${process.pid}`;

async function dropSchema(schema) {
  await (await admin()).query(`drop schema if exists ${schema} cascade`);
  schemas.delete(schema);
}

/** PostgreSQL processes doing this run's work: its server's connections and the WAL/checkpoint writers. */
async function postgresPids() {
  const { rows } = await (await admin()).query(
    `select pid from pg_stat_activity
      where (application_name = $1 and pid <> pg_backend_pid())
         or backend_type in ('walwriter', 'checkpointer', 'background writer', 'autovacuum worker')`,
    [applicationName()],
  );
  return new Set(rows.map((r) => r.pid));
}

// Once: a signal's cleanup and the main flow's `finally` may both ask for it.
let cleaning;
const cleanup = () => (cleaning ??= doCleanup());

async function doCleanup() {
  await Promise.all([...children].map(stop));
  for (const schema of [...schemas]) await dropSchema(schema).catch((err) => console.error(`could not drop schema ${schema}: ${err.message}`));
  await pgAdmin?.end().catch(() => undefined);
  pgAdmin = undefined;
  rmSync(tmp, { recursive: true, force: true });
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
  if (schemas.size) console.error(`left behind PostgreSQL schemas: ${[...schemas].join(', ')}`);
});
// `on`, not `once`: Ctrl-C under npm delivers SIGINT twice (terminal + npm forwarding it), and a
// second default-handled SIGINT would kill us before the children are stopped.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping child processes`);
    cleanup().finally(() => process.exit(130));
  });
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Spawn a server pinned to CPU 0 with stdout/stderr in files; return the child once `readyUrl` answers 200. */
const READY_TIMEOUT = 60_000;

async function startServer(name, args, { cwd = ROOT, env = process.env, readyUrl }) {
  const out = openSync(join(tmp, `${name}.stdout.log`), 'w');
  const err = openSync(join(tmp, `${name}.stderr.log`), 'w');
  const [cmd, cmdArgs] = pinned(0, args);
  const child = track(spawn(cmd, cmdArgs, { cwd, env, stdio: ['ignore', out, err] }));
  closeSync(out);
  closeSync(err);
  const deadline = Date.now() + READY_TIMEOUT;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const status = await fetch(readyUrl, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
    if (status === 200) {
      assertIsNode(child.pid);
      return child;
    }
    await sleep(100);
  }
  const why = child.exitCode !== null ? `exited with code ${child.exitCode}` : `was not ready within ${READY_TIMEOUT / 1000} s`;
  await stop(child);
  throw new Error(`${name} ${why} (waiting for 200 from ${readyUrl})\n${tail(name)}`);
}

function tail(name) {
  return ['stdout', 'stderr'].map((s) => {
    const file = join(tmp, `${name}.${s}.log`);
    const lines = existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-15).join('\n') : '';
    return `--- ${name} ${s} (tail) ---\n${lines}`;
  }).join('\n');
}

// ---------- memory ----------

function assertIsNode(pid) {
  const exe = readlinkSync(`/proc/${pid}/exe`);
  if (exe !== realpathSync(process.execPath)) throw new Error(`pid ${pid} runs ${exe}, not node: RSS would be wrong`);
}

let peakScope = 'workload';
/** Reset VmHWM to the current RSS (Linux clear_refs "5") so each workload gets its own peak. */
function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    peakScope = 'process lifetime (clear_refs not writable)';
  }
}

function memoryMiB(pid, field) {
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return Math.round(kb / 1024 * 10) / 10;
}

// ---------- CPU accounting (in clock ticks) ----------

const PF_KTHREAD = 0x00200000;

/** CPU ticks of every user-space process, by pid. */
function processTicks() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[6] = flags, [11], [12] = utime, stime
    if (Number(fields[6]) & PF_KTHREAD) continue;
    out.set(Number(name), Number(fields[11]) + Number(fields[12]));
  }
  return out;
}

/** Busy/total ticks of CPU 0 and the ticks of every process. */
function cpuSample() {
  const cpu0 = /^cpu0 (.+)$/m.exec(readFileSync('/proc/stat', 'utf8'))[1].trim().split(/\s+/).slice(0, 8).map(Number);
  const total = cpu0.reduce((a, b) => a + b, 0);
  return { total, busy: total - cpu0[3] - cpu0[4], procs: processTicks() };
}

/**
 * In % of one CPU over the measured phase: the server; the database's processes (PostgreSQL: this
 * run's connections and its WAL/checkpoint writers, on whichever CPU the kernel put them); what
 * else ran on CPU 0; and every other process on the machine (other people's work: noise).
 */
function cpuUsage(before, after, { serverPid, loadPid, dbPids }) {
  const total = after.total - before.total || 1;
  const pct = (ticks) => Math.round((100 * ticks) / total);
  const used = (pid) => (after.procs.get(pid) ?? 0) - (before.procs.get(pid) ?? 0);
  const server = used(serverPid);
  let db = 0;
  let others = 0;
  for (const pid of after.procs.keys()) {
    if (pid === serverPid || pid === loadPid || pid === process.pid) continue;
    if (dbPids.has(pid)) db += used(pid);
    else others += used(pid);
  }
  return {
    serverCpuPercent: pct(server),
    dbCpuPercent: dbPids.size ? pct(db) : null,
    cpu0OtherPercent: Math.max(0, pct(after.busy - before.busy - server)),
    othersCpuPercent: pct(others),
  };
}

// ---------- HTTP ----------


function request(base, path, authorization, body) {
  return { url: `${base}${path}`, headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body };
}

async function post({ url, headers, body }) {
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${url} -> ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function issueToken(tokenRequest) {
  const { access_token: token } = await post(tokenRequest);
  if (typeof token !== 'string') throw new Error(`no access_token from ${tokenRequest.url}`);
  const parts = token.split('.');
  if (parts.length !== 3) return { token, format: 'opaque' };
  const { typ, alg } = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  return { token, format: `jwt (typ ${typ}, alg ${alg})` };
}

/** The access token format of `issued` (see issueToken), or an error naming both. */
function expectFormat(issued, expected) {
  if (issued.format !== expected) throw new Error(`expected a ${expected} access token, got ${issued.format}`);
}
const jwtFormat = (alg) => `jwt (typ at+jwt, alg ${alg})`;

/** Measures introspection of one freshly issued token (checked active first). */
async function measureIntrospection(ctx, workload, base, auth, tokenRequest) {
  const { token } = await issueToken(tokenRequest);
  const introspectRequest = request(base, '/introspect', auth, form({ token }));
  await assertActive(introspectRequest);
  await measure({ ...ctx, workload }, { ...introspectRequest, expect: EXPECT_ACTIVE });
}

async function assertActive(introspectRequest) {
  const body = await post(introspectRequest);
  if (body.active !== true) throw new Error(`introspection says inactive: ${JSON.stringify(body)}`);
}

// ---------- load ----------

/** Runs bench/load.mjs on CPU 1; `onMeasure` is called when its measured phase starts. */
async function runLoad(load, onMeasure) {
  const specFile = writeInput('load', { ...load, connections: CONNECTIONS, warmup: WARMUP, duration: DURATION });
  const [cmd, cmdArgs] = pinned(1, [process.execPath, join(ROOT, 'bench/load.mjs'), `@${specFile}`]);
  const child = track(spawn(cmd, cmdArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (out.includes('{"phase":"measure"}\n') && onMeasure) {
      onMeasure(child.pid);
      onMeasure = undefined;
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), (WARMUP + DURATION + 120) * 1000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  rmSync(specFile, { force: true });
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1));
}

const results = [];

async function measure({ server, db, workload, pid, dbPids = async () => new Set() }, load) {
  process.stdout.write(`  ${server}${db === 'memory' ? '' : ` [${db}]`} ${workload}: ${WARMUP}s warmup + ${DURATION}s ... `);
  resetPeak(pid);
  let before;
  let loadPid;
  const r = await runLoad(load, (childPid) => {
    loadPid = childPid;
    before = cpuSample();
  });
  const after = cpuSample();
  const cpu = TASKSET && before ? cpuUsage(before, after, { serverPid: pid, loadPid, dbPids: await dbPids() }) : {};
  // A non-2xx response also fails the body check, so only count mismatches beyond those.
  const failures = r.non2xx + r.errors + Math.max(0, r.mismatches - r.non2xx) + (r.brokenChains ?? 0);
  const result = { server, db, workload, ...r, ...cpu, peakRssMiB: memoryMiB(pid, 'VmHWM'), failures };
  results.push(result);
  const notes = [
    failures && `!!! ${failures} FAILED REQUESTS`,
    r.exhausted && '!!! RAN OUT OF PRE-MINTED CODES (raise BENCH_CODE_RATE)',
    r.loadCpuPercent >= 90 && `load generator at ${r.loadCpuPercent}% CPU: req/s is a lower bound`,
    noisy(result) && `NOISY: other processes used ${cpu.othersCpuPercent}% CPU (${cpu.cpu0OtherPercent}% of CPU 0 outside the server)`,
  ].filter(Boolean);
  const dbNote = cpu.dbCpuPercent != null ? `, PostgreSQL CPU ${cpu.dbCpuPercent}%` : '';
  console.log(`${Math.round(r.requestsPerSec)} req/s, p99 ${r.p99} ms, server CPU ${cpu.serverCpuPercent ?? '?'}%${dbNote}${notes.map((n) => `  (${n})`).join('')}`);
  return result;
}

/**
 * Other people's processes took a noticeable share. On SQLite nothing but the server should run
 * on CPU 0; on PostgreSQL the database shares the CPUs, so only processes outside this run count.
 */
const noisy = (r) => r.othersCpuPercent >= 5 || (r.dbCpuPercent == null && r.cpu0OtherPercent >= 5);

// ---------- Gatehouse ----------

/** The CLI's --json output; tolerate log lines around it by falling back to the last JSON line. */
function parseCliJson(stdout) {
  try {
    return JSON.parse(stdout);
  } catch {
    const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"client_id"'));
    if (!line) throw new Error(`no JSON in CLI output: ${stdout}`);
    return JSON.parse(line);
  }
}

/** Inherited settings that would change what is measured (another database, Redis, a config). */
function cleanEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('GATEHOUSE_') || name === 'DATABASE_URL' || name === 'REDIS_URL') delete env[name];
  return env;
}

/** A migrated Gatehouse database (SQLite in its own directory, or a fresh PostgreSQL schema) and its CLI. */
async function prepareGatehouse(db, label) {
  if (!existsSync(join(ROOT, 'packages/server/dist/cli/main.js'))) throw new Error('Gatehouse is not built: run `npm run build -w @gatehouse/server`');
  const dir = join(tmp, label);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const env = { ...cleanEnv(), GATEHOUSE_DATA_DIR: dir, GATEHOUSE_PORT: String(port), GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_METRICS_PORT: '0' };
  let schema;
  if (db === 'postgres') {
    const created = await createSchema();
    schema = created.schema;
    env.DATABASE_URL = created.url;
  }
  // Rate limits stay on (their counting is part of every request) with budgets no benchmark reaches:
  // one client from one address sends everything here.
  const unlimited = { perClient: 1e9, perAddress: 1e9 };
  writeFileSync(
    join(dir, 'gatehouse.config.json'),
    JSON.stringify({ rateLimits: { token: unlimited, introspection: unlimited, revocation: unlimited, deviceAuthorization: unlimited } }),
  );
  // cwd = dir so that no ./gatehouse.config.json from the checkout is picked up (the one above is).
  const cli = async (...args) => (await execFileP(process.execPath, [GATEHOUSE_CLI, ...args], { cwd: dir, env, timeout: 120_000 })).stdout;
  await cli('migrate');
  const storageOptions = { databaseUrl: env.DATABASE_URL, sqliteFile: join(dir, 'gatehouse.db') };
  const base = `http://127.0.0.1:${port}`;
  const dbPids = db === 'postgres' ? postgresPids : undefined;
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of each Gatehouse server process (written when it stops).
  // BENCH_GATEHOUSE_NODE_ARGS: more node flags for it (e.g. --trace-gc), space-separated.
  const profile = [
    ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`] : []),
    ...(process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  const start = () => startServer(`gatehouse-${label}`, [process.execPath, ...START_FLAGS, ...profile, GATEHOUSE_CLI, 'start'], { cwd: dir, env, readyUrl: `${base}/healthz` });
  const logLines = () => readFileSync(join(tmp, `gatehouse-${label}.stdout.log`), 'utf8').split('\n').length - 1;
  return { cli, base, schema, storageOptions, dbPids, start, logLines };
}

const codeCount = () => Math.ceil(CODE_RATE * (WARMUP + DURATION));
/** Codes to mint: one per virtual user for the refresh chains, and the code workload's. */
const codesNeeded = () => (wanted('refresh') ? CONNECTIONS : 0) + (wanted('code') ? codeCount() : 0);

/**
 * The refresh and code workloads' load specs, in that order, for a server at `base`: the first
 * CONNECTIONS codes start the refresh chains, the rest are redeemed.
 */
function delegatedLoads(prefix, base, authorization, codes) {
  const delegated = { authorization, redirectUri: REDIRECT_URI, resource: RESOURCE };
  const refreshCodes = codes.splice(0, CONNECTIONS);
  const load = (kind, value) => ({ workload: kind, load: { engine: 'chain', kind, url: `${base}/token`, input: writeInput(`${prefix}${kind}`, value) } });
  return [
    ...(wanted('refresh') ? [load('refresh', { ...delegated, codes: refreshCodes })] : []),
    ...(wanted('code') ? [load('code', { ...delegated, codes })] : []),
  ];
}

function writeInput(name, value) {
  const file = join(tmp, `${name}-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

async function benchGatehouse(db) {
  const gh = await prepareGatehouse(db, `compare-${db}`);
  const { cli, base } = gh;
  await cli('resources', 'create', '--identifier', RESOURCE, '--name', 'Bench', '--scope', SCOPE, '--json');
  // A second API whose tokens are opaque: stored (as SHA-256 digests) in the database on every issue.
  await cli('resources', 'create', '--identifier', OPAQUE_RESOURCE, '--name', 'Bench opaque', '--scope', OPAQUE_SCOPE, '--format', 'opaque', '--json');
  const created = await cli('clients', 'create', '--name', 'bench', '--scope', `${SCOPE} ${OPAQUE_SCOPE}`, '--json');
  const client = parseCliJson(created);
  if (!client.client_id || !client.client_secret) throw new Error(`unexpected \`clients create\` output: ${created}`);
  const auth = basicAuth(client.client_id, client.client_secret);

  // The code flow's client: a confidential web app allowed to refresh.
  const appCreated = await cli('clients', 'create', '--name', 'bench app', '--scope', CODE_SCOPE.join(' '), '--grant-type', 'authorization_code',
    '--grant-type', 'refresh_token', '--redirect-uri', REDIRECT_URI, '--auth-method', 'client_secret_basic', '--json');
  const app = parseCliJson(appCreated);
  const appAuth = basicAuth(app.client_id, app.client_secret);
  let delegated = [];
  if (wanted('refresh') || wanted('code')) {
    const storage = await openServerStorage(gh.storageOptions);
    try {
      const count = codesNeeded();
      const started = Date.now();
      const codes = await mintAuthorizationCodes(storage, { clientId: app.client_id, scope: CODE_SCOPE, resources: [RESOURCE], redirectUri: REDIRECT_URI, count });
      console.log(`Gatehouse [${db}]: ${count} authorization codes stored in ${((Date.now() - started) / 1000).toFixed(1)} s (before the server starts)`);
      delegated = delegatedLoads('', base, appAuth, codes);
    } finally {
      await storage.close();
    }
  }

  const server = await gh.start();
  const ctx = { server: 'gatehouse', db, pid: server.pid, dbPids: gh.dbPids };
  try {
    const tokenRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: SCOPE }));
    const { format } = await issueToken(tokenRequest);
    console.log(`Gatehouse [${db}] (pid ${server.pid}) on ${base}, access token format: ${format}, RSS at start ${memoryMiB(server.pid, 'VmRSS')} MiB`);
    if (wanted('token-jwt')) await measure({ ...ctx, workload: 'token-jwt' }, { ...tokenRequest, expect: EXPECT_TOKEN });
    if (wanted('introspect-jwt')) await measureIntrospection(ctx, 'introspect-jwt', base, auth, tokenRequest);

    const opaqueRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: OPAQUE_SCOPE }));
    if (wanted('token-opaque')) {
      expectFormat(await issueToken(opaqueRequest), 'opaque');
      await measure({ ...ctx, workload: 'token-opaque' }, { ...opaqueRequest, expect: EXPECT_TOKEN });
    }
    if (wanted('introspect-opaque')) await measureIntrospection(ctx, 'introspect-opaque', base, auth, opaqueRequest);
    for (const { workload, load } of delegated) await measure({ ...ctx, workload }, load);
  } finally {
    await stop(server);
    console.log(`  gatehouse [${db}] wrote ${gh.logLines()} log lines to stdout`);
    if (gh.schema) await dropSchema(gh.schema);
  }
}

// ---------- client-count scaling ----------

/** `k` distinct integers in [0, n), at random. */
function sample(n, k) {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const picked = new Set();
  while (picked.size < k) picked.add(Math.floor(Math.random() * n));
  return [...picked];
}

const scaling = [];

async function benchScaling(db) {
  const gh = await prepareGatehouse(db, `scale-${db}`);
  await gh.cli('resources', 'create', '--identifier', RESOURCE, '--name', 'Bench', '--scope', SCOPE, '--json');
  const seed = randomBytes(8).toString('hex');
  let inserted = 0;
  try {
    for (const size of [...SCALE_SIZES].sort((a, b) => a - b)) {
      const storage = await openServerStorage(gh.storageOptions);
      const started = Date.now();
      try {
        await insertClients(storage, {
          seed,
          from: inserted,
          to: size,
          scope: SCOPE,
          onProgress: (n) => process.stdout.write(`\r  [${db}] inserting clients: ${n.toLocaleString('en-US')} / ${size.toLocaleString('en-US')}`),
        });
        // What autovacuum would do after a bulk load; SQLite's planner needs no statistics here.
        if (gh.schema) await (await admin()).query(`analyze ${gh.schema}.clients, ${gh.schema}.client_secrets`);
      } finally {
        await storage.close();
      }
      const insertSeconds = (Date.now() - started) / 1000;
      console.log(`\r  [${db}] ${size.toLocaleString('en-US')} clients registered (${(size - inserted).toLocaleString('en-US')} inserted in ${insertSeconds.toFixed(1)} s)`);
      inserted = size;

      const server = await gh.start();
      const ctx = { server: 'gatehouse', db, pid: server.pid, dbPids: gh.dbPids };
      try {
        const chain = (indices) => ({ engine: 'chain', kind: 'clients', url: `${gh.base}/token`, input: writeInput('clients', { seed, indices, scope: SCOPE }) });
        const hot = await measure({ ...ctx, workload: `scale ${size} hot` }, chain([0]));
        const subset = Math.min(size, RANDOM_SUBSET);
        const usedBefore = await clientsWithUse(gh);
        const spread = await measure({ ...ctx, workload: `scale ${size} random ${subset}` }, chain(sample(size, subset)));
        // Gatehouse records each client's last use (one UPDATE per client per minute): how many
        // clients got their first use recorded during the random run, i.e. writes on the token path.
        spread.usageWrites = (await clientsWithUse(gh)) - usedBefore;
        console.log(`    clients whose last use was written during that run: ${spread.usageWrites.toLocaleString('en-US')} (of ${spread.total.toLocaleString('en-US')} measured requests, plus warmup)`);
        scaling.push({ db, clients: size, randomAmong: subset, insertSeconds, hot, random: spread });
      } finally {
        await stop(server);
      }
    }
  } finally {
    if (gh.schema) await dropSchema(gh.schema);
  }
}

/** Clients with a recorded last use, read through a connection of the bench's own. */
async function clientsWithUse(gh) {
  const storage = await openServerStorage(gh.storageOptions);
  try {
    const row = await storage.handle.db.selectFrom('clients').select((eb) => eb.fn.countAll().as('n')).where('last_used_at', 'is not', null).executeTakeFirstOrThrow();
    return Number(row.n);
  } finally {
    await storage.close();
  }
}

// ---------- oidc-provider ----------

/**
 * Starts a reference server (a script of bench/, given its JSON arguments plus a free `port`) with
 * a `bench` client of a fresh secret; returns it, its base URL and the client's Basic header.
 */
async function startReferenceServer(name, script, args, readyPath) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const clientId = 'bench';
  const clientSecret = randomBytes(32).toString('base64url');
  const server = await startServer(name, [process.execPath, join(ROOT, 'bench', script), JSON.stringify({ port, clientId, clientSecret, ...args })], {
    readyUrl: `${base}${readyPath}`,
  });
  return { server, base, auth: basicAuth(clientId, clientSecret) };
}

const OIDC_PROVIDER_READY = '/.well-known/openid-configuration';

async function benchOidcProvider(format) {
  const { server, base, auth } = await startReferenceServer(`oidc-provider-${format}`, 'oidc-provider-server.mjs', { format }, OIDC_PROVIDER_READY);
  const ctx = { server: 'oidc-provider', db: 'memory', pid: server.pid };
  try {
    const tokenRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: SCOPE, resource: RESOURCE }));
    const issued = await issueToken(tokenRequest);
    expectFormat(issued, format === 'opaque' ? 'opaque' : jwtFormat(format === 'jwt' ? 'ES256' : 'RS256'));
    console.log(`oidc-provider ${format} (pid ${server.pid}) on ${base}, access token format: ${issued.format}`);
    // jwt-default is measured under a workload name of its own: `token-jwt-default`.
    if (wanted(`token-${format === 'opaque' ? 'opaque' : 'jwt'}`)) await measure({ ...ctx, workload: `token-${format}` }, { ...tokenRequest, expect: EXPECT_TOKEN });
    // Fresh token: the in-memory adapter is an LRU of 1000 entries, so earlier ones are evicted by now.
    if (format === 'opaque' && wanted('introspect-opaque')) await measureIntrospection(ctx, 'introspect-opaque', base, auth, tokenRequest);
  } finally {
    await stop(server);
  }
}

/** oidc-provider's code flow: refresh and code redemption, on codes it minted before listening. */
async function benchOidcProviderCodeFlow() {
  const app = { clientId: 'bench-app', clientSecret: randomBytes(32).toString('base64url') };
  const codesFile = join(tmp, 'oidc-provider-codes.json');
  const codes = codesNeeded();
  const delegated = { ...app, redirectUri: REDIRECT_URI, codes, codesFile, idTokenAlg: ID_TOKEN_ALG };
  const { server, base } = await startReferenceServer('oidc-provider-jwt-delegated', 'oidc-provider-server.mjs', { format: 'jwt', delegated }, OIDC_PROVIDER_READY);
  try {
    const pairs = JSON.parse(readFileSync(codesFile, 'utf8'));
    console.log(`oidc-provider code flow (pid ${server.pid}) on ${base}: ${codes} authorization codes held in memory, RSS ${memoryMiB(server.pid, 'VmRSS')} MiB`);
    for (const { workload, load } of delegatedLoads('op-', base, basicAuth(app.clientId, app.clientSecret), pairs)) {
      await measure({ server: 'oidc-provider', db: 'memory', pid: server.pid, workload }, load);
    }
  } finally {
    await stop(server);
  }
}

// ---------- the lean reference endpoint ----------

async function benchReference() {
  const { server, base, auth } = await startReferenceServer('reference', 'lean-server.mjs', { scope: SCOPE, audience: RESOURCE }, '/healthz');
  try {
    const tokenRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: SCOPE }));
    const issued = await issueToken(tokenRequest);
    expectFormat(issued, jwtFormat('ES256'));
    console.log(`lean reference endpoint (pid ${server.pid}) on ${base}, access token format: ${issued.format}`);
    await measure({ server: 'reference', db: 'memory', workload: 'token-jwt', pid: server.pid }, { ...tokenRequest, expect: EXPECT_TOKEN });
  } finally {
    await stop(server);
  }
}

// ---------- report ----------

function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? /^Hardware\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  return { node: process.version, cpu, nproc: availableParallelism(), loadavg: loadavg().join(' '), taskset: TASKSET ?? null };
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3);

const rps = (server, db, workload) => results.find((r) => r.server === server && r.db === db && r.workload === workload)?.requestsPerSec;
const ratio = (a, b) => (a && b ? Math.round((a / b) * 100) / 100 : null);

function ratios(dbs) {
  const out = {};
  for (const db of dbs) {
    const gh = (w) => rps('gatehouse', db, w);
    const op = (w) => rps('oidc-provider', 'memory', w);
    Object.assign(out, {
      [`[${db}] token JWT / lean reference endpoint, both ES256 (team target >= 0.8)`]: ratio(gh('token-jwt'), rps('reference', 'memory', 'token-jwt')),
      [`[${db}] token JWT / oidc-provider token JWT, both ES256 (target >= 5)`]: ratio(gh('token-jwt'), op('token-jwt')),
      [`[${db}] token JWT / oidc-provider token JWT at its default algorithm, RS256 (each server at its default)`]: ratio(gh('token-jwt'), op('token-jwt-default')),
      [`[${db}] token JWT / oidc-provider token opaque in memory (target >= 2)`]: ratio(gh('token-jwt'), op('token-opaque')),
      [`[${db}] token opaque (stored) / oidc-provider token opaque (in memory)`]: ratio(gh('token-opaque'), op('token-opaque')),
      [`[${db}] introspect opaque / oidc-provider introspect opaque (target >= 2)`]: ratio(gh('introspect-opaque'), op('introspect-opaque')),
      [`[${db}] introspect JWT / oidc-provider introspect opaque (target >= 2)`]: ratio(gh('introspect-jwt'), op('introspect-opaque')),
      [`[${db}] refresh / oidc-provider refresh`]: ratio(gh('refresh'), op('refresh')),
      [`[${db}] code redemption / oidc-provider code redemption`]: ratio(gh('code'), op('code')),
    });
  }
  for (const [k, v] of Object.entries(out)) if (v === null) delete out[k];
  return out;
}

function printTable() {
  const header = ['db', 'workload', 'server', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS MiB', 'failed', 'server CPU %', 'PG CPU %', 'CPU0 other %', 'others %'];
  const rows = results.map((r) => [r.db, r.workload, r.server, r.requestsPerSec.toFixed(0), r.p50.toFixed(2), r.p99.toFixed(2),
    r.peakRssMiB.toFixed(1), String(r.failures), String(r.serverCpuPercent ?? '-'), String(r.dbCpuPercent ?? '-'), String(r.cpu0OtherPercent ?? '-'), String(r.othersCpuPercent ?? '-')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const row of rows) console.log(line(row));
  console.log(`(peak RSS = VmHWM of the server process incl. warmup, scope: ${peakScope}; CPU in % of one core; others = processes outside this run)\n`);
}

function printScaling() {
  if (!scaling.length) return;
  console.log('client-count scaling (client_credentials, JWT):');
  for (const s of scaling) {
    console.log(`  [${s.db}] ${s.clients.toLocaleString('en-US').padStart(9)} clients: hot ${Math.round(s.hot.requestsPerSec)} req/s (p99 ${s.hot.p99} ms, ${s.hot.peakRssMiB} MiB), `
      + `random among ${s.randomAmong.toLocaleString('en-US')}: ${Math.round(s.random.requestsPerSec)} req/s (p99 ${s.random.p99} ms, ${s.random.peakRssMiB} MiB)`);
  }
}

async function waitQuiet() {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const [one] = loadavg();
    if (Number(one) <= 0.5) return;
    if (Date.now() > deadline) {
      console.log(`load average still ${one} after 15 min; running anyway (see the others % column)`);
      return;
    }
    console.log(`load average ${one} > 0.5: waiting 30 s for other work to finish`);
    await sleep(30_000);
  }
}

async function main() {
  const command = [process.env.BENCH_DURATION && `BENCH_DURATION=${process.env.BENCH_DURATION}`, process.env.BENCH_CODE_RATE && `BENCH_CODE_RATE=${process.env.BENCH_CODE_RATE}`,
    process.execPath, ...process.argv.slice(1)].filter(Boolean).join(' ');
  if (option('wait-quiet') !== undefined) await waitQuiet();
  const machine = machineInfo();
  console.log(`command: ${command}${process.env.npm_lifecycle_script ? `  (via npm: ${process.env.npm_lifecycle_script})` : ''}`);
  console.log(`machine: node ${machine.node}, cpu "${machine.cpu}", nproc ${machine.nproc}, loadavg ${machine.loadavg}`);
  console.log(TASKSET
    ? 'pinning: servers on CPU 0, load generator on CPU 1 (PostgreSQL, when used, is not pinned)'
    : 'pinning: taskset not found on PATH, running UNPINNED');
  console.log(`gatehouse: node ${[...START_FLAGS, 'packages/server/bin/gatehouse.js'].join(' ')} start (as npm start runs it)`);
  console.log(`load: ${CONNECTIONS} connections, ${WARMUP}s warmup, ${DURATION}s measured per workload\n`);

  let dbs = [];
  if (runs('gatehouse')) {
    const reachable = DB_OPTION === 'sqlite' ? false : await postgresReachable();
    if (DB_OPTION === 'postgres' || DB_OPTION === 'both') {
      if (!reachable) throw new Error(`PostgreSQL does not answer at ${PG_URL} (set BENCH_POSTGRES_URL)`);
    } else if (!DB_OPTION && !reachable) {
      console.log(`PostgreSQL does not answer at ${PG_URL}: SQLite only`);
    }
    dbs = DB_OPTION === 'sqlite' || (!DB_OPTION && !reachable) ? ['sqlite'] : DB_OPTION === 'postgres' ? ['postgres'] : ['sqlite', 'postgres'];
  }

  if (SCALE_SIZES.length) {
    for (const db of dbs) await benchScaling(db);
  } else {
    for (const db of dbs) await benchGatehouse(db);
    if (runs('reference') && wanted('token-jwt')) await benchReference();
    if (runs('oidc-provider')) {
      if (wanted('token-jwt')) await benchOidcProvider('jwt');
      if (wanted('token-jwt')) await benchOidcProvider('jwt-default');
      if (wanted('token-opaque') || wanted('introspect-opaque')) await benchOidcProvider('opaque');
      if (wanted('refresh') || wanted('code')) await benchOidcProviderCodeFlow();
    }
  }

  printTable();
  printScaling();
  const ratioValues = ratios(dbs);
  for (const [name, value] of Object.entries(ratioValues)) console.log(`${name}: ${value}x`);

  const failed = results.filter((r) => r.failures > 0 || r.exhausted);
  for (const r of failed) {
    console.log(`\n!!! ${r.server} [${r.db}] ${r.workload}: ${r.non2xx} non-2xx, ${r.errors} errors (${r.timeouts} timeouts), ${r.mismatches} unexpected bodies`
      + `${r.brokenChains ? `, ${r.brokenChains} broken refresh chains` : ''}${r.exhausted ? ', ran out of codes' : ''}; status codes ${JSON.stringify(r.statusCodes)}`);
  }
  if (failed.length) console.log(`\n!!! RESULTS INVALID: ${failed.length} workload(s) had failed requests (see above)`);
  const noisyRuns = results.filter(noisy).map((r) => `${r.server} [${r.db}] ${r.workload}`);
  if (noisyRuns.length) console.log(`\n!!! NOISY: other processes competed for the CPUs during: ${noisyRuns.join(', ')}; re-run on an idle machine`);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const outFile = join(ROOT, `bench/results/${SCALE_SIZES.length ? 'scale' : 'latest'}.json`);
  const report = {
    date: new Date().toISOString(), command, machine, loadavgAtEnd: loadavg().join(' '), connections: CONNECTIONS, warmup: WARMUP, duration: DURATION, idTokenAlg: ID_TOKEN_ALG, gatehouseNodeFlags: START_FLAGS,
    peakScope, results, scaling, ratios: ratioValues,
  };
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults written to ${outFile}`);
  if (failed.length) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  if (!interrupted) console.error(`\nbench failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
