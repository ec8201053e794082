// @ts-check
/** Process plumbing for the benchmark: pinned children, IPC calls with deadlines, /proc readings. */
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

export const CLK_TCK = 100;

/** `taskset` present (util-linux)? Without it nothing is pinned, and the report says so. */
export const HAS_TASKSET = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * Spawns `node <args>` pinned to `core` with `taskset` (taskset execs node, so the pid is node's).
 * @param {{ core: number, args: string[], env?: Record<string, string>, log: string, ipc?: boolean }} o
 */
export function spawnPinned(o) {
  const fd = openSync(o.log, 'a');
  const [cmd, args] = HAS_TASKSET ? ['taskset', ['-c', String(o.core), process.execPath, ...o.args]] : [process.execPath, o.args];
  const child = spawn(cmd, args, {
    env: { ...process.env, ...o.env },
    stdio: o.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd],
  });
  return child;
}

/** Sends `{...msg, seq}` over IPC and resolves with the reply's `result`; rejects after `timeoutMs`. */
let seq = 0;
export function call(/** @type {import('node:child_process').ChildProcess} */ child, /** @type {Record<string, unknown>} */ msg, timeoutMs = 120_000) {
  const id = ++seq;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`IPC ${String(msg.op)} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (/** @type {any} */ m) => {
      if (m?.seq !== id) return;
      clearTimeout(timer);
      child.off('message', on);
      if (m.error) reject(new Error(m.error));
      else resolve(m.result);
    };
    child.on('message', on);
    child.send({ ...msg, seq: id });
  });
}

/** Resolves with the first message matching `pred`. */
export function firstMessage(/** @type {import('node:child_process').ChildProcess} */ child, /** @type {(m: any) => boolean} */ pred, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const onExit = (/** @type {number | null} */ code) => reject(new Error(`child exited with ${code} before it answered`));
    const timer = setTimeout(() => reject(new Error('child did not answer in time')), timeoutMs);
    const on = (/** @type {any} */ m) => {
      if (!pred(m)) return;
      clearTimeout(timer);
      child.off('message', on);
      child.off('exit', onExit);
      resolve(m);
    };
    child.on('message', on);
    child.once('exit', onExit);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = a && typeof a === 'object' ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers anything (bounded). */
export async function waitHttp(/** @type {string} */ url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not come up within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process, in clock ticks (all its threads). */
export function cpuTicks(/** @type {number} */ pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Resident set size in bytes. */
export function rss(/** @type {number} */ pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
export function coreTimes() {
  /** @type {Record<string, { busy: number, total: number }>} */
  const out = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    out[m[1]] = { busy: total - idle, total };
  }
  return out;
}

/** Fraction of time each core was busy between two `coreTimes()` readings. */
export function coreBusy(/** @type {ReturnType<typeof coreTimes>} */ a, /** @type {ReturnType<typeof coreTimes>} */ b) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const k of Object.keys(b)) {
    const dt = b[k].total - (a[k]?.total ?? 0);
    out[k] = dt > 0 ? (b[k].busy - (a[k]?.busy ?? 0)) / dt : 0;
  }
  return out;
}

/** Asks a target (preloaded with heap-probe.mjs) for a post-GC `process.memoryUsage()`. */
export async function heapProbe(/** @type {number} */ pid, /** @type {string} */ dir) {
  const file = `${dir}/heap-${pid}.json`;
  if (existsSync(file)) rmSync(file);
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`heap probe of ${pid} timed out`);
    await sleep(20);
  }
  return /** @type {NodeJS.MemoryUsage} */ (JSON.parse(readFileSync(file, 'utf8')));
}

/** Sorted-sample percentile (nearest rank). */
export function pct(/** @type {ArrayLike<number>} */ sorted, /** @type {number} */ p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export function median(/** @type {number[]} */ xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Creates an API key (tier enterprise: limits checked, never reached) on Parley's database file with `parley keys create` (migrating it first) and returns the key. */
export function createApiKey(/** @type {string} */ dbFile) {
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;
  return execFileSync(process.execPath, [cli, 'keys', 'create', '--name', 'bench', '--tier', 'enterprise', '--database', dbFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}
