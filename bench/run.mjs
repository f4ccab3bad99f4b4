// `npm run bench`: Gatehouse vs node-oidc-provider under the same client_credentials /
// introspection load. Servers run pinned to CPU 0, the load generator (bench/load.mjs) to CPU 1.
// Options: --only=gatehouse|oidc-provider, BENCH_DURATION=<seconds> (default 10).
/* global AbortSignal */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, URLSearchParams } from 'node:url';
import { promisify } from 'node:util';
import { Buffer } from 'node:buffer';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const GATEHOUSE_CLI = join(ROOT, 'packages/server/dist/cli/main.js');
const RESOURCE = 'https://api.bench.example';
const SCOPE = 'bench:read';
const OPAQUE_RESOURCE = 'https://opaque.bench.example';
const OPAQUE_SCOPE = 'opaque:read';
const CONNECTIONS = 10;
const WARMUP = 2;
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const EXPECT_TOKEN = '"access_token"';
const EXPECT_ACTIVE = '"active"\\s*:\\s*true';

if (!(DURATION > 0)) throw new Error(`BENCH_DURATION must be a positive number of seconds, got ${process.env.BENCH_DURATION}`);
if (ONLY && !['gatehouse', 'oidc-provider'].includes(ONLY)) throw new Error(`--only must be gatehouse or oidc-provider, got ${ONLY}`);

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

