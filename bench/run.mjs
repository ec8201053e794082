// @ts-check
/**
 * Parley's benchmark: direct (A), minimal relay (B), Parley (C) and Portkey (D) side by side,
 * interleaved round by round (A B C D A B C D …) in one run, against Parley's simulator on
 * loopback. Targets run pinned to core 0; the simulator, the load generator and this
 * orchestrator to core 1. Writes bench/results/<stamp>.json and bench/results/latest.{md,svg}.
 *
 *   node bench/run.mjs           full run (< 10 min)
 *   node bench/run.mjs --quick   smoke run (< 1 min), no thresholds enforced
 */
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, createApiKey, coreBusy, coreTimes, cpuTicks, CLK_TCK, firstMessage, freePort, HAS_TASKSET, heapProbe, median, pct, rss, sleep, spawnPinned, waitHttp } from './procs.mjs';
import { writeReport } from './report.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const TARGET_CORE = 0;
const LOAD_CORE = cpus().length > 1 ? 1 : 0;
const started = Date.now();
const HARD_LIMIT_MS = quick ? 90_000 : 600_000;

const P = quick
  ? { rounds: 1, warmMs: 150, nsC1: { n: 100, ms: 300 }, nsC: { n: 2000, ms: 250 }, stC1: { n: 5, ms: 300 }, stC: { n: 500, ms: 250 }, burst: { n: 100, ms: 250 },
      streamTokens: 25, levels: [50], streamRounds: 1, idleStreams: 50, sessions: 100, replyTokens: 16 }
  : { rounds: 5, warmMs: 500, nsC1: { n: 400, ms: 1000 }, nsC: { n: 40_000, ms: 1000 }, stC1: { n: 25, ms: 1000 }, stC: { n: 20_000, ms: 1000 }, burst: { n: 5000, ms: 1000 },
      streamTokens: 100, levels: [100, 500], streamRounds: 5, idleStreams: 500, sessions: 2000, replyTokens: 16 };

// Stream levels: 100 (where the chunk-gap target is read) and 500 (the stall-free target), each
// 5 interleaved rounds like the cells; a level in between (250, 2 rounds) was dropped, and the
// c=1 streaming cell runs 1 s per round instead of 1.5 s, to keep the run under 10 minutes (the
// 5 rounds with the c=1 cell at 1.5 s took 9.4 minutes on an AMD EPYC). A target sustains a level
// only when all 5 rounds had no stall.

/** C: share of /api/chat requests that carry a session (the rest are plain Ollama calls). */
const SESSION_FRACTION = Number(process.env.BENCH_SESSION_FRACTION ?? '1');
/** Set BENCH_PROFILE_DIR to run Parley under `--cpu-prof` (summarise with bench/profile-summary.mjs). */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

if (!existsSync(join(ROOT, 'dist/cli.js'))) throw new Error('dist/ is missing: run `npm run build` first');
try {
  execSync(`taskset -a -pc ${LOAD_CORE} ${process.pid}`, { stdio: 'ignore' });
} catch {
  console.warn('taskset failed: the orchestrator is not pinned');
}
const ncpu = cpus().length;
if (ncpu < 2) console.warn(`only ${ncpu} CPU: targets and load share a core`);

const tmp = mkdtempSync(join(tmpdir(), 'parley-bench-'));
const probeDir = join(tmp, 'probe');
mkdirSync(probeDir);
const log = (/** @type {string} */ s) => process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${s}\n`);

/** @type {import('node:child_process').ChildProcess[]} */
const children = [];
const cleanup = () => {
  for (const c of children) if (c.exitCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  // BENCH_KEEP_TMP=1 keeps the targets' logs (parley.log, portkey.log, …) for a post-mortem.
  if (process.env.BENCH_KEEP_TMP) console.error(`logs kept in ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(sig, () => process.exit(130));
const hardStop = setTimeout(() => {
  console.error(`benchmark exceeded its ${HARD_LIMIT_MS / 1000} s limit`);
  process.exit(2);
}, HARD_LIMIT_MS);
hardStop.unref();

// Other work on the machine skews every figure: measure it before anything starts.
const bg0 = coreTimes();
await sleep(quick ? 300 : 2000);
const background = coreBusy(bg0, coreTimes());

