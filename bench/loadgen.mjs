// @ts-check
/**
 * The load generator: its own process (pinned to the simulator's core), driven over IPC by the
 * orchestrator. undici Pool per target; per request it records the whole-reply latency, the time
 * to first token, every gap between two tokens, and checks the tokens against the simulator's
 * deterministic reply (`replyPieces(seed, n)`): a missing, extra or misplaced token is "lost or
 * reordered". Every run is bounded in count and in time.
 */
import { Pool } from 'undici';
/** The compiled simulator's tokenizer, typed by its source. */
const { replyPieces } = /** @type {typeof import('../src/sim/sim-tokens.js')} */ (await import(new URL('../dist/sim/sim-tokens.js', import.meta.url).href));

/**
 * @typedef {{ name: string, url: string, wire: 'ollama' | 'openai', headers?: Record<string, string> }} Target
 * @typedef {{ fraction: number, prefix: string, turnsPerSession: number }} SessionPlan
 * @typedef {{ target: Target, stream: boolean, concurrency: number, maxRequests: number, durationMs: number,
 *   replyTokens: number, intervalMs: number, rampMs?: number, sessions?: SessionPlan, keepGaps?: boolean, readWhole?: boolean }} RunSpec
 * `readWhole`: a streamed reply is read to its last byte with nothing done per chunk and checked at
 * the end (no time to first token, no gaps): what receiving the stream costs, without the parsing.
 */

/** @type {Map<string, Pool>} */
const pools = new Map();
function poolFor(/** @type {string} */ url, /** @type {number} */ connections) {
  const key = `${url}#${connections}`;
  let p = pools.get(key);
  if (!p) {
    p = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 120_000, bodyTimeout: 120_000 });
    pools.set(key, p);
  }
  return p;
}

const SEEDS = 16;
/** @type {Map<number, string[][]>} */
const expectedCache = new Map();
function expected(/** @type {number} */ n) {
  let e = expectedCache.get(n);
  if (!e) {
    e = Array.from({ length: SEEDS }, (_, i) => replyPieces(`hello ${i}`, n));
    expectedCache.set(n, e);
  }
  return e;
}

/** Body and path of one request. */
function requestFor(/** @type {RunSpec} */ spec, /** @type {number} */ seed, /** @type {string | undefined} */ sessionId) {
  const messages = [{ role: 'user', content: `hello ${seed}` }];
  if (spec.target.wire === 'openai') {
    return { path: '/v1/chat/completions', body: JSON.stringify({ model: 'llama3.2', messages, stream: spec.stream }) };
  }
  /** @type {Record<string, unknown>} */
  const body = { model: 'llama3.2', messages, stream: spec.stream };
  if (sessionId) body.session_id = sessionId;
  return { path: '/api/chat', body: JSON.stringify(body) };
}

/** Content pieces of one NDJSON / SSE line (undefined when the line carries none). */
function pieceOf(/** @type {'ollama' | 'openai'} */ wire, /** @type {string} */ line) {
  if (wire === 'openai') {
    if (!line.startsWith('data: ')) return undefined;
    const data = line.slice(6);
    if (data === '[DONE]') return undefined;
    const j = JSON.parse(data);
    const c = j.choices?.[0]?.delta?.content;
    return typeof c === 'string' && c.length > 0 ? c : undefined;
  }
  const j = JSON.parse(line);
  if (j.error) throw new Error(`error line: ${j.error}`);
  const c = j.message?.content;
  return typeof c === 'string' && c.length > 0 ? c : undefined;
}

/**
 * One request. Resolves with its figures; never rejects.
 * @returns {Promise<{ ok: boolean, latency: number, ttft: number, tokens: number, bad: boolean, maxGap: number, err?: string }>}
 */
