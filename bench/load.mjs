// Load-generator worker for `npm run bench`; run.mjs spawns it pinned to its own CPU.
// Usage: node bench/load.mjs '<spec JSON>'   or   node bench/load.mjs @spec.json
//
// Two engines, both printing one JSON result line on stdout:
//
// - "autocannon" (default): the same request over and over.
//   {"url","headers","body","expect","connections","warmup","duration"}
//   An unmeasured warmup run, then the measured run; every body is checked against `expect`.
//
// - "chain": requests that differ, or depend on the previous answer, which autocannon cannot do.
//   {"engine":"chain","kind":"code"|"refresh"|"clients","url","input":"<file>","connections","warmup","duration"}
//   One virtual user per connection, each a loop on its own keep-alive socket (a minimal
//   HTTP/1.1 client: one request in flight per connection, like autocannon without pipelining).
//   Warmup and measurement are one continuous loop, so a refresh-token chain is never cut:
//     code     each request redeems the next pre-minted authorization code, once, with its PKCE
//              verifier; a run that uses them all up stops early and says so (`exhausted`);
//     refresh  each virtual user redeems one code (unmeasured), then sends refresh_token grants,
//              each with the refresh token the previous response returned (rotation);
//     clients  client_credentials, with the client picked at random per request among a set.
//
// Latency percentiles are computed here from every response time: autocannon's own histogram
// has 1 ms resolution, too coarse for sub-millisecond medians.
import autocannon from 'autocannon';
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { basicAuth, benchClient, form } from './seed.mjs';

const arg = process.argv[2] ?? '';
const spec = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const round = (ms) => Math.round(ms * 100) / 100;

function summary(latencies, counts, seconds, cpu) {
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSec: counts.total / seconds,
    p50: round(percentile(latencies, 50) ?? 0),
    p99: round(percentile(latencies, 99) ?? 0),
    total: counts.total,
    non2xx: counts.non2xx,
    errors: counts.errors,
    timeouts: counts.timeouts,
    mismatches: counts.mismatches,
    statusCodes: counts.statusCodes,
    duration: seconds,
    // Near 100% means the load generator, not the server, was the bottleneck.
    loadCpuPercent: Math.round((cpu.user + cpu.system) / 1e4 / seconds),
  };
}

/** Tells run.mjs the measured phase starts (it samples CPU counters then). */
const measuring = () => process.stdout.write('{"phase":"measure"}\n');

// ---------- autocannon: one fixed request ----------

async function runAutocannon({ url, headers, body, expect, connections, warmup, duration }) {
  const expected = new RegExp(expect);
  const run = (seconds) => autocannon({
    url,
    method: 'POST',
    headers,
    body,
    connections,
    duration: seconds,
    timeout: 10,
    verifyBody: (text) => expected.test(text),
  });
  if (warmup > 0) await run(warmup);
  measuring();
  const latencies = [];
  const cpuBefore = process.cpuUsage();
  const r = await run(duration).on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
  const cpu = process.cpuUsage(cpuBefore);
  const statusCodes = Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, { count }]) => [code, count]));
  return {
    ...summary(latencies, { total: r.requests.total, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, mismatches: r.mismatches, statusCodes }, r.duration, cpu),
    // autocannon's own mean of per-second samples, as before.
    requestsPerSec: r.requests.mean,
  };
}

// ---------- chain: a minimal keep-alive HTTP/1.1 client ----------

/** How long one request of the chain engine may take, milliseconds. */
const REQUEST_TIMEOUT = 10_000;

class TimeoutError extends Error {}

/** One socket, one request at a time; reconnects after `Connection: close` or an error. */
class Connection {
  #host;
  #port;
  #socket = null;
  #buffer = Buffer.alloc(0);
  #pending = null;

  constructor(host, port) {
    this.#host = host;
    this.#port = port;
  }