// ---------------------------------------------------------------- processes
const probeArgs = ['--expose-gc', '--import', join(ROOT, 'bench/heap-probe.mjs')];
const env = { BENCH_PROBE_DIR: probeDir };

const sim = spawnPinned({ core: LOAD_CORE, args: [join(ROOT, 'bench/sim-proc.mjs')], log: join(tmp, 'sim.log'), ipc: true });
children.push(sim);
const loadgen = spawnPinned({ core: LOAD_CORE, args: [join(ROOT, 'bench/loadgen.mjs')], log: join(tmp, 'loadgen.log'), ipc: true });
children.push(loadgen);
const [simReady] = await Promise.all([firstMessage(sim, (m) => m?.op === 'ready'), firstMessage(loadgen, (m) => m?.op === 'ready')]);
const simUrl = /** @type {string} */ (simReady.url);

const relayPort = await freePort();
const relay = spawnPinned({ core: TARGET_CORE, args: [...probeArgs, join(ROOT, 'bench/relay.mjs'), String(relayPort), simUrl], env, log: join(tmp, 'relay.log') });
children.push(relay);

// B′: a second copy of the minimal relay, measured like every target (full runs only). B′/B is the
// A/A control: how far two identical relays differ in the same rounds, i.e. the noise of every
// ratio to B in this run.
const relay2Port = await freePort();
const relay2 = quick ? undefined : spawnPinned({ core: TARGET_CORE, args: [...probeArgs, join(ROOT, 'bench/relay.mjs'), String(relay2Port), simUrl], env, log: join(tmp, 'relay2.log') });
if (relay2) children.push(relay2);

const parleyPort = await freePort();
const parleyLog = join(tmp, 'parley.log');
const parleyDb = join(tmp, 'parley.db');
// Authentication as users run it: an API key exists (auth.mode auto then requires one) and C sends it.
const parleyKey = createApiKey(parleyDb);
const parley = spawnPinned({
  core: TARGET_CORE,
  args: [...probeArgs, ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), join(ROOT, 'dist/cli.js'), 'serve'],
  env: {
    ...env,
    PARLEY_PORT: String(parleyPort),
    PARLEY_UPSTREAMS: simUrl,
    PARLEY_DATABASE_URL: parleyDb,
    PARLEY_LOG_LEVEL: 'info',
    PARLEY_QUEUE_SLOTS: '1024',
    PARLEY_QUEUE_MAX_DEPTH: '4096',
    PARLEY_UPSTREAM_CONNECTIONS: '1024',
  },
  log: parleyLog,
});
children.push(parley);

// F: the floor of a gateway on the libraries Parley must use, with only what every request of C0
// must do (Fastify, the body parsed, one access-log line, the API-key check, two metrics).
// Full runs only: the quick smoke run stays under a minute.
const floorPort = await freePort();
const floor = quick ? undefined : spawnPinned({ core: TARGET_CORE, args: [...probeArgs, join(ROOT, 'bench/floor-gateway.mjs'), String(floorPort), simUrl, 'metrics', parleyDb], env, log: join(tmp, 'floor.log') });
if (floor) children.push(floor);

