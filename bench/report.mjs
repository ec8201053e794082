// @ts-check
/** Markdown report and hand-written SVG chart (optionally a PNG through headless Chromium). */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const f = (/** @type {number | undefined} */ x, d = 2) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const kb = (/** @type {number} */ b) => f(b / 1024, 2);
const mb = (/** @type {number} */ b) => f(b / 1048576, 1);
const ratio = (/** @type {number} */ a, /** @type {number} */ b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);
const mark = (/** @type {boolean | undefined} */ ok) => (ok === undefined ? '—' : ok ? '**met**' : '**missed**');

/** The targets of issue 3, checked against a run. */
export function checkTargets(/** @type {any} */ r) {
  const c1 = r.cells['ns-c1'].targets;
  const s1 = r.cells['st-c1'].targets;
  const c50 = r.cells['ns-c50'].targets;
  const burst = r.cells['burst-c50'].targets;
  const levels = Object.keys(r.streams).map(Number).sort((a, b) => a - b);
  const sustained = (/** @type {string} */ k) => Math.max(0, ...levels.filter((l) => r.streams[l][k]?.sustained));
  const low = levels[0];
  const lost = levels.reduce((s, l) => s + (r.streams[l].C?.lostOrReordered ?? 0), 0) + Object.values(r.cells).reduce((s, c) => s + (/** @type {any} */ (c).targets.C.bad ?? 0), 0);
  const relayLoadLimited = c50.B.busyLoad > 0.9;
  return [
    { what: 'added latency, non-streaming, c=1, p50 (ms)', A: 0, B: c1.B.added.p50, C: c1.C.added.p50, D: c1.D.added.p50, b2: c1.B2?.added.p50, rule: 'C ≤ 1.2 × B', cb: ratio(c1.C.added.p50, c1.B.added.p50), cd: ratio(c1.C.added.p50, c1.D.added.p50), ok: c1.C.added.p50 <= 1.2 * c1.B.added.p50 },
    { what: 'added time to first token, streaming, c=1, p50 (ms)', A: 0, B: s1.B.addedTtft.p50, C: s1.C.addedTtft.p50, D: s1.D.addedTtft.p50, b2: s1.B2?.addedTtft.p50, rule: 'C ≤ 1.2 × B', cb: ratio(s1.C.addedTtft.p50, s1.B.addedTtft.p50), cd: ratio(s1.C.addedTtft.p50, s1.D.addedTtft.p50), ok: s1.C.addedTtft.p50 <= 1.2 * s1.B.addedTtft.p50 },
    { what: 'CPU per non-streaming request, c=50 (ms)', A: c50.A.cpuPerReqMs, B: c50.B.cpuPerReqMs, C: c50.C.cpuPerReqMs, D: c50.D.cpuPerReqMs, ca: ratio(c50.C.cpuPerReqMs, c50.A.cpuPerReqMs), b2: c50.B2?.cpuPerReqMs, rule: 'C ≤ 1.5 × B and ≤ D / 10', cb: ratio(c50.C.cpuPerReqMs, c50.B.cpuPerReqMs), cd: ratio(c50.C.cpuPerReqMs, c50.D.cpuPerReqMs), ok: c50.C.cpuPerReqMs <= 1.5 * c50.B.cpuPerReqMs && c50.C.cpuPerReqMs <= c50.D.cpuPerReqMs / 10 },
    ...(c50.C0 ? [
      { what: 'C0 = Parley without a session: added latency, non-streaming, c=1, p50 (ms)', A: 0, B: c1.B.added.p50, C: c1.C0.added.p50, D: c1.D.added.p50, b2: c1.B2?.added.p50, rule: 'C0 ≤ 1.2 × B', cb: ratio(c1.C0.added.p50, c1.B.added.p50), cd: ratio(c1.C0.added.p50, c1.D.added.p50), ok: c1.C0.added.p50 <= 1.2 * c1.B.added.p50 },
      { what: 'C0 = Parley without a session: CPU per non-streaming request, c=50 (ms)', A: c50.A.cpuPerReqMs, B: c50.B.cpuPerReqMs, C: c50.C0.cpuPerReqMs, D: c50.D.cpuPerReqMs, ca: ratio(c50.C0.cpuPerReqMs, c50.A.cpuPerReqMs), b2: c50.B2?.cpuPerReqMs, rule: 'C0 ≤ 1.5 × B and ≤ D / 10', cb: ratio(c50.C0.cpuPerReqMs, c50.B.cpuPerReqMs), cd: ratio(c50.C0.cpuPerReqMs, c50.D.cpuPerReqMs), ok: c50.C0.cpuPerReqMs <= 1.5 * c50.B.cpuPerReqMs && c50.C0.cpuPerReqMs <= c50.D.cpuPerReqMs / 10 },
    ] : []),
    ...(c50.F ? [
      { what: 'F = floor gateway (B on Fastify + JSON + access log + key check + metrics): added latency, non-streaming, c=1, p50 (ms)', A: 0, B: c1.B.added.p50, C: c1.F.added.p50, D: c1.D.added.p50, rule: 'no target: what C0 cannot go below', cb: ratio(c1.F.added.p50, c1.B.added.p50), cd: ratio(c1.F.added.p50, c1.D.added.p50) },
      { what: 'F = floor gateway: CPU per non-streaming request, c=50 (ms)', A: c50.A.cpuPerReqMs, B: c50.B.cpuPerReqMs, C: c50.F.cpuPerReqMs, D: c50.D.cpuPerReqMs, ca: ratio(c50.F.cpuPerReqMs, c50.A.cpuPerReqMs), rule: 'no target: what C0 cannot go below', cb: ratio(c50.F.cpuPerReqMs, c50.B.cpuPerReqMs), cd: ratio(c50.F.cpuPerReqMs, c50.D.cpuPerReqMs) },
    ] : []),
    { what: 'CPU per relayed token, burst, c=50 (µs)', A: burst.A.cpuPerTokenUs, B: burst.B.cpuPerTokenUs, C: burst.C.cpuPerTokenUs, D: burst.D.cpuPerTokenUs, ca: ratio(burst.C.cpuPerTokenUs, burst.A.cpuPerTokenUs), b2: burst.B2?.cpuPerTokenUs, rule: 'C ≤ 1.2 × B', cb: ratio(burst.C.cpuPerTokenUs, burst.B.cpuPerTokenUs), cd: ratio(burst.C.cpuPerTokenUs, burst.D.cpuPerTokenUs), ok: burst.C.cpuPerTokenUs <= 1.2 * burst.B.cpuPerTokenUs },
    { what: `non-streaming requests/s, c=50 (relay ${relayLoadLimited ? 'WAS' : 'was not'} load-side limited: load core ${f(c50.B.busyLoad * 100, 0)}% busy)`, A: c50.A.rps, B: c50.B.rps, C: c50.C.rps, D: c50.D.rps, ca: ratio(c50.C.rps, c50.A.rps), b2: c50.B2?.rps, rule: 'C ≥ 0.9 × B', cb: ratio(c50.C.rps, c50.B.rps), cd: ratio(c50.C.rps, c50.D.rps), ok: c50.C.rps >= 0.9 * c50.B.rps },
    { what: `stall-free streams at 50 tok/s (levels tried: ${levels.join(', ')})`, A: sustained('A'), B: sustained('B'), C: sustained('C'), D: sustained('D'), ca: ratio(sustained('C'), sustained('A')), rule: 'C ≥ B and ≥ 500', cb: ratio(sustained('C'), sustained('B')), cd: ratio(sustained('C'), sustained('D')), ok: sustained('C') >= sustained('B') && sustained('C') >= 500 },
    { what: 'tokens lost or reordered through Parley (all cells)', C: lost, rule: '0', ok: lost === 0 },
    { what: 'idle RSS (MB)', B: r.memory.B.rssIdle / 1048576, C: r.memory.C.rssIdle / 1048576, D: r.memory.D.rssIdle / 1048576, rule: 'C ≤ 65 MB', cb: ratio(r.memory.C.rssIdle, r.memory.B.rssIdle), cd: ratio(r.memory.C.rssIdle, r.memory.D.rssIdle), ok: r.memory.C.rssIdle <= 65 * 1048576 },
    { what: 'heap per idle open stream (KB), C with a session on each', B: r.memory.B.idleStreams.heapPerStreamB / 1024, C: r.memory.C_session.idleStreams.heapPerStreamB / 1024, D: r.memory.D.idleStreams.heapPerStreamB / 1024, rule: 'C ≤ 5 KB', cb: ratio(r.memory.C_session.idleStreams.heapPerStreamB, r.memory.B.idleStreams.heapPerStreamB), cd: ratio(r.memory.C_session.idleStreams.heapPerStreamB, r.memory.D.idleStreams.heapPerStreamB), ok: r.memory.C_session.idleStreams.heapPerStreamB <= 5 * 1024 },
    { what: 'heap per idle open stream (KB), C without session', B: r.memory.B.idleStreams.heapPerStreamB / 1024, C: r.memory.C.idleStreams.heapPerStreamB / 1024, D: r.memory.D.idleStreams.heapPerStreamB / 1024, rule: 'C ≤ 5 KB', cb: ratio(r.memory.C.idleStreams.heapPerStreamB, r.memory.B.idleStreams.heapPerStreamB), cd: ratio(r.memory.C.idleStreams.heapPerStreamB, r.memory.D.idleStreams.heapPerStreamB), ok: r.memory.C.idleStreams.heapPerStreamB <= 5 * 1024 },
    { what: 'heap per cached empty session (KB; history cache entry per created session)', C: r.memory.C.sessions.heapPerSessionB / 1024, rule: 'C ≤ 1 KB', ok: r.memory.C.sessions.heapPerSessionB <= 1024 },
    { what: `p99 gap between relayed chunks while sessions are written (ms, ${low} streams at 50 tok/s)`, A: r.streams[low].A.gapP99, B: r.streams[low].B.gapP99, C: r.streams[low].C.gapP99, D: r.streams[low].D.gapP99, ca: ratio(r.streams[low].C.gapP99, r.streams[low].A.gapP99), b2: r.streams[low].B2?.gapP99, rule: 'C ≤ B', cb: ratio(r.streams[low].C.gapP99, r.streams[low].B.gapP99), cd: ratio(r.streams[low].C.gapP99, r.streams[low].D.gapP99), ok: r.streams[low].C.gapP99 <= r.streams[low].B.gapP99 },
  ];
}