function one(/** @type {Pool} */ pool, /** @type {RunSpec} */ spec, /** @type {number} */ seed, /** @type {string | undefined} */ sessionId, /** @type {number[] | undefined} */ gaps, /** @type {{ signal?: AbortSignal, onFirst?: () => void }} */ extra = {}) {
  const { path, body } = requestFor(spec, seed, sessionId);
  const exp = expected(spec.replyTokens)[seed];
  const t0 = performance.now();
  return new Promise((resolve) => {
    let ttft = -1;
    let last = 0;
    let maxGap = 0;
    let idx = 0;
    let bad = false;
    let tail = '';
    let text = '';
    const headers = { 'content-type': 'application/json', ...(spec.target.headers ?? {}) };
    pool.request({ method: 'POST', path, headers, body, signal: extra.signal }).then((res) => {
      if (res.statusCode !== 200) {
        res.body.resume();
        res.body.once('end', () => resolve({ ok: false, latency: 0, ttft: 0, tokens: 0, bad: false, maxGap: 0, err: `status ${res.statusCode}` }));
        return;
      }
      res.body.setEncoding('utf8');
      res.body.on('data', (/** @type {string} */ s) => {
        if (!spec.stream || spec.readWhole) {
          text += s;
          return;
        }
        const now = performance.now();
        const lines = (tail + s).split('\n');
        tail = lines.pop() ?? '';
        for (const line of lines) {
          if (!line) continue;
          let p;
          try {
            p = pieceOf(spec.target.wire, line);
          } catch {
            bad = true;
            continue;
          }
          if (p === undefined) continue;
          if (ttft < 0) {
            ttft = now - t0;
            extra.onFirst?.();
          } else {
            const g = now - last;
            if (g > maxGap) maxGap = g;
            gaps?.push(g);
            if (g > SLOW_GAP_MS) slowGaps.push(Math.round(now - runStart));
            if (g > SLOW_GAP_MS && process.env.BENCH_GAP_DETAIL) process.stderr.write(`slowgap start=${Math.round(t0 - runStart)} idx=${idx} gap=${Math.round(g)} end=${Math.round(now - runStart)}\n`);
          }
          last = now;
          if (exp[idx] !== p) bad = true;
          idx++;
        }
      });
      res.body.once('end', () => {
        const latency = performance.now() - t0;
        if (spec.stream && spec.readWhole) {
          /** @type {string[]} */
          let pieces = [];
          try {
            pieces = text.split('\n').filter(Boolean).map((line) => pieceOf(spec.target.wire, line)).filter((p) => p !== undefined);
          } catch {
            bad = true;
          }
          if (pieces.join('') !== exp.join('')) bad = true;
          resolve({ ok: true, latency, ttft: latency, tokens: pieces.length, bad, maxGap: 0 });
          return;
        }
        if (!spec.stream) {
          try {
            const j = JSON.parse(text);
            const content = spec.target.wire === 'openai' ? j.choices?.[0]?.message?.content : j.message?.content;
            if (content !== exp.join('')) bad = true;
          } catch {
            bad = true;
          }
          resolve({ ok: true, latency, ttft: latency, tokens: spec.replyTokens, bad, maxGap: 0 });
          return;
        }
        if (idx !== exp.length) bad = true;
        resolve({ ok: true, latency, ttft, tokens: idx, bad, maxGap });
      });
      res.body.once('error', (/** @type {Error} */ e) => resolve({ ok: false, latency: 0, ttft: 0, tokens: idx, bad: true, maxGap, err: e.message }));
    }, (/** @type {Error} */ e) => resolve({ ok: false, latency: 0, ttft: 0, tokens: 0, bad: false, maxGap: 0, err: e.message }));
  });
}

/**
 * Gaps longer than this (default 100 ms; BENCH_SLOW_GAP_MS) are also recorded with when they ended
 * (ms since the run started), to see where stalls come from. Diagnostics only, not the stall rule.
 */
const SLOW_GAP_MS = Number(process.env.BENCH_SLOW_GAP_MS ?? '100');
/** @type {number[]} */
let slowGaps = [];
let runStart = 0;