const portkeyPort = await freePort();
const portkey = spawnPinned({
  core: TARGET_CORE,
  args: [...probeArgs, '--import', join(ROOT, 'bench/portkey-preload.mjs'), join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js'), `--port=${portkeyPort}`, '--headless'],
  env: { ...env, NODE_ENV: 'production' },
  log: join(tmp, 'portkey.log'),
});
children.push(portkey);

await Promise.all([
  waitHttp(`http://127.0.0.1:${relayPort}/api/version`),
  waitHttp(`http://127.0.0.1:${parleyPort}/`),
  waitHttp(`http://127.0.0.1:${portkeyPort}/`),
  ...(floor ? [waitHttp(`http://127.0.0.1:${floorPort}/api/version`)] : []),
  ...(relay2 ? [waitHttp(`http://127.0.0.1:${relay2Port}/api/version`)] : []),
]);
log(`sim ${simUrl}, relay :${relayPort}, parley :${parleyPort}, portkey :${portkeyPort}`);

/** @typedef {{ key: string, label: string, pid: number, spec: import('./loadgen.mjs').Target, direct: string, sessions?: boolean }} T */
/** @type {T[]} */
const TARGETS = [
  { key: 'A', label: 'A direct', pid: /** @type {number} */ (sim.pid), spec: { name: 'A', url: simUrl, wire: 'ollama' }, direct: 'A' },
  { key: 'A_oai', label: 'A direct (OpenAI wire)', pid: /** @type {number} */ (sim.pid), spec: { name: 'A_oai', url: simUrl, wire: 'openai' }, direct: 'A_oai' },
  { key: 'B', label: 'B minimal relay', pid: /** @type {number} */ (relay.pid), spec: { name: 'B', url: `http://127.0.0.1:${relayPort}`, wire: 'ollama' }, direct: 'A' },
  ...(relay2 ? [{ key: 'B2', label: 'B′ minimal relay, second copy (A/A control)', pid: /** @type {number} */ (relay2.pid), spec: { name: 'B2', url: `http://127.0.0.1:${relay2Port}`, wire: /** @type {const} */ ('ollama') }, direct: 'A' }] : []),
  { key: 'C', label: 'C Parley', pid: /** @type {number} */ (parley.pid), spec: { name: 'C', url: `http://127.0.0.1:${parleyPort}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } }, direct: 'A', sessions: true },
  // The same Parley process, asked as a stock Ollama client asks (no session_id): what the gateway
  // costs without the session turn's storage (not a target of its own; it shows where C's cost is).
  { key: 'C0', label: 'C0 Parley, no session', pid: /** @type {number} */ (parley.pid), spec: { name: 'C0', url: `http://127.0.0.1:${parleyPort}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } }, direct: 'A' },
  // Not a target of its own either: what no gateway on these libraries can go below (bench/floor-gateway.mjs).
  ...(floor ? [{ key: 'F', label: 'F floor gateway', pid: /** @type {number} */ (floor.pid), spec: { name: 'F', url: `http://127.0.0.1:${floorPort}`, wire: /** @type {const} */ ('ollama'), headers: { authorization: `Bearer ${parleyKey}` } }, direct: 'A' }] : []),
  {
    key: 'D', label: 'D Portkey', pid: /** @type {number} */ (portkey.pid), direct: 'A_oai',
    spec: { name: 'D', url: `http://127.0.0.1:${portkeyPort}`, wire: 'openai', headers: { 'x-portkey-provider': 'ollama', 'x-portkey-custom-host': simUrl } },
  },
];
const byKey = Object.fromEntries(TARGETS.map((t) => [t.key, t]));
const PROXIES = TARGETS.filter((t) => t.key !== 'A' && t.key !== 'A_oai' && t.key !== 'C0' && t.key !== 'B2');

// ---------------------------------------------------------------- cells
let simSeq = 0;
async function simOptions(/** @type {Record<string, number>} */ options) {
  sim.send({ op: 'options', options, seq: ++simSeq });
  await firstMessage(sim, (m) => m?.op === 'options-ok' && m.seq === simSeq);
}

/**
 * @typedef {{ id: string, stream: boolean, c: number, n: number, ms: number, sim: { ttftMs: number, tokenIntervalMs: number, replyTokens: number } }} Cell
 */
/** @type {Cell[]} */
const CELLS = [
  { id: 'ns-c1', stream: false, c: 1, ...P.nsC1, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: P.replyTokens } },
  { id: 'ns-c50', stream: false, c: 50, ...P.nsC, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: P.replyTokens } },
  { id: 'ns-c500', stream: false, c: 500, ...P.nsC, ms: quick ? P.nsC.ms : 800, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: P.replyTokens } },
  { id: 'st-c1', stream: true, c: 1, ...P.stC1, sim: { ttftMs: 0, tokenIntervalMs: 5, replyTokens: P.replyTokens } },
  { id: 'st-c50', stream: true, c: 50, ...P.stC, sim: { ttftMs: 0, tokenIntervalMs: 5, replyTokens: P.replyTokens } },
  { id: 'st-c500', stream: true, c: 500, ...P.stC, ms: quick ? P.stC.ms : 800, sim: { ttftMs: 0, tokenIntervalMs: 5, replyTokens: P.replyTokens } },
  { id: 'burst-c50', stream: true, c: 50, ...P.burst, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: 200 } },
];

/** RSS peaks while loaded. */
/** @type {Record<string, number>} */
const rssPeak = Object.fromEntries(TARGETS.map((t) => [t.key, 0]));
function sampleRss() {
  for (const t of PROXIES) rssPeak[t.key] = Math.max(rssPeak[t.key], rss(t.pid));
}

