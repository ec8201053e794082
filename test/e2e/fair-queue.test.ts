/**
 * End to end (issue 6): the fair scheduler and switch-aware scheduling, over real HTTP against the
 * simulator. Figures (Jain's index, switch counts) are printed for the record.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { raw } from './raw-http.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(opts: HarnessOptions): Promise<Harness> {
  h = await startHarness({ ...opts, config: { shutdown: { drainTimeoutMs: 500 }, ...opts.config } });
  return h;
}

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}


/** Jain's fairness index of throughputs: 1 = equal shares, 1/n = one takes everything. */
function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  return (sum * sum) / (xs.length * xs.reduce((a, b) => a + b * b, 0));
}

interface FairRun {
  /** Completion rank (1-based, all requests) of each of B's requests. */
  bRanks: number[];
  /** How many of A's requests completed before B's last one. */
  aBeforeBLast: number;
  jain: number;
}

/**
 * Key A enqueues 200 requests, then key B enqueues 5; completion order is taken at the simulator.
 * The queue is paused while they arrive (so "A first, then B" is exact, not a race with the
 * simulator's speed) and resumed once all 205 wait.
 */
async function fairnessRun(fair: boolean): Promise<FairRun> {
  const { url, app, sim } = await start({
    sim: { replyTokens: 3, tokenIntervalMs: 1, parallel: 4 },
    config: { queue: { fair, slotsPerUpstream: 1 } },
  });
  const a = await app.keys.create({ name: 'A', tier: 'enterprise' });
  const b = await app.keys.create({ name: 'B', tier: 'enterprise' });
  const send = (key: string, id: string) =>
    raw(url, '/api/chat', { headers: { authorization: `Bearer ${key}`, 'x-request-id': id }, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false } });
  const all: Array<Promise<unknown>> = [];
  const queue = app.pool.entries[0]!.queue;
  queue.pause();
  for (let i = 1; i <= 200; i++) all.push(send(a.key, `A-${i}`));
  await until('A queued', () => queue.depth === 200);
  for (let i = 1; i <= 5; i++) all.push(send(b.key, `B-${i}`));
  await until('B queued', () => queue.depth === 205);
  queue.resume();
  const results = (await Promise.all(all)) as Array<{ status: number }>;
  expect(results.every((r) => r.status === 200)).toBe(true);
  const order = sim.requests
    .filter((r) => r.path === '/api/chat')
    .sort((x, y) => (x.finishedAt ?? 0) - (y.finishedAt ?? 0))
    .map((r) => String(r.headers['x-request-id']));
  const bRanks = order.flatMap((id, i) => (id.startsWith('B-') ? [i + 1] : []));
  const bLast = Math.max(...bRanks);
  const aBeforeBLast = order.slice(0, bLast).filter((id) => id.startsWith('A-')).length;
  // Throughput of each key while both had requests waiting: from B's arrival to B's last completion.
  const firstB = order.findIndex((id) => id.startsWith('B-'));
  const window = order.slice(0, Math.max(bLast, firstB + 1));
  const perKey = ['A-', 'B-'].map((p) => window.filter((id) => id.startsWith(p)).length);
  await h!.close();
  h = undefined;
  return { bRanks, aBeforeBLast, jain: jain(perKey) };
}

describe('fair queueing', () => {
  it("finishes key B's 5 requests before key A's 20th although A enqueued 200 first (FIFO would not)", async () => {
    const fair = await fairnessRun(true);
    const fifo = await fairnessRun(false);
    console.log(`[fairness] fair: B ranks ${fair.bRanks.join(',')}; A done before B's last: ${fair.aBeforeBLast}; Jain ${fair.jain.toFixed(3)} | FIFO: B ranks ${fifo.bRanks.join(',')}; A before B's last: ${fifo.aBeforeBLast}; Jain ${fifo.jain.toFixed(3)}`);
    expect(fair.aBeforeBLast).toBeLessThan(20);
    expect(fair.jain).toBeGreaterThan(0.9);
    expect(fifo.aBeforeBLast).toBeGreaterThanOrEqual(195);
  }, 60_000);
});