async function cleanup() {
  await Promise.all([...children].map(stop));
  rmSync(tmp, { recursive: true, force: true });
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
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
async function startServer(name, args, { cwd = ROOT, env = process.env, readyUrl }) {
  const out = openSync(join(tmp, `${name}.stdout.log`), 'w');
  const err = openSync(join(tmp, `${name}.stderr.log`), 'w');
  const [cmd, cmdArgs] = pinned(0, args);
  const child = track(spawn(cmd, cmdArgs, { cwd, env, stdio: ['ignore', out, err] }));
  closeSync(out);
  closeSync(err);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const status = await fetch(readyUrl, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
    if (status === 200) {
      assertIsNode(child.pid);
      return child;
    }
    await sleep(100);
  }
  const why = child.exitCode !== null ? `exited with code ${child.exitCode}` : 'was not ready within 30 s';
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

function peakRssMiB(pid) {
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return Math.round(kb / 1024 * 10) / 10;
}

// ---------- CPU 0 accounting (in clock ticks) ----------

/** Busy/total ticks of CPU 0 and CPU ticks of `pid`, to tell whether other processes shared the server's CPU. */
function cpuSample(pid) {
  const cpu0 = /^cpu0 (.+)$/m.exec(readFileSync('/proc/stat', 'utf8'))[1].trim().split(/\s+/).slice(0, 8).map(Number);
  const total = cpu0.reduce((a, b) => a + b, 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[11], [12] = utime, stime
  return { total, busy: total - cpu0[3] - cpu0[4], server: Number(fields[11]) + Number(fields[12]) };
}

function cpuUsage(before, after) {
  const total = after.total - before.total || 1;
  const server = after.server - before.server;
  const pct = (ticks) => Math.round((100 * ticks) / total);
  return { serverCpuPercent: pct(server), cpu0OtherPercent: Math.max(0, pct(after.busy - before.busy - server)) };
}

// ---------- HTTP ----------

const formEncode = (s) => new URLSearchParams([['', s]]).toString().slice(1);
const basicAuth = (id, secret) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;
const form = (params) => new URLSearchParams(params).toString();

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
  const { typ } = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  return { token, format: `jwt (typ ${typ})`, typ };
}

async function assertActive(introspectRequest) {
  const body = await post(introspectRequest);
  if (body.active !== true) throw new Error(`introspection says inactive: ${JSON.stringify(body)}`);
}

// ---------- load ----------

async function runLoad(load) {
  const args = JSON.stringify({ ...load, connections: CONNECTIONS, warmup: WARMUP, duration: DURATION });
  const [cmd, cmdArgs] = pinned(1, [process.execPath, join(ROOT, 'bench/load.mjs'), args]);
  const child = track(spawn(cmd, cmdArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), (WARMUP + DURATION + 60) * 1000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1));
}

const results = [];

async function measure(server, workload, pid, load) {
  process.stdout.write(`  ${server} ${workload}: ${WARMUP}s warmup + ${DURATION}s ... `);
  resetPeak(pid);
  const before = cpuSample(pid);
  const r = await runLoad(load);
  const cpu = TASKSET ? cpuUsage(before, cpuSample(pid)) : {};
  // A non-2xx response also fails the body check, so only count mismatches beyond those.
  const failures = r.non2xx + r.errors + Math.max(0, r.mismatches - r.non2xx);
  results.push({ server, workload, ...r, ...cpu, peakRssMiB: peakRssMiB(pid), failures });
  const notes = [
    failures && `!!! ${failures} FAILED REQUESTS`,
    r.loadCpuPercent >= 90 && `load generator at ${r.loadCpuPercent}% CPU: req/s is a lower bound`,
    cpu.cpu0OtherPercent >= 5 && `NOISY: other processes used ${cpu.cpu0OtherPercent}% of CPU 0`,
  ].filter(Boolean);
  console.log(`${Math.round(r.requestsPerSec)} req/s, server CPU ${cpu.serverCpuPercent ?? '?'}%${notes.map((n) => `  (${n})`).join('')}`);
}

// ---------- servers ----------

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

async function benchGatehouse() {
  if (!existsSync(GATEHOUSE_CLI)) throw new Error(`${GATEHOUSE_CLI} missing: run \`npm run build -w @gatehouse/server\``);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, GATEHOUSE_DATA_DIR: tmp, GATEHOUSE_PORT: String(port), GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_METRICS_PORT: '0' };
  // Rate limits stay on (their counting is part of every request) with budgets no benchmark reaches:
  // one client from one address sends everything here.
  const unlimited = { perClient: 1e9, perAddress: 1e9 };
  writeFileSync(
    join(tmp, 'gatehouse.config.json'),
    JSON.stringify({ rateLimits: { token: unlimited, introspection: unlimited, revocation: unlimited, deviceAuthorization: unlimited } }),
  );
  // cwd = tmp so that no ./gatehouse.config.json from the checkout is picked up (the one above is).
  const cli = async (...args) => (await execFileP(process.execPath, [GATEHOUSE_CLI, ...args], { cwd: tmp, env, timeout: 60_000 })).stdout;

  await cli('migrate');
  await cli('resources', 'create', '--identifier', RESOURCE, '--name', 'Bench', '--scope', SCOPE, '--json');
  // A second API whose tokens are opaque: stored (as SHA-256 digests) in SQLite on every issue.
  await cli('resources', 'create', '--identifier', OPAQUE_RESOURCE, '--name', 'Bench opaque', '--scope', OPAQUE_SCOPE, '--format', 'opaque', '--json');
  const created = await cli('clients', 'create', '--name', 'bench', '--scope', `${SCOPE} ${OPAQUE_SCOPE}`, '--json');
  const client = parseCliJson(created);
  if (!client.client_id || !client.client_secret) throw new Error(`unexpected \`clients create\` output: ${created}`);
  const auth = basicAuth(client.client_id, client.client_secret);

  const server = await startServer('gatehouse', [process.execPath, GATEHOUSE_CLI, 'start'], { cwd: tmp, env, readyUrl: `${base}/healthz` });
  try {
    const tokenRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: SCOPE }));
    const { format } = await issueToken(tokenRequest);
    console.log(`Gatehouse (pid ${server.pid}) on ${base}, access token format: ${format}`);
    await measure('gatehouse', 'token-jwt', server.pid, { ...tokenRequest, expect: EXPECT_TOKEN });

    const { token } = await issueToken(tokenRequest);
    const introspectRequest = request(base, '/introspect', auth, form({ token }));
    await assertActive(introspectRequest);
    await measure('gatehouse', 'introspect-jwt', server.pid, { ...introspectRequest, expect: EXPECT_ACTIVE });

    const opaqueRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: OPAQUE_SCOPE }));
    const opaque = await issueToken(opaqueRequest);
    if (opaque.format !== 'opaque') throw new Error(`expected an opaque access token, got ${opaque.format}`);
    await measure('gatehouse', 'token-opaque', server.pid, { ...opaqueRequest, expect: EXPECT_TOKEN });
    const opaqueIntrospect = request(base, '/introspect', auth, form({ token: opaque.token }));
    await assertActive(opaqueIntrospect);
    await measure('gatehouse', 'introspect-opaque', server.pid, { ...opaqueIntrospect, expect: EXPECT_ACTIVE });
  } finally {
    await stop(server);
    const logFile = join(tmp, 'gatehouse.stdout.log');
    console.log(`  gatehouse wrote ${readFileSync(logFile, 'utf8').split('\n').length - 1} log lines to stdout`);
  }
}

async function benchOidcProvider(format) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const clientId = 'bench';
  const clientSecret = randomBytes(32).toString('base64url');
  const args = JSON.stringify({ port, format, clientId, clientSecret });
  const name = `oidc-provider-${format}`;
  const server = await startServer(name, [process.execPath, join(ROOT, 'bench/oidc-provider-server.mjs'), args], {
    readyUrl: `${base}/.well-known/openid-configuration`,
  });
  try {
    const auth = basicAuth(clientId, clientSecret);
    const tokenRequest = request(base, '/token', auth, form({ grant_type: 'client_credentials', scope: SCOPE, resource: RESOURCE }));
    const issued = await issueToken(tokenRequest);
    if (format === 'jwt' && issued.typ !== 'at+jwt') throw new Error(`expected an at+jwt access token, got ${issued.format}`);
    if (format === 'opaque' && issued.format !== 'opaque') throw new Error(`expected an opaque access token, got ${issued.format}`);
    console.log(`oidc-provider ${format} (pid ${server.pid}) on ${base}, access token format: ${issued.format}`);
    await measure('oidc-provider', `token-${format}`, server.pid, { ...tokenRequest, expect: EXPECT_TOKEN });

    if (format === 'opaque') {
      // Fresh token: the in-memory adapter is an LRU of 1000 entries, so earlier ones are evicted by now.
      const { token } = await issueToken(tokenRequest);
      const introspectRequest = request(base, '/introspect', auth, form({ token }));
      await assertActive(introspectRequest);
      await measure('oidc-provider', 'introspect', server.pid, { ...introspectRequest, expect: EXPECT_ACTIVE });
    }
  } finally {
    await stop(server);
  }
}