let sessionRun = 0;
/** One measured run of one target: loadgen figures plus CPU ticks and core busy fractions. */
async function measure(/** @type {T} */ t, /** @type {Partial<import('./loadgen.mjs').RunSpec> & { concurrency: number, maxRequests: number, durationMs: number, stream: boolean, replyTokens: number, intervalMs: number }} */ spec) {
  const s = { ...spec, target: t.spec, sessions: t.sessions && SESSION_FRACTION > 0 ? { fraction: SESSION_FRACTION, prefix: `s${++sessionRun}`, turnsPerSession: 5 } : undefined };
  const sampler = setInterval(sampleRss, 250);
  const c0 = cpuTicks(t.pid);
  const k0 = coreTimes();
  const r = /** @type {any} */ (await call(loadgen, { op: 'run', spec: s }, spec.durationMs + 120_000));
  const k1 = coreTimes();
  const c1 = cpuTicks(t.pid);
  clearInterval(sampler);
  sampleRss();
  const busy = coreBusy(k0, k1);
  return { ...r, cpuMs: ((c1 - c0) * 1000) / CLK_TCK, busyTarget: busy[String(TARGET_CORE)], busyLoad: busy[String(LOAD_CORE)] };
}

/** @type {Record<string, any>} */
const results = { cells: {}, streams: {}, memory: {} };

const warmSpec = (/** @type {Cell} */ cell) => ({ concurrency: cell.c, maxRequests: cell.n, durationMs: P.warmMs, stream: cell.stream, replyTokens: cell.sim.replyTokens, intervalMs: cell.sim.tokenIntervalMs });

// Idle RSS: after start and one warm-up request each.
await simOptions(CELLS[0].sim);
for (const t of TARGETS) await measure(t, { ...warmSpec(CELLS[0]), maxRequests: 20 });
await sleep(1000);
for (const t of PROXIES) results.memory[t.key] = { rssIdle: rss(t.pid) };

// Empty sessions: POST /api/sessions puts each new session in Parley's history cache (an empty
// entry). Measured now, while the cache holds next to nothing: later, with the cache at its byte
// bound after the cells, new entries evict older, larger ones and the heap can even shrink.
{
  const c = byKey.C;
  await call(loadgen, { op: 'createSessions', url: c.spec.url, n: 50, prefix: 'warm-empty', headers: c.spec.headers }, 60_000);
  const h0 = await heapProbe(c.pid, probeDir);
  const made = /** @type {any} */ (await call(loadgen, { op: 'createSessions', url: c.spec.url, n: P.sessions, prefix: 'empty', headers: c.spec.headers }, 60_000));
  const h1 = await heapProbe(c.pid, probeDir);
  results.memory.C.sessions = { n: made.created, heapPerSessionB: (h1.heapUsed - h0.heapUsed) / Math.max(1, made.created), cache: 'history cache: one empty entry per created session (checked against the database each turn)' };
  log(`empty sessions: ${made.created}, heap/session ${((h1.heapUsed - h0.heapUsed) / Math.max(1, made.created)).toFixed(0)} B`);
}

for (const cell of CELLS) {
  await simOptions(cell.sim);
  for (const t of TARGETS) await measure(t, warmSpec(cell));
  /** @type {Record<string, any>} */
  const acc = {};
  for (let round = 0; round < P.rounds; round++) {
    for (const t of TARGETS) {
      const r = await measure(t, { concurrency: cell.c, maxRequests: cell.n, durationMs: cell.ms, stream: cell.stream, replyTokens: cell.sim.replyTokens, intervalMs: cell.sim.tokenIntervalMs });
      const a = (acc[t.key] ??= { latencies: [], ttfts: [], rounds: [] });
      a.latencies.push(...r.latencies);
      a.ttfts.push(...r.ttfts);
      a.rounds.push({ ok: r.ok, errors: r.errors, errs: r.errs, bad: r.bad, tokens: r.tokens, stalled: r.stalled, wallMs: r.wallMs, cpuMs: r.cpuMs, busyTarget: r.busyTarget, busyLoad: r.busyLoad, gaps: r.gaps });
    }
  }
  results.cells[cell.id] = summarizeCell(cell, acc);
  const c = results.cells[cell.id].targets;
  log(`${cell.id}: ` + TARGETS.map((t) => `${t.key} p50 ${c[t.key].lat.p50.toFixed(2)}ms ${c[t.key].rps.toFixed(0)}/s cpu/req ${c[t.key].cpuPerReqMs.toFixed(3)}ms err ${c[t.key].errors} bad ${c[t.key].bad}`).join(' | '));
}