  /** Sends `raw` (a complete request) and resolves with { status, body }, or fails after REQUEST_TIMEOUT. */
  send(raw) {
    if (this.#socket === null) this.#open();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new TimeoutError('timeout')), REQUEST_TIMEOUT);
      this.#pending = { resolve, reject, timer };
      this.#socket.write(raw);
    });
  }

  close() {
    this.#socket?.destroy();
    this.#socket = null;
  }

  #open() {
    const socket = connect({ host: this.#host, port: this.#port });
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#onData(socket, chunk));
    socket.on('error', (err) => this.#fail(err, socket));
    socket.on('close', () => this.#fail(new Error('connection closed'), socket));
    this.#socket = socket;
    this.#buffer = Buffer.alloc(0);
  }

  #fail(err, socket = this.#socket) {
    if (socket !== this.#socket) return;
    this.close();
    const pending = this.#pending;
    this.#pending = null;
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
  }

  #onData(socket, chunk) {
    if (socket !== this.#socket) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const parsed = parseResponse(this.#buffer);
    if (parsed === undefined) return;
    if (parsed.error) return this.#fail(new Error(parsed.error));
    this.#buffer = this.#buffer.subarray(parsed.end);
    const pending = this.#pending;
    this.#pending = null;
    if (parsed.close) this.close();
    if (pending) {
      clearTimeout(pending.timer);
      pending.resolve({ status: parsed.status, body: parsed.body });
    }
  }
}

/** A complete response at the start of `buf`, undefined when more bytes are needed. */
function parseResponse(buf) {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = buf.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  const close = /\r\nconnection:\s*close/i.test(head);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const start = headEnd + 4;
  if (length) {
    const end = start + Number(length[1]);
    if (buf.length < end) return undefined;
    return { status, close, body: buf.toString('utf8', start, end), end };
  }
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) return { error: `response without length: ${head.split('\r\n')[0]}` };
  const parts = [];
  for (let pos = start; ;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
    if (Number.isNaN(size)) return { error: 'bad chunk size' };
    if (size === 0) {
      const end = buf.indexOf('\r\n\r\n', lineEnd - 2) + 4; // no trailers expected
      if (end < 4) return undefined;
      return { status, close, body: Buffer.concat(parts).toString('utf8'), end };
    }
    if (buf.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const isToken = (v) => typeof v === 'string' && v.length > 0;

/** What a virtual user sends and how an answer is judged, per kind. */
function workload(kind, input) {
  if (kind === 'clients') {
    // The set of clients is derived, not shipped: the same function seeded the database.
    const { seed, indices, scope } = input;
    const auths = indices.map((i) => {
      const { clientId, secret } = benchClient(seed, i);
      return basicAuth(clientId, secret);
    });
    const body = form({ grant_type: 'client_credentials', scope });
    return {
      next: () => ({ authorization: auths[Math.floor(Math.random() * auths.length)], body }),
      check: (res) => res.status === 200 && res.body.includes('"access_token"'),
    };
  }
  const { authorization, redirectUri, resource, codes } = input;
  const redeem = ([code, verifier]) => ({
    authorization,
    body: form({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, resource }),
  });
  // A code redemption with offline_access answers all three tokens, on both servers.
  const fullAnswer = (json) => json !== undefined && isToken(json.access_token) && isToken(json.id_token) && isToken(json.refresh_token);
  let nextCode = 0;
  const takeCode = () => (nextCode < codes.length ? codes[nextCode++] : undefined);
  if (kind === 'code') {
    return {
      next: () => {
        const code = takeCode();
        return code && redeem(code);
      },
      check: (res) => res.status === 200 && fullAnswer(parseJson(res.body)),
    };
  }
  if (kind === 'refresh') {
    return {
      // Unmeasured: each virtual user starts its chain from a code of its own.
      async setup(conn, request) {
        const code = takeCode();
        if (!code) throw new Error('not enough codes to start every refresh chain');
        const res = await conn.send(request(redeem(code)));
        const json = parseJson(res.body);
        if (res.status !== 200 || !fullAnswer(json)) throw new Error(`code redemption for a refresh chain: ${res.status} ${res.body.slice(0, 300)}`);
        return { refreshToken: json.refresh_token };
      },
      next: (state) => state.refreshToken && {
        authorization,
        body: form({ grant_type: 'refresh_token', refresh_token: state.refreshToken, resource }),
      },
      check(res, state) {
        const json = res.status === 200 ? parseJson(res.body) : undefined;
        // Rotation: the next request must present the token this answer returned. Without one
        // the chain is broken (the old one is spent), and this virtual user stops.
        state.refreshToken = isToken(json?.refresh_token) ? json.refresh_token : undefined;
        return state.refreshToken !== undefined && isToken(json.access_token);
      },
    };
  }
  throw new Error(`unknown chain kind ${kind}`);
}

async function runChain({ kind, url, input: inputFile, connections, warmup, duration }) {
  const target = new URL(url);
  const host = target.hostname;
  const port = Number(target.port);
  const prefix = `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/x-www-form-urlencoded\r\n`;
  const request = ({ authorization, body }) => `${prefix}Authorization: ${authorization}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const w = workload(kind, JSON.parse(readFileSync(inputFile, 'utf8')));

  const conns = Array.from({ length: connections }, () => new Connection(host, port));
  const states = [];
  for (const conn of conns) states.push(w.setup ? await w.setup(conn, request) : {});

  const counts = { total: 0, non2xx: 0, errors: 0, timeouts: 0, mismatches: 0, statusCodes: {} };
  const latencies = [];
  let exhausted = false;
  let brokenChains = 0;
  const t0 = performance.now();
  const measureFrom = t0 + warmup * 1000;
  const measureTo = measureFrom + duration * 1000;
  let cpuBefore;
  const cpuTimer = setTimeout(() => {
    cpuBefore = process.cpuUsage();
    measuring();
  }, warmup * 1000);

  async function virtualUser(conn, state) {
    for (;;) {
      const started = performance.now();
      if (started >= measureTo) return;
      const req = w.next(state);
      if (!req) {
        if (kind === 'refresh') brokenChains++;
        else exhausted = true;
        return;
      }
      let res;
      let failure;
      try {
        res = await conn.send(request(req));
      } catch (err) {
        failure = err;
      }
      const done = performance.now();
      const ok = res !== undefined && w.check(res, state);
      // A refresh that got no answer may still have rotated the token: the chain ends there.
      if (failure && kind === 'refresh') state.refreshToken = undefined;
      if (started < measureFrom || done > measureTo) continue;
      counts.total++;
      latencies.push(done - started);
      if (failure) {
        counts.errors++;
        if (failure instanceof TimeoutError) counts.timeouts++;
        continue;
      }
      counts.statusCodes[res.status] = (counts.statusCodes[res.status] ?? 0) + 1;
      if (res.status < 200 || res.status > 299) counts.non2xx++;
      if (!ok) {
        counts.mismatches++;
        if (counts.mismatches <= 3) console.error(`unexpected answer (${res.status}): ${res.body.slice(0, 300)}`);
      }
    }
  }

  await Promise.all(conns.map((conn, i) => virtualUser(conn, states[i])));
  clearTimeout(cpuTimer);
  const ended = Math.min(performance.now(), measureTo);
  for (const conn of conns) conn.close();
  // A run that stopped early (codes used up) is measured over the time it actually ran.
  const seconds = Math.max(0.001, (ended - measureFrom) / 1000);
  const cpu = process.cpuUsage(cpuBefore ?? process.cpuUsage());
  return { ...summary(latencies, counts, seconds, cpu), exhausted, brokenChains };
}

const result = spec.engine === 'chain' ? await runChain(spec) : await runAutocannon(spec);
console.log(JSON.stringify(result));