/** Latency against concurrency per target, two panels (non-streaming reply, streaming first token). */
export function chartSvg(/** @type {any} */ r) {
  const W = 900;
  const H = 380;
  const colors = Object.fromEntries(Object.entries({ A: '#555555', B: '#1f77b4', F: '#9467bd', C: '#d62728', C0: '#ff7f0e', D: '#2ca02c' }).filter(([k]) => r.cells['ns-c1'].targets[k]));
  const panels = [
    { title: 'Non-streaming: whole reply p50 (ms)', cells: ['ns-c1', 'ns-c50', 'ns-c500'], field: 'lat' },
    { title: 'Streaming: time to first token p50 (ms)', cells: ['st-c1', 'st-c50', 'st-c500'], field: 'ttft' },
  ];
  const conc = [1, 50, 500];
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n`;
  panels.forEach((p, i) => {
    const x0 = 70 + i * (W / 2);
    const y0 = 40;
    const pw = W / 2 - 110;
    const ph = H - 110;
    const vals = [];
    for (const k of Object.keys(colors)) for (const c of p.cells) vals.push(r.cells[c].targets[k][p.field].p50);
    const maxV = Math.max(...vals.filter(Number.isFinite));
    const minV = Math.max(0.01, Math.min(...vals.filter((v) => Number.isFinite(v) && v > 0)));
    const lmin = Math.floor(Math.log10(minV));
    const lmax = Math.ceil(Math.log10(maxV));
    const y = (/** @type {number} */ v) => y0 + ph - ((Math.log10(Math.max(v, minV)) - lmin) / Math.max(1, lmax - lmin)) * ph;
    const x = (/** @type {number} */ j) => x0 + (j / (conc.length - 1)) * pw;
    svg += `<text x="${x0 + pw / 2}" y="${y0 - 15}" text-anchor="middle" font-weight="bold">${p.title}</text>\n`;
    svg += `<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>\n`;
    for (let e = lmin; e <= lmax; e++) {
      const v = 10 ** e;
      svg += `<line x1="${x0}" x2="${x0 + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toFixed(Math.abs(e))}</text>\n`;
    }
    conc.forEach((c, j) => {
      svg += `<text x="${x(j)}" y="${y0 + ph + 18}" text-anchor="middle">c=${c}</text>\n`;
    });
    svg += `<text x="${x0 + pw / 2}" y="${y0 + ph + 36}" text-anchor="middle">concurrency (log-spaced)</text>\n`;
    for (const [k, color] of Object.entries(colors)) {
      const pts = p.cells.map((c, j) => [x(j), y(r.cells[c].targets[k][p.field].p50)]);
      svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((q) => q.join(',')).join(' ')}"/>\n`;
      for (const [px, py] of pts) svg += `<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>\n`;
    }
  });
  const names = { A: 'A direct', B: 'B minimal relay', F: 'F floor gateway', C: 'C Parley', C0: 'C0 no session', D: 'D Portkey' };
  Object.entries(colors).forEach(([k, color], i) => {
    svg += `<rect x="${40 + i * 145}" y="${H - 22}" width="14" height="4" fill="${color}"/><text x="${58 + i * 145}" y="${H - 16}">${names[/** @type {'A'} */ (k)]}</text>\n`;
  });
  return svg + '</svg>\n';
}