interface SwitchRun {
  switches: number;
  maxWaitMs: number;
  totalMs: number;
}

/** 40 requests alternating two models are queued (queue paused), then served; the simulator holds one model at a time. */
async function switchRun(switchMaxWaitMs: number, fair: boolean): Promise<SwitchRun> {
  const { url, sim, app } = await start({
    sim: { replyTokens: 4, tokenIntervalMs: 2, loadMs: 40, maxLoadedModels: 1, parallel: 1 },
    config: { queue: { fair, switchMaxWaitMs, slotsPerUpstream: 1 } },
  });
  const started = Date.now();
  const body = (model: string, n = 4) => ({ model, messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: n } });
  const queue = app.pool.entries[0]!.queue;
  queue.pause();
  const sentAt = new Map<string, number>();
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < 40; i++) {
    const id = `r-${i}`;
    sentAt.set(id, Date.now());
    all.push(raw(url, '/api/chat', { headers: { 'x-request-id': id }, body: body(i % 2 === 0 ? 'qwen3' : 'llama3.2') }));
    await until(`r-${i} queued`, () => queue.depth === i + 1);
  }
  queue.resume();
  await Promise.all(all);
  const served = sim.requests.filter((r) => r.path === '/api/chat').sort((x, y) => x.receivedAt - y.receivedAt);
  let switches = 0;
  for (let i = 1; i < served.length; i++) if ((served[i]!.body as { model: string }).model !== (served[i - 1]!.body as { model: string }).model) switches++;
  const waits = served.filter((r) => sentAt.has(String(r.headers['x-request-id']))).map((r) => r.receivedAt - sentAt.get(String(r.headers['x-request-id']))!);
  const result = { switches, maxWaitMs: Math.max(...waits), totalMs: Date.now() - started };
  await h!.close();
  h = undefined;
  return result;
}

describe('switch-aware scheduling', () => {
  it('switches models far less often than FIFO for the same mixed queue, and passes nobody over for longer than the bound', async () => {
    const bound = 400;
    const fifo = await switchRun(0, false);
    const aware = await switchRun(bound, true);
    console.log(`[switching] FIFO: ${fifo.switches} switches, max wait ${fifo.maxWaitMs} ms, total ${fifo.totalMs} ms | switch-aware (bound ${bound} ms): ${aware.switches} switches, max wait ${aware.maxWaitMs} ms, total ${aware.totalMs} ms`);
    expect(fifo.switches).toBeGreaterThanOrEqual(39);
    expect(aware.switches).toBeLessThanOrEqual(4);
    // The policy may delay a request by at most the bound beyond what FIFO would have made it wait.
    expect(aware.maxWaitMs).toBeLessThanOrEqual(fifo.maxWaitMs + bound);
    expect(aware.totalMs).toBeLessThan(fifo.totalMs);
  }, 60_000);
});

describe('model switch time', () => {
  it('is measured as parley_model_load_duration_seconds from the replies', async () => {
    const { url } = await start({ sim: { loadMs: 120, maxLoadedModels: 1 } });
    for (const model of ['llama3.2', 'qwen3', 'llama3.2']) {
      expect((await raw(url, '/api/chat', { body: { model, messages: [{ role: 'user', content: 'hi' }], stream: false } })).status).toBe(200);
    }
    const text = (await raw(url, '/metrics')).text;
    expect(text).toMatch(/^parley_model_load_duration_seconds_count\{model="llama3.2:latest"\} 2$/m);
    expect(text).toMatch(/^parley_model_load_duration_seconds_bucket\{le="0.1",model="qwen3:latest"\} 0$/m);
    expect(text).toMatch(/^parley_model_load_duration_seconds_bucket\{le="0.25",model="qwen3:latest"\} 1$/m);
  });
});
