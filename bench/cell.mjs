// @ts-check
/**
 * A quick look at one or two cells while working on the hot path (not part of the report):
 * B (minimal relay), C (Parley, a session on every chat) and C0 (Parley, plain Ollama calls)
 * interleaved for a few rounds, same pinning as bench/run.mjs.
 *
 *   node bench/cell.mjs [ns-c50|ns-c1|st-c1|burst-c50|gap-100 ...]   BENCH_ROUNDS=3
 *     BENCH_PROFILE_DIR=dir Parley under --cpu-prof (profiles in dir; the relay's in dir/relay, each
 *                           floor's in dir/floor-<level>)
 *     BENCH_TARGETS=B,C0,…  only these (A, the direct baseline, always runs)
 *     BENCH_GAP_TIMES=1     prints when the chunk gaps over 100 ms ended (250 ms buckets; the run's
 *                           start as epoch ms, to line up with a probe's log); BENCH_GAP_DETAIL=1
 *                           has the load generator log each one (stream start, token index, gap);
 *                           BENCH_SLOW_GAP_MS=27 moves the 100 ms bound (diagnostics only: a
 *                           stall stays a gap over 10× the interval)
 *     BENCH_RELAY_NODE_ARGS node flags for the relay (B), e.g. "--trace-gc-nvp"
 *     BENCH_LOG_LEVEL=warn  Parley's log level (default info, as in the report)
 *     BENCH_BASE_CLI=path   adds Cbase, C0base: another build of Parley (e.g. main's) beside this one
 *     BENCH_BASE_NODE_ARGS  node flags for that one only, e.g. "--trace-gc" or "--max-semi-space-size=64"
 *     BENCH_FLOOR=1         adds F1…F5, the gateway CPU floor (bench/floor-gateway.mjs): B rebuilt
 *                           on Fastify, + JSON, + access log, + API-key check, + metrics
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execSync } from 'node:child_process';
import { call, createApiKey, cpuTicks, CLK_TCK, firstMessage, freePort, pct, rss, sleep, spawnPinned, waitHttp } from './procs.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LOAD_CORE = cpus().length > 1 ? 1 : 0;
execSync(`taskset -a -pc ${LOAD_CORE} ${process.pid}`, { stdio: 'ignore' });
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? '3');
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const cellsWanted = process.argv.slice(2).length ? process.argv.slice(2) : ['ns-c50', 'ns-c1'];
const CELLS = {
  'ns-c1': { stream: false, c: 1, n: 400, ms: 1000, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: 16 } },
  'ns-c50': { stream: false, c: 50, n: 40_000, ms: 1500, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: 16 } },
  'st-c1': { stream: true, c: 1, n: 25, ms: 1500, sim: { ttftMs: 0, tokenIntervalMs: 5, replyTokens: 16 } },
  'burst-c50': { stream: true, c: 50, n: 5000, ms: 1000, sim: { ttftMs: 0, tokenIntervalMs: 0, replyTokens: 200 } },
  // The report's chunk-gap cell: 100 streams at 50 tokens/s started over 1 s, gaps between chunks.
  'gap-100': { stream: true, c: 100, n: 100, ms: 5000, rampMs: 1000, sim: { ttftMs: 0, tokenIntervalMs: 20, replyTokens: 100 } },
  'gap-500': { stream: true, c: 500, n: 500, ms: 5000, rampMs: 1000, sim: { ttftMs: 0, tokenIntervalMs: 20, replyTokens: 100 } },
  // Long paced streams (one chunk per read): the per-chunk cost, with little of the per-request cost.
  'paced-200': { stream: true, c: 200, n: 200, ms: 8000, rampMs: 1000, sim: { ttftMs: 0, tokenIntervalMs: 20, replyTokens: 250 } },
};
const tmp = mkdtempSync(join(tmpdir(), 'parley-cell-'));
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  if (!process.env.BENCH_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
});
const sim = spawnPinned({ core: LOAD_CORE, args: [join(ROOT, 'bench/sim-proc.mjs')], log: join(tmp, 'sim.log'), ipc: true });
const loadgen = spawnPinned({ core: LOAD_CORE, args: [join(ROOT, 'bench/loadgen.mjs')], log: join(tmp, 'loadgen.log'), ipc: true });
children.push(sim, loadgen);
const [ready] = await Promise.all([firstMessage(sim, (m) => m?.op === 'ready'), firstMessage(loadgen, (m) => m?.op === 'ready')]);
const simUrl = ready.url;
const relayPort = await freePort();
const relay = spawnPinned({ core: 0, args: [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/relay`] : []), ...(process.env.BENCH_RELAY_NODE_ARGS?.split(' ') ?? []), join(ROOT, 'bench/relay.mjs'), String(relayPort), simUrl], log: join(tmp, 'relay.log') });
const parleyPort = await freePort();
// BENCH_AUTH=off: Parley with auth.mode off (target C0anon, no key sent) to see what the key check costs.
const parleyKey = createApiKey(join(tmp, 'parley.db'));
const parleyEnv = (/** @type {number} */ port, /** @type {string} */ db) => ({ PARLEY_PORT: String(port), PARLEY_UPSTREAMS: simUrl, PARLEY_DATABASE_URL: db, PARLEY_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', ...(process.env.BENCH_AUTH === 'off' ? { PARLEY_AUTH_MODE: 'off' } : {}), PARLEY_QUEUE_SLOTS: '1024', PARLEY_QUEUE_MAX_DEPTH: '4096', PARLEY_UPSTREAM_CONNECTIONS: '1024' });
const parley = spawnPinned({
  core: 0,
  args: [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), join(ROOT, 'dist/cli.js'), 'serve'],
  env: parleyEnv(parleyPort, join(tmp, 'parley.db')),
  log: join(tmp, 'parley.log'),
});
// BENCH_BASE_CLI=<another build's dist/cli.js>: that Parley too, as targets Cbase and C0base, to
// compare a change with what it changes in the same rounds (its own database, the same key).
/** @type {Array<{ key: string, pid: number | undefined, sessions?: boolean, spec: Record<string, unknown> }>} */
const bases = [];
if (process.env.BENCH_BASE_CLI) {
  const port = await freePort();
  const db = join(tmp, 'base.db');
  execSync(`cp ${join(tmp, 'parley.db')} ${db}`);
  const base = spawnPinned({ core: 0, args: [...(process.env.BENCH_BASE_NODE_ARGS ? process.env.BENCH_BASE_NODE_ARGS.split(' ') : []), process.env.BENCH_BASE_CLI, 'serve'], env: parleyEnv(port, db), log: join(tmp, 'base.log') });
  children.push(base);
  await waitHttp(`http://127.0.0.1:${port}/`);
  const spec = (/** @type {string} */ name) => ({ name, url: `http://127.0.0.1:${port}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } });
  bases.push({ key: 'C0base', pid: base.pid, spec: spec('C0base') }, { key: 'Cbase', pid: base.pid, sessions: true, spec: spec('Cbase') });
}
children.push(relay, parley);
await Promise.all([waitHttp(`http://127.0.0.1:${relayPort}/api/version`), waitHttp(`http://127.0.0.1:${parleyPort}/`)]);
/** @type {Array<{ key: string, pid: number | undefined, sessions?: boolean, spec: Record<string, unknown> }>} */
const floors = [];
/** The floor gateways' processes (profiled with BENCH_PROFILE_DIR). */
/** @type {import('node:child_process').ChildProcess[]} */
const floorProcs = [];
if (process.env.BENCH_FLOOR) {
  for (const [i, level] of ['fastify', 'json', 'log', 'auth', 'metrics'].entries()) {
    const port = await freePort();
    const f = spawnPinned({ core: 0, args: [...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/floor-${level}`] : []), join(ROOT, 'bench/floor-gateway.mjs'), String(port), simUrl, level, join(tmp, 'parley.db')], log: join(tmp, `floor-${level}.log`) });
    children.push(f);
    floorProcs.push(f);
    await waitHttp(`http://127.0.0.1:${port}/api/version`);
    floors.push({ key: `F${i + 1}`, pid: f.pid, spec: { name: `F${i + 1}`, url: `http://127.0.0.1:${port}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } } });
  }
}
/** @type {Array<{ key: string, pid: number | undefined, sessions?: boolean, spec: Record<string, unknown> }>} */
const targets = [
  { key: 'A', pid: sim.pid, spec: { name: 'A', url: simUrl, wire: 'ollama' } },
  { key: 'B', pid: relay.pid, spec: { name: 'B', url: `http://127.0.0.1:${relayPort}`, wire: 'ollama' } },
  ...floors,
  { key: 'C0', pid: parley.pid, spec: { name: 'C0', url: `http://127.0.0.1:${parleyPort}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } } },
  { key: 'C0anon', pid: parley.pid, spec: { name: 'C0anon', url: `http://127.0.0.1:${parleyPort}`, wire: 'ollama' } },
  { key: 'C', pid: parley.pid, sessions: true, spec: { name: 'C', url: `http://127.0.0.1:${parleyPort}`, wire: 'ollama', headers: { authorization: `Bearer ${parleyKey}` } } },
  ...bases,
].filter((t) => t.key === 'A' || !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').includes(t.key));
let run = 0;
for (const id of cellsWanted) {
  const cell = CELLS[/** @type {keyof typeof CELLS} */ (id)];
  sim.send({ op: 'options', options: cell.sim, seq: 1 });
  await firstMessage(sim, (m) => m?.op === 'options-ok');
  /** @type {Record<string, { lat: number[], ttft: number[], cpu: number, ok: number, tokens: number, gapP99: number[], gapMax: number[], cpuRounds: number[] }>} */
  const acc = {};
  for (let round = -1; round < ROUNDS; round++) {
    for (const t of targets) {
      const spec = { target: t.spec, rampMs: /** @type {{ rampMs?: number }} */ (cell).rampMs, stream: cell.stream, concurrency: cell.c, maxRequests: cell.n, durationMs: round < 0 ? 500 : cell.ms, replyTokens: cell.sim.replyTokens, intervalMs: cell.sim.tokenIntervalMs, sessions: t.sessions ? { fraction: 1, prefix: `s${++run}`, turnsPerSession: 5 } : undefined };
      const c0 = cpuTicks(/** @type {number} */ (t.pid));
      const r = /** @type {any} */ (await call(loadgen, { op: 'run', spec }, 120_000));
      const c1 = cpuTicks(/** @type {number} */ (t.pid));
      if (round < 0) continue;
      const a = (acc[t.key] ??= { lat: [], ttft: [], cpu: 0, ok: 0, tokens: 0, gapP99: [], gapMax: [], cpuRounds: [] });
      a.cpuRounds.push(((c1 - c0) * 1000) / CLK_TCK / Math.max(1, r.ok));
      if (r.gaps) a.gapP99.push(r.gaps.p99);
      if (r.gaps) a.gapMax.push(r.gaps.max);
      // BENCH_GAP_TIMES=1: when the gaps over 100 ms ended, in 250 ms buckets since the run started.
      if (process.env.BENCH_GAP_TIMES && r.slowGapEnds?.length) {
        const buckets = new Map();
        for (const ms of r.slowGapEnds) buckets.set(Math.floor(ms / 250) * 250, (buckets.get(Math.floor(ms / 250) * 250) ?? 0) + 1);
        console.log(`${id} ${t.key}: run started ${Math.round(r.startedAtEpochMs)}, gaps > ${process.env.BENCH_SLOW_GAP_MS ?? 100} ms ended at ` + [...buckets].sort((x, y) => x[0] - y[0]).map(([b, n]) => `${b}ms×${n}`).join(' '));
      }
      a.lat.push(...r.latencies);
      a.ttft.push(...r.ttfts);
      a.cpu += ((c1 - c0) * 1000) / CLK_TCK;
      a.ok += r.ok;
      a.tokens += r.tokens;
      if (r.errors || r.bad) console.log(`${id} ${t.key}: errors ${r.errors} bad ${r.bad}`, r.errs);
    }
  }
  const p50 = (/** @type {number[]} */ xs) => pct(Float64Array.from(xs).sort(), 0.5);
  const a50 = p50(acc.A.lat);
  const t50 = p50(acc.A.ttft);
  for (const [k, a] of Object.entries(acc)) {
    // Per-round CPU ratios to B, whose median is steadier than the ratio of totals when the VM's speed drifts.
    const byRound = acc.B ? a.cpuRounds.map((c, i) => c / /** @type {number} */ (acc.B.cpuRounds[i])) : [];
    const roundsNote = byRound.length ? `(${(a.cpu / a.ok / (acc.B.cpu / acc.B.ok)).toFixed(2)}× B; by round ${byRound.map((x) => x.toFixed(2)).join(' ')}, median ${p50(byRound).toFixed(2)}) ` : '';
    console.log(`${id} ${k.padEnd(2)} n ${String(a.ok).padStart(6)} added p50 ${(p50(a.lat) - a50).toFixed(2)} ms ttft+ ${(p50(a.ttft) - t50).toFixed(2)} ms cpu/req ${(a.cpu / a.ok).toFixed(3)} ms ${roundsNote}cpu/token ${((a.cpu * 1000) / a.tokens).toFixed(1)} µs${a.gapP99.length ? ` gap p99 by round ${a.gapP99.map((g) => g.toFixed(1)).join(' ')} ms, max ${a.gapMax.map((g) => g.toFixed(0)).join(' ')} ms` : ''}`);
  }
}
console.log(`parley rss ${(rss(/** @type {number} */ (parley.pid)) / 1e6).toFixed(1)} MB`);
if (PROFILE_DIR) {
  // They write their profiles on SIGTERM (the relay's under <dir>/relay, the floors' under <dir>/floor-<level>).
  const profiled = [parley, relay, ...floorProcs];
  for (const p of profiled) p.kill('SIGTERM');
  await Promise.race([Promise.all(profiled.map((p) => new Promise((r) => p.once('exit', r)))), sleep(15_000)]);
}
loadgen.send({ op: 'exit', seq: 0 });
process.exit(0);