function summarizeCell(/** @type {Cell} */ cell, /** @type {Record<string, any>} */ acc) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const t of TARGETS) {
    const a = acc[t.key];
    const lat = Float64Array.from(a.latencies).sort();
    const tt = Float64Array.from(a.ttfts).sort();
    const ok = a.rounds.reduce((s, r) => s + r.ok, 0);
    const tokens = a.rounds.reduce((s, r) => s + r.tokens, 0);
    const cpuMs = a.rounds.reduce((s, r) => s + r.cpuMs, 0);
    out[t.key] = {
      n: ok,
      errors: a.rounds.reduce((s, r) => s + r.errors, 0),
      errs: Object.assign({}, ...a.rounds.map((r) => r.errs)),
      bad: a.rounds.reduce((s, r) => s + r.bad, 0),
      stalled: a.rounds.reduce((s, r) => s + r.stalled, 0),
      tokens,
      lat: { p50: pct(lat, 0.5), p95: pct(lat, 0.95), p99: pct(lat, 0.99) },
      ttft: { p50: pct(tt, 0.5), p95: pct(tt, 0.95), p99: pct(tt, 0.99) },
      rps: median(a.rounds.map((r) => (r.ok * 1000) / r.wallMs)),
      rpsRounds: a.rounds.map((r) => (r.ok * 1000) / r.wallMs),
      cpuMs,
      cpuPerReqMs: ok ? cpuMs / ok : NaN,
      cpuPerTokenUs: tokens ? (cpuMs * 1000) / tokens : NaN,
      busyTarget: median(a.rounds.map((r) => r.busyTarget)),
      busyLoad: median(a.rounds.map((r) => r.busyLoad)),
      gapP99: cell.stream ? median(a.rounds.map((r) => r.gaps?.p99 ?? NaN)) : undefined,
    };
  }
  for (const t of TARGETS) {
    const o = out[t.key];
    const d = out[t.direct];
    o.added = { p50: o.lat.p50 - d.lat.p50, p95: o.lat.p95 - d.lat.p95, p99: o.lat.p99 - d.lat.p99 };
    o.addedTtft = { p50: o.ttft.p50 - d.ttft.p50, p95: o.ttft.p95 - d.ttft.p95, p99: o.ttft.p99 - d.ttft.p99 };
    // Per-round medians of the added latency, to show the spread between rounds.
    o.addedRounds = undefined;
  }
  return { cell, targets: out };
}

// ---------------------------------------------------------------- streams at 50 tokens/s
{
  const interval = 20;
  await simOptions({ ttftMs: 0, tokenIntervalMs: interval, replyTokens: P.streamTokens });
  const streamTargets = TARGETS.filter((t) => t.key !== 'A_oai' && t.key !== 'F');
  // Warm-up: new connections and cold code paths stall the first streams of a fresh process.
  if (!quick) for (const t of streamTargets) await measure(t, { concurrency: Math.min(200, P.levels[0]), maxRequests: Math.min(200, P.levels[0]), durationMs: 2000, rampMs: 500, stream: true, replyTokens: P.streamTokens, intervalMs: interval });
  for (const level of P.levels) {
    /** @type {Record<string, any[]>} */
    const acc = {};
    for (let round = 0; round < P.streamRounds; round++) {
      // B′ (the A/A control) at the lowest level only, where the chunk-gap target is read.
      for (const t of streamTargets.filter((x) => x.key !== 'B2' || level === P.levels[0])) {
        const r = await measure(t, { concurrency: level, maxRequests: level, durationMs: 5000, rampMs: 1000, stream: true, replyTokens: P.streamTokens, intervalMs: interval });
        (acc[t.key] ??= []).push({ ok: r.ok, errors: r.errors, errs: r.errs, bad: r.bad, stalled: r.stalled, tokens: r.tokens, gaps: r.gaps, cpuMs: r.cpuMs, busyTarget: r.busyTarget, busyLoad: r.busyLoad, ttftP99: pct(Float64Array.from(r.ttfts).sort(), 0.99) });
        await sleep(150);
      }
    }
    results.streams[level] = Object.fromEntries(
      Object.entries(acc).map(([k, rs]) => [
        k,
        {
          rounds: rs,
          stallFree: Math.min(...rs.map((r) => r.ok - r.stalled - r.bad)),
          lostOrReordered: rs.reduce((s, r) => s + r.bad, 0),
          errors: rs.reduce((s, r) => s + r.errors, 0),
          gapP99: Math.max(...rs.map((r) => r.gaps?.p99 ?? NaN)),
          gapMax: Math.max(...rs.map((r) => r.gaps?.max ?? NaN)),
          busyTarget: median(rs.map((r) => r.busyTarget)),
          busyLoad: median(rs.map((r) => r.busyLoad)),
          sustained: rs.every((r) => r.errors === 0 && r.stalled === 0 && r.bad === 0 && r.ok === level),
        },
      ]),
    );
    log(`streams@50tok/s ×${level}: ` + Object.entries(results.streams[level]).map(([k, v]) => `${k} stall-free ${v.stallFree} gap p99 ${v.gapP99.toFixed(1)}ms max ${v.gapMax.toFixed(0)}ms bad ${v.lostOrReordered}`).join(' | '));
  }
}