export function markdown(/** @type {any} */ r, /** @type {string} */ base, /** @type {boolean} */ png) {
  const m = r.meta;
  const checks = checkTargets(r);
  let md = `# Parley benchmark (${m.mode})\n\n`;
  md += `${m.date} · commit \`${m.commit.slice(0, 12)}\`${m.dirty ? ' (+ uncommitted changes)' : ''} · Node ${m.node} · ${m.cpu} × ${m.cpus} · ${m.rounds} interleaved rounds (A B C D …) after a warm-up · ${f(m.durationS, 0)} s\n\n`;
  md += `Targets under test pinned to **core ${m.cores.targets}**; simulator, load generator and orchestrator pinned to **core ${m.cores.simulatorAndLoad}** (\`taskset\`). Upstream: Parley's simulator on loopback. Background load on the machine before the run (other processes): core 0 ${f((m.background?.['0'] ?? NaN) * 100, 0)}% busy, core 1 ${f((m.background?.['1'] ?? NaN) * 100, 0)}% busy.\n`;
  md += `C = Parley as users run it: log level info (to a file), SQLite file database, sessions on ${f(m.sessionFraction * 100, 0)}% of /api/chat requests (5 turns per session), queue slots ${m.parley.queueSlots}, ${m.parley.upstreamConnections} upstream connections; one API key (tier enterprise) sent on every request, so auth.mode auto requires and checks it, and budgets, rate limits and usage are counted (no limit is reached); everything else at its defaults: context management on, group commit on SQLite. C0 = the same Parley process asked without a session (a stock Ollama client): where C's cost is, not a target of its own. F = the floor gateway (\`bench/floor-gateway.mjs\`): the minimal relay B rebuilt on the libraries Parley must use, doing only what every request of C0 must do (Fastify, the body parsed and re-serialized, one access-log line, the API-key check, two metrics): what C0 cannot go below, not a target either.${r.targets.some((/** @type {any} */ t) => t.key === 'B2') ? ' B′ = a second copy of the minimal relay (`bench/relay.mjs`) measured in the same rounds: the column B′/B is the A/A control, how far two identical relays differ in this run, so the noise of every ratio to B (cells and the lowest stream level).' : ''}\n`;
  md += `D = Portkey gateway ${m.portkey.version} (OpenAI wire, \`ollama\` provider); its added latency is measured against the simulator's own /v1/chat/completions (A, OpenAI wire). Streaming works through ${m.portkey.streamingFix}.\n\n`;
  md += `## Targets\n\n| figure | A direct | B relay | C Parley | D Portkey | C/A | C/B | B′/B (A/A) | C/D | target | |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n`;
  for (const c of checks) md += `| ${c.what} | ${f(c.A)} | ${f(c.B)} | ${f(c.C)} | ${f(c.D)} | ${f(c.ca)} | ${f(c.cb)} | ${f(ratio(c.b2, c.B))} | ${f(c.cd)} | ${c.rule} | ${mark(c.ok)} |\n`;
  md += `\n![latency against concurrency](${base}.${png ? 'png' : 'svg'})\n\n`;
  md += `## Every cell\n\nAdded = target minus direct, from the pooled samples of all rounds. CPU from \`/proc/<pid>/stat\` deltas (10 ms ticks) over all rounds. Busy = share of the core that was busy (median of rounds).\n\n`;
  md += `| cell | target | n | reply p50 / p95 / p99 (ms) | added p50 / p95 / p99 | TTFT p50 | added TTFT p50 / p95 / p99 | req/s | CPU/req (ms) | CPU/token (µs) | gap p99 (ms) | target core | load core | errors | lost/reordered |\n|---|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const [id, cell] of Object.entries(r.cells)) {
    for (const t of r.targets) {
      const x = /** @type {any} */ (cell).targets[t.key];
      md += `| ${id} | ${t.key} | ${x.n} | ${f(x.lat.p50)} / ${f(x.lat.p95)} / ${f(x.lat.p99)} | ${f(x.added.p50)} / ${f(x.added.p95)} / ${f(x.added.p99)} | ${f(x.ttft.p50)} | ${f(x.addedTtft.p50)} / ${f(x.addedTtft.p95)} / ${f(x.addedTtft.p99)} | ${f(x.rps, 0)} | ${f(x.cpuPerReqMs, 3)} | ${f(x.cpuPerTokenUs, 1)} | ${f(x.gapP99)} | ${f(x.busyTarget * 100, 0)}% | ${f(x.busyLoad * 100, 0)}% | ${x.errors} | ${x.bad} |\n`;
    }
  }
  md += `\n## Streams at 50 tokens/s\n\nEach stream is ${'`'}${'streamTokens'}${'`'} tokens 20 ms apart; a gap over 200 ms is a stall. Streams start over 1 s.\n\n| streams | target | stall-free (worst round) | errors | lost/reordered | gap p99, worst round (ms) | gap p99 by round (ms) | gap max (ms) | target core | load core | sustained |\n|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n`;
  for (const [level, ts] of Object.entries(r.streams)) {
    for (const [k, v] of Object.entries(/** @type {Record<string, any>} */ (ts))) md += `| ${level} | ${k} | ${v.stallFree} | ${v.errors} | ${v.lostOrReordered} | ${f(v.gapP99)} | ${v.rounds.map((/** @type {any} */ x) => f(x.gaps?.p99, 1)).join(', ')} | ${f(v.gapMax, 0)} | ${f(v.busyTarget * 100, 0)}% | ${f(v.busyLoad * 100, 0)}% | ${v.sustained ? 'yes' : 'no'} |\n`;
  }
  md += `\n## Memory\n\n| target | RSS idle (MB) | RSS peak under load (MB) | RSS after load (MB) | heap / idle open stream (KB) | RSS / idle open stream (KB) |\n|---|---:|---:|---:|---:|---:|\n`;
  for (const k of ['B', 'F', 'C', 'C_session', 'D']) {
    const x = r.memory[k];
    if (!x) continue;
    const base = r.memory[k.split('_')[0]];
    md += `| ${k} | ${mb(base.rssIdle)} | ${mb(base.rssLoad)} | ${mb(base.rssAfter)} | ${kb(x.idleStreams?.heapPerStreamB)} | ${kb(x.idleStreams?.rssPerStreamB)} |\n`;
  }
  md += `\nEmpty sessions (C): ${r.memory.C.sessions.n} created, heap ${f(r.memory.C.sessions.heapPerSessionB, 0)} B per session — ${r.memory.C.sessions.cache}.\n`;
  if (r.floors) md += floorsMarkdown(r);
  return md.replace('`streamTokens`', String(r.meta.streamTokens ?? 'n/a'));
}