// ---------- report ----------

function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? /^Hardware\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return { node: process.version, cpu, nproc: availableParallelism(), loadavg, taskset: TASKSET ?? null };
}

function ratios() {
  const rps = (server, workload) => results.find((r) => r.server === server && r.workload === workload)?.requestsPerSec;
  const ratio = (a, b) => (a && b ? Math.round((a / b) * 100) / 100 : null);
  return {
    'gatehouse JWT token / oidc-provider JWT token': ratio(rps('gatehouse', 'token-jwt'), rps('oidc-provider', 'token-jwt')),
    'gatehouse JWT token / oidc-provider opaque token': ratio(rps('gatehouse', 'token-jwt'), rps('oidc-provider', 'token-opaque')),
    'gatehouse opaque token (stored) / oidc-provider opaque token (in memory)': ratio(rps('gatehouse', 'token-opaque'), rps('oidc-provider', 'token-opaque')),
    'gatehouse introspect opaque / oidc-provider introspect opaque': ratio(rps('gatehouse', 'introspect-opaque'), rps('oidc-provider', 'introspect')),
    'gatehouse introspect JWT / oidc-provider introspect opaque': ratio(rps('gatehouse', 'introspect-jwt'), rps('oidc-provider', 'introspect')),
  };
}

function printTable() {
  const header = ['workload', 'server', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS MiB', 'failed', 'CPU0 other %'];
  const rows = results.map((r) => [r.workload, r.server, r.requestsPerSec.toFixed(0), r.p50.toFixed(2), r.p99.toFixed(2),
    r.peakRssMiB.toFixed(1), String(r.failures), String(r.cpu0OtherPercent ?? '-')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const row of rows) console.log(line(row));
  console.log(`(peak RSS = VmHWM of the server process incl. warmup, scope: ${peakScope})\n`);
}

async function main() {
  const command = [process.env.BENCH_DURATION && `BENCH_DURATION=${process.env.BENCH_DURATION}`, process.execPath, ...process.argv.slice(1)].filter(Boolean).join(' ');
  const machine = machineInfo();
  console.log(`command: ${command}${process.env.npm_lifecycle_script ? `  (via npm: ${process.env.npm_lifecycle_script})` : ''}`);
  console.log(`machine: node ${machine.node}, cpu "${machine.cpu}", nproc ${machine.nproc}, loadavg ${machine.loadavg}`);
  console.log(TASKSET
    ? `pinning: servers on CPU 0, load generator on CPU 1 (${TASKSET})`
    : 'pinning: taskset not found on PATH, running UNPINNED');
  console.log(`load: ${CONNECTIONS} connections, ${WARMUP}s warmup, ${DURATION}s measured per workload\n`);

  if (ONLY !== 'oidc-provider') await benchGatehouse();
  if (ONLY !== 'gatehouse') {
    await benchOidcProvider('jwt');
    await benchOidcProvider('opaque');
  }

  printTable();
  const ratioValues = ratios();
  for (const [name, value] of Object.entries(ratioValues)) if (value !== null) console.log(`${name}: ${value}x`);

  const failed = results.filter((r) => r.failures > 0);
  for (const r of failed) {
    console.log(`\n!!! ${r.server} ${r.workload}: ${r.non2xx} non-2xx, ${r.errors} errors (${r.timeouts} timeouts), ${r.mismatches} unexpected bodies; status codes ${JSON.stringify(r.statusCodes)}`);
  }
  if (failed.length) console.log(`\n!!! RESULTS INVALID: ${failed.length} workload(s) had failed requests (see above)`);
  const noisy = results.filter((r) => r.cpu0OtherPercent >= 5).map((r) => `${r.server} ${r.workload}`);
  if (noisy.length) console.log(`\n!!! NOISY: other processes competed for CPU 0 during: ${noisy.join(', ')}; re-run on an idle machine`);

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const outFile = join(ROOT, 'bench/results/latest.json');
  const report = { date: new Date().toISOString(), command, machine, connections: CONNECTIONS, warmup: WARMUP, duration: DURATION, peakScope, results, ratios: ratioValues };
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