// ---------------------------------------------------------------- memory
{
  // Idle open streams: first token relayed, then silence (the next token is 10 minutes away).
  await simOptions({ ttftMs: 0, tokenIntervalMs: 600_000, replyTokens: 3 });
  const n = P.idleStreams;
  /** @type {Array<[string, T, boolean]>} */
  const cases = [['B', byKey.B, false], ['C', byKey.C, false], ['C_session', byKey.C, true], ['D', byKey.D, false]];
  if (byKey.F) cases.splice(1, 0, ['F', byKey.F, false]);
  for (const [name, t, withSession] of cases) {
    const spec = { target: t.spec, stream: true, concurrency: n, maxRequests: n, durationMs: 1000, replyTokens: 3, intervalMs: 0, sessions: withSession ? { fraction: 1, prefix: `idle${name}`, turnsPerSession: 1 } : undefined };
    await call(loadgen, { op: 'openIdle', spec: { ...spec, concurrency: 4 }, n: 4, timeoutMs: 10_000 });
    await call(loadgen, { op: 'closeIdle' });
    await sleep(300);
    const h0 = await heapProbe(t.pid, probeDir);
    const r0 = rss(t.pid);
    const o = /** @type {any} */ (await call(loadgen, { op: 'openIdle', spec, n, timeoutMs: 30_000 }, 60_000));
    await sleep(500);
    const h1 = await heapProbe(t.pid, probeDir);
    const r1 = rss(t.pid);
    await call(loadgen, { op: 'closeIdle' }, 30_000);
    (results.memory[name] ??= {}).idleStreams = { n: o.opened, heapPerStreamB: (h1.heapUsed - h0.heapUsed) / o.opened, externalPerStreamB: (h1.external - h0.external) / o.opened, rssPerStreamB: (r1 - r0) / o.opened };
    log(`idle streams ${name}: ${o.opened} open, heap/stream ${((h1.heapUsed - h0.heapUsed) / o.opened).toFixed(0)} B`);
    await sleep(500);
  }
  await sleep(2000);
  for (const t of PROXIES) {
    results.memory[t.key].rssLoad = rssPeak[t.key];
    results.memory[t.key].rssAfter = rss(t.pid);
  }
}

/**
 * The simulator's reply at c=1 with the ns-c1 cell's settings, asked with `stream:false` (one
 * body, as A is in that cell) and with `stream:true` (17 NDJSON chunks, read to the last byte
 * with nothing done per chunk: loadgen's `readWhole`), interleaved round by round. A session turn
 * asks the upstream to stream even for a stream:false client, so a reply cut short can be kept
 * (src/chat/prepare-call.ts): the difference is latency every such implementation adds.
 * @returns {Promise<{ wholeP50: number, streamedP50: number, rounds: number, failed: number }>} p50s in
 *   ms; `failed`: requests with an error or a wrong reply (0 expected)
 */