/**
 * What the targets cannot go below on this machine, from this run: F (the floor gateway) measured
 * beside the targets, and the floor scripts run on the target core after the cells.
 */
function floorsMarkdown(/** @type {any} */ r) {
  const c1 = r.cells['ns-c1'].targets;
  const s1 = r.cells['st-c1'].targets;
  const c50 = r.cells['ns-c50'].targets;
  const fl = r.floors;
  const minTurnMs = (fl.sqliteTurnCpuUs['minimal turn (1 commit)'] ?? NaN) / 1000;
  const parleyTurnMs = (fl.sqliteTurnCpuUs['parley turn, stream:false (3 reads, 1 commit)'] ?? NaN) / 1000;
  // The simulator's streamed reply against its whole one at c=1 (run.mjs upstreamStreamCost); older runs lack it.
  const up = fl.upstreamStreamMs ?? { wholeP50: NaN, streamedP50: NaN };
  const streamMs = up.streamedP50 - up.wholeP50;
  const heapFloorKB = Object.values(/** @type {Record<string, number>} */ (fl.streamHeapKB)).reduce((a, b) => a + b, 0);
  const libsMB = Object.entries(/** @type {Record<string, number>} */ (fl.rssMB)).find(([k]) => k.startsWith("+ Parley's libraries"))?.[1] ?? NaN;
  const verdict = (/** @type {number} */ bound, /** @type {number} */ target) => (bound > target ? '**out of reach**: the floor is above the target' : 'within reach of the floor');
  const ceilingVerdict = (/** @type {number} */ ceiling, /** @type {number} */ target) => (ceiling < target ? '**out of reach**: the ceiling is below the target' : 'within reach of the ceiling');
  const rows = [
    ['CPU per non-streaming request, c=50, C ≤ D / 10 (a session turn)', `D / 10 = ${f(c50.D.cpuPerReqMs / 10, 3)} ms; F + the least durable turn = ${f(c50.F.cpuPerReqMs + minTurnMs, 3)} ms; the minimal relay B itself uses ${f(c50.B.cpuPerReqMs, 3)} ms, direct A ${f(c50.A.cpuPerReqMs, 3)} ms`, verdict(Math.min(c50.B.cpuPerReqMs, c50.F.cpuPerReqMs) + minTurnMs, c50.D.cpuPerReqMs / 10)],
    ['CPU per non-streaming request, c=50, C0 ≤ D / 10', `D / 10 = ${f(c50.D.cpuPerReqMs / 10, 3)} ms; F = ${f(c50.F.cpuPerReqMs, 3)} ms`, verdict(c50.F.cpuPerReqMs, c50.D.cpuPerReqMs / 10)],
    ['CPU per non-streaming request, c=50, C0 ≤ 1.5 × B', `F = ${f(c50.F.cpuPerReqMs, 3)} ms = ${f(ratio(c50.F.cpuPerReqMs, c50.B.cpuPerReqMs))} × B (target ${f(1.5 * c50.B.cpuPerReqMs, 3)} ms); C0 − F = ${f(c50.C0.cpuPerReqMs - c50.F.cpuPerReqMs, 3)} ms is Parley's own pipeline`, verdict(c50.F.cpuPerReqMs, 1.5 * c50.B.cpuPerReqMs)],
    ['added latency c=1, C0 ≤ 1.2 × B (no session)', `F's added latency = ${f(c1.F.added.p50)} ms = ${f(ratio(c1.F.added.p50, c1.B.added.p50))} × B (target ${f(1.2 * c1.B.added.p50)} ms); C0 − F = ${f(c1.C0.added.p50 - c1.F.added.p50)} ms`, verdict(c1.F.added.p50, 1.2 * c1.B.added.p50)],
    ['CPU per non-streaming request, c=50, C ≤ 1.5 × B (a session turn)', `F + the least durable turn (one commit, ${f(minTurnMs * 1000, 0)} µs) = ${f(c50.F.cpuPerReqMs + minTurnMs, 3)} ms (target ${f(1.5 * c50.B.cpuPerReqMs, 3)} ms); Parley's turn SQL alone, without Kysely: ${f(parleyTurnMs * 1000, 0)} µs`, verdict(c50.F.cpuPerReqMs + minTurnMs, 1.5 * c50.B.cpuPerReqMs)],
    ['added latency c=1, C ≤ 1.2 × B (a session turn: the upstream streams, so a reply cut short can be kept, and the turn\'s commit is on the reply\'s path)', `F's added latency + the upstream's streamed reply against its whole one (${f(up.streamedP50)} against ${f(up.wholeP50)} ms, p50 of ${up.rounds ?? 'n/a'} interleaved rounds${up.failed ? `; ${up.failed} requests FAILED` : ''}) + the least durable turn = ${f(c1.F.added.p50)} + ${f(streamMs)} + ${f(minTurnMs)} = ${f(c1.F.added.p50 + streamMs + minTurnMs)} ms (target ${f(1.2 * c1.B.added.p50)} ms)`, verdict(c1.F.added.p50 + streamMs + minTurnMs, 1.2 * c1.B.added.p50)],
    ['added time to first token c=1, C ≤ 1.2 × B (the turn is stored before the first chunk)', `F's added TTFT + the least durable write = ${f(s1.F.addedTtft.p50 + minTurnMs)} ms (target ${f(1.2 * s1.B.addedTtft.p50)} ms)`, verdict(s1.F.addedTtft.p50 + minTurnMs, 1.2 * s1.B.addedTtft.p50)],
    ['non-streaming requests/s, c=50, C ≥ 0.9 × B (a session turn)', `a request needs its CPU on the one core: C can serve at most 1 / (F + the least durable turn) = ${f(1000 / (c50.F.cpuPerReqMs + minTurnMs), 0)}/s; B, by its own CPU per request, ${f(1000 / c50.B.cpuPerReqMs, 0)}/s (0.9 × that: ${f(900 / c50.B.cpuPerReqMs, 0)}/s)${c50.B.busyLoad > 0.9 ? ` (it served ${f(c50.B.rps, 0)}/s, held back by the load side)` : ''}; C served ${f(c50.C.rps, 0)}/s`, ceilingVerdict(1000 / (c50.F.cpuPerReqMs + minTurnMs), 900 / c50.B.cpuPerReqMs)],
    ['heap per idle open stream ≤ 5 KB', `node:http holding one streaming response + undici holding one upstream response = ${f(heapFloorKB)} KB (${Object.entries(fl.streamHeapKB).map(([k, v]) => `${k}: ${f(/** @type {number} */ (v))} KB`).join('; ')})`, verdict(heapFloorKB, 5)],
    ['idle RSS ≤ 65 MB', `the prescribed libraries loaded, nothing else: ${f(libsMB, 1)} MB; F idle: ${mb(r.memory.F?.rssIdle ?? NaN)} MB; ${Object.entries(fl.rssMB).map(([k, v]) => `${k}: ${f(/** @type {number} */ (v), 1)} MB`).join('; ')}`, verdict(libsMB, 65)],
  ];
  let md = `\n## Floors measured in this run\n\nF runs in every cell beside the targets; the floor scripts (\`bench/sqlite-floor.mjs\`, \`stream-heap-floor.mjs\`, \`rss-floor.mjs\`) ran on the target core after the cells. A bound adds floors of parts every implementation needs; above the target means no implementation on these libraries meets it here.\n\n| target | floor from this run | |\n|---|---|---|\n`;
  for (const [what, floorText, v] of rows) md += `| ${what} | ${floorText} | ${v} |\n`;
  return md;
}

export function writeReport(/** @type {any} */ r, /** @type {string} */ dir, /** @type {string} */ base, /** @type {{ png: boolean }} */ o) {
  const svg = chartSvg(r);
  writeFileSync(join(dir, `${base}.svg`), svg);
  let png = false;
  if (o.png) {
    const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
    if (chromium) {
      try {
        execFileSync(chromium, ['--headless', '--no-sandbox', '--disable-gpu', `--screenshot=${join(dir, `${base}.png`)}`, '--window-size=900,380', `file://${join(dir, `${base}.svg`)}`], { stdio: 'ignore', timeout: 60_000 });
        png = existsSync(join(dir, `${base}.png`));
      } catch (e) {
        console.warn(`no PNG chart (the SVG is written): ${/** @type {Error} */ (e).message}`);
        png = false;
      }
    }
  }
  writeFileSync(join(dir, `${base}.md`), markdown(r, base, png));
}
