// Load-generator worker for `npm run bench`; run.mjs spawns it pinned to its own CPU.
// Usage: node bench/load.mjs '{"url":"...","headers":{...},"body":"...","expect":"access_token",
//                              "connections":10,"warmup":2,"duration":10}'
// Runs an unmeasured warmup, then the measured run, and prints one JSON result line on stdout.
// Every response body is checked against the `expect` regex; failures are counted as mismatches.
// Latency percentiles are computed here from every response time: autocannon's own histogram
// has 1 ms resolution, too coarse for sub-millisecond medians.
import autocannon from 'autocannon';

const { url, headers, body, expect, connections, warmup, duration } = JSON.parse(process.argv[2]);
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

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const round = (ms) => Math.round(ms * 100) / 100;

if (warmup > 0) await run(warmup);
const latencies = [];
const cpuBefore = process.cpuUsage();
const r = await run(duration).on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
const { user, system } = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);

console.log(JSON.stringify({
  requestsPerSec: r.requests.mean,
  p50: round(percentile(latencies, 50)),
  p99: round(percentile(latencies, 99)),
  total: r.requests.total,
  non2xx: r.non2xx,
  errors: r.errors,
  timeouts: r.timeouts,
  mismatches: r.mismatches,
  statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, { count }]) => [code, count])),
  duration: r.duration,
  // Near 100% means the load generator, not the server, was the bottleneck.
  loadCpuPercent: Math.round((user + system) / 1e4 / r.duration),
}));