async function upstreamStreamCost() {
  await simOptions(CELLS[0].sim);
  /** @type {{ whole: number[], streamed: number[] }} */
  const lat = { whole: [], streamed: [] };
  let failed = 0;
  for (let round = -1; round < P.rounds; round++) {
    for (const stream of [false, true]) {
      const spec = { target: byKey.A.spec, stream, readWhole: true, concurrency: 1, maxRequests: P.nsC1.n, durationMs: 500, replyTokens: P.replyTokens, intervalMs: 0 };
      const r = /** @type {any} */ (await call(loadgen, { op: 'run', spec }, 60_000));
      if (round >= 0) lat[stream ? 'streamed' : 'whole'].push(...r.latencies);
      failed += r.errors + r.bad;
    }
  }
  const p50 = (/** @type {number[]} */ xs) => pct(Float64Array.from(xs).sort(), 0.5);
  return { wholeP50: p50(lat.whole), streamedP50: p50(lat.streamed), rounds: P.rounds, failed };
}

// ---------------------------------------------------------------- floors (full run)
// Measured on the target core after every cell, when nothing else runs: what the targets above
// cannot go below on this machine (bench/sqlite-floor.mjs, stream-heap-floor.mjs, rss-floor.mjs).
if (!quick) {
  const floorRun = (/** @type {string} */ script, /** @type {string[]} */ nodeArgs = []) => {
    const argv = [...nodeArgs, join(ROOT, script), '--json'];
    const text = HAS_TASKSET ? execFileSync('taskset', ['-c', String(TARGET_CORE), process.execPath, ...argv], { cwd: ROOT, encoding: 'utf8' }) : execFileSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8' });
    return JSON.parse(text.trim().split('\n').at(-1) ?? '{}');
  };
  results.floors = {
    sqliteTurnCpuUs: floorRun('bench/sqlite-floor.mjs'),
    streamHeapKB: floorRun('bench/stream-heap-floor.mjs', ['--expose-gc']),
    rssMB: floorRun('bench/rss-floor.mjs'),
    upstreamStreamMs: await upstreamStreamCost(),
  };
  log(`floors: ${JSON.stringify(results.floors)}`);
}

// ---------------------------------------------------------------- output
const parleyLogLines = readFileSync(parleyLog, 'utf8').split('\n').length;
let commit = 'unknown';
let dirty = false;
try {
  commit = execSync('git rev-parse HEAD', { cwd: ROOT }).toString().trim();
  // The results of earlier runs (bench/results) are not the code under test.
  dirty = execSync("git status --porcelain -- src bench package.json ':(exclude)bench/results'", { cwd: ROOT }).toString().trim().length > 0;
} catch { /* not a checkout */ }
const meta = {
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  commit,
  dirty,
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  cpus: ncpu,
  cores: { targets: TARGET_CORE, simulatorAndLoad: LOAD_CORE, pinned: HAS_TASKSET },
  rounds: P.rounds,
  sessionFraction: SESSION_FRACTION,
  streamTokens: P.streamTokens,
  parley: { logLevel: 'info', database: 'SQLite file', auth: 'API key of tier enterprise (auth.mode auto with one key: every request checked, budgets and usage counted, no limit reached)', queueSlots: 1024, upstreamConnections: 1024, logLines: parleyLogLines },
  portkey: { version: JSON.parse(readFileSync(join(ROOT, 'node_modules/@portkey-ai/gateway/package.json'), 'utf8')).version, streamingFix: 'bench/portkey-preload.mjs (mutable Response headers)' },
  background,
  durationS: (Date.now() - started) / 1000,
};
const out = { meta, targets: TARGETS.map((t) => ({ key: t.key, label: t.label, direct: t.direct })), ...results };
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const stamp = meta.date.replace(/[:.]/g, '-');
const base = quick ? 'quick' : 'latest';
writeFileSync(join(dir, `${base}.json`), JSON.stringify(out, null, 1));
if (!quick) writeFileSync(join(dir, `run-${stamp}.json`), JSON.stringify(out, null, 1));
writeReport(out, dir, base, { png: !quick });
log(`done in ${meta.durationS.toFixed(0)} s: bench/results/${base}.md`);
loadgen.send({ op: 'exit', seq: 0 });
if (PROFILE_DIR && parley.pid) {
  // Parley writes its .cpuprofile when it exits on its own (SIGTERM → graceful stop).
  process.kill(parley.pid, 'SIGTERM');
  await Promise.race([new Promise((r) => parley.once('exit', r)), sleep(15_000)]);
  log(`Parley CPU profile written to ${PROFILE_DIR}`);
}
process.exit(0);