let runSeq = 0;
/** Closed-loop run: `concurrency` workers, each sending its next request when the last ends. */
async function run(/** @type {RunSpec} */ spec) {
  const pool = poolFor(spec.target.url, spec.concurrency);
  const run = ++runSeq;
  const latencies = [];
  const ttfts = [];
  /** @type {number[] | undefined} */
  const gaps = spec.stream && spec.keepGaps !== false ? [] : undefined;
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let bad = 0;
  let tokens = 0;
  let stalled = 0;
  /** @type {Record<string, number>} */
  const errs = {};
  const stallMs = spec.intervalMs > 0 ? 10 * spec.intervalMs : Infinity;
  const t0 = performance.now();
  runStart = t0;
  slowGaps = [];
  const deadline = t0 + spec.durationMs;
  const worker = async (/** @type {number} */ w) => {
    if (spec.rampMs) await new Promise((r) => setTimeout(r, (spec.rampMs ?? 0) * (w / spec.concurrency)));
    let turn = 0;
    while (sent < spec.maxRequests && performance.now() < deadline) {
      const i = sent++;
      const s = spec.sessions;
      const sessionId = s && (w + turn) % Math.round(1 / s.fraction) === 0 ? `${s.prefix}-${run}-${w}-${Math.floor(turn / s.turnsPerSession)}` : undefined;
      turn++;
      const r = await one(pool, spec, i % SEEDS, sessionId, gaps);
      if (!r.ok) {
        errors++;
        errs[r.err ?? '?'] = (errs[r.err ?? '?'] ?? 0) + 1;
        if (errors > 1000) return;
        continue;
      }
      ok++;
      latencies.push(r.latency);
      ttfts.push(r.ttft);
      tokens += r.tokens;
      if (r.bad) bad++;
      if (r.maxGap > stallMs) stalled++;
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, (_, w) => worker(w)));
  const wallMs = performance.now() - t0;
  return { sent, ok, errors, errs, bad, tokens, stalled, wallMs, latencies, ttfts, gaps: gaps ? summarize(gaps) : undefined, slowGapEnds: slowGaps, startedAtEpochMs: Date.now() - (performance.now() - t0) };
}

function summarize(/** @type {number[]} */ xs) {
  const s = Float64Array.from(xs).sort();
  const q = (/** @type {number} */ p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : 0);
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: s.length ? s[s.length - 1] : 0 };
}

/** Idle open streams: opened, each waits for its first token, then kept open until `closeIdle`. */
/** @type {AbortController | undefined} */
let idleAc;
/** @type {Promise<unknown>[]} */
let idleDone = [];
async function openIdle(/** @type {RunSpec} */ spec, /** @type {number} */ n, /** @type {number} */ timeoutMs) {
  const pool = poolFor(spec.target.url, n);
  idleAc = new AbortController();
  let first = 0;
  /** @type {() => void} */
  let allFirst = () => {};
  const got = new Promise((/** @type {(v?: unknown) => void} */ r) => (allFirst = r));
  idleDone = Array.from({ length: n }, (_, i) => {
    const sessionId = spec.sessions ? `${spec.sessions.prefix}-idle-${i}` : undefined;
    return one(pool, spec, i % SEEDS, sessionId, undefined, { signal: idleAc?.signal, onFirst: () => ++first === n && allFirst() });
  });
  await Promise.race([got, new Promise((r) => setTimeout(r, timeoutMs))]);
  return { opened: first };
}
async function closeIdle() {
  idleAc?.abort();
  await Promise.race([Promise.all(idleDone), new Promise((r) => setTimeout(r, 10_000))]);
  idleDone = [];
  for (const p of pools.values()) await p.destroy().catch(() => {});
  pools.clear();
  return {};
}

/** POSTs /api/sessions n times (c at once): empty sessions for the per-session heap figure. */
async function createSessions(/** @type {string} */ url, /** @type {number} */ n, /** @type {string} */ prefix, /** @type {Record<string, string>} */ extraHeaders = {}) {
  const pool = poolFor(url, 16);
  let next = 0;
  let created = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await pool.request({ method: 'POST', path: '/api/sessions', headers: { 'content-type': 'application/json', ...extraHeaders }, body: JSON.stringify({ session_id: `${prefix}-${i}` }) });
      await res.body.text();
      if (res.statusCode === 201) created++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return { created };
}

process.on('message', async (/** @type {any} */ m) => {
  let result;
  try {
    if (m.op === 'run') result = await run(m.spec);
    else if (m.op === 'openIdle') result = await openIdle(m.spec, m.n, m.timeoutMs);
    else if (m.op === 'closeIdle') result = await closeIdle();
    else if (m.op === 'createSessions') result = await createSessions(m.url, m.n, m.prefix, m.headers);
    else if (m.op === 'exit') process.exit(0);
    process.send?.({ seq: m.seq, result });
  } catch (e) {
    process.send?.({ seq: m.seq, error: e instanceof Error ? e.stack : String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ op: 'ready', pid: process.pid });
