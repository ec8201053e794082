import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startSimulator, type Simulator } from './index.js';

type Json = Record<string, any>;

let sim: Simulator;
const agent = new Agent({ connections: 1000 });

function chat(content: string, extra: Json = {}, signal?: AbortSignal) {
  return request(sim.url + '/api/chat', {
    method: 'POST',
    dispatcher: agent,
    signal,
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content }], ...extra }),
  });
}

async function ctl(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Json> {
  const r = await request(sim.url + path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  return (await r.body.json()) as Json;
}

beforeEach(async () => {
  sim = await startSimulator();
});
afterEach(async () => {
  await sim.close();
});

describe('queue', () => {
  it('answers 503 "server busy…" when the queue is full', async () => {
    sim.setOptions({ parallel: 1, maxQueue: 1, ttftMs: 5_000 });
    const ac = new AbortController();
    const first = chat('a', {}, ac.signal).catch(() => undefined);
    const second = chat('b', {}, ac.signal).catch(() => undefined);
    await sim.waitFor(() => sim.active === 1 && sim.waiting === 1);
    const third = await chat('c');
    expect(third.statusCode).toBe(503);
    expect(third.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(await third.body.text()).toBe('{"error":"server busy, please try again.  maximum pending requests exceeded"}');
    ac.abort();
    await Promise.all([first, second]);
  });

  it('never runs two requests at once with one slot, and runs N with N slots', async () => {
    sim.setOptions({ tokenIntervalMs: 2 });
    await Promise.all([1, 2, 3, 4].map(async (i) => (await chat(`q${i}`)).body.text()));
    expect(sim.maxConcurrent).toBe(1);
    const done = [...sim.requests].sort((a, b) => (a.firstByteAt ?? 0) - (b.firstByteAt ?? 0));
    for (let i = 1; i < done.length; i++) expect(done[i]?.firstByteAt).toBeGreaterThanOrEqual(done[i - 1]?.finishedAt ?? Infinity);
    sim.reset();
    sim.setOptions({ parallel: 3, ttftMs: 30 });
    await Promise.all([1, 2, 3, 4, 5, 6].map(async (i) => (await chat(`p${i}`)).body.text()));
    expect(sim.maxConcurrent).toBe(3);
  });

  it('drops a waiting request whose client leaves and records it aborted', async () => {
    sim.setOptions({ ttftMs: 300 });
    const first = chat('first');
    const ac = new AbortController();
    const waiting = chat('second', {}, ac.signal).catch((e: Error) => e);
    await sim.waitFor(() => sim.waiting === 1);
    ac.abort();
    await waiting;
    await sim.waitFor((rs) => rs[1]?.aborted === true);
    expect(sim.waiting).toBe(0);
    expect(sim.requests[1]?.status).toBeUndefined();
    expect((await first).statusCode).toBe(200);
  });

  it('stops generating when a streaming client closes the socket', async () => {
    sim.setOptions({ tokenIntervalMs: 20, replyTokens: 500 });
    const ac = new AbortController();
    const res = await chat('long', {}, ac.signal);
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next();
    ac.abort();
    await sim.waitFor((rs) => rs[0]?.aborted === true);
    await sim.waitFor(() => sim.active === 0, 500);
    expect(sim.requests[0]?.finishedAt).toBeUndefined();
  });

  it('makes a model switch cost loadMs, counted in load_duration', async () => {
    sim.setOptions({ loadMs: 150 });
    const cold = (await (await chat('x', { stream: false })).body.json()) as Json;
    const warm = (await (await chat('y', { stream: false })).body.json()) as Json;
    expect(cold.load_duration).toBeGreaterThanOrEqual(140e6);
    expect(warm.load_duration).toBeLessThan(100e6);
  });

  it('unloads the idle model that expires first when maxLoadedModels is reached', async () => {
    const one = await startSimulator({ maxLoadedModels: 1 });
    try {
      for (const model of ['llama3.2', 'qwen3']) {
        const r = await request(one.url + '/api/generate', { method: 'POST', body: JSON.stringify({ model }) });
        await r.body.text();
      }
      expect(one.loadedModels()).toEqual(['qwen3:latest']);
    } finally {
      await one.close();
    }
  });

  it('serves 500 concurrent streams', async () => {
    sim.setOptions({ parallel: 500, replyTokens: 20, tokenIntervalMs: 1 });
    const texts = await Promise.all(Array.from({ length: 500 }, async (_, i) => (await chat(`c${i}`)).body.text()));
    expect(texts.every((t) => t.trimEnd().split('\n').length === 21 && t.includes('"done":true'))).toBe(true);
    expect(sim.maxConcurrent).toBeGreaterThan(1);
  }, 30_000);
});

describe('timing', () => {
  it('sends no headers before the first chunk exists (ttft, firstByteDelayMs)', async () => {
    sim.setOptions({ ttftMs: 150 });
    sim.setFaults({ firstByteDelayMs: 100 });
    const t0 = Date.now();
    const res = await chat('x');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(240);
    await res.body.text();
  });

  it('consumes a scripted array in order, then generates', async () => {
    sim.setOptions({ script: ['first reply', 'second reply'] });
    const out: string[] = [];
    for (let i = 0; i < 3; i++) out.push(((await (await chat('same', { stream: false })).body.json()) as Json).message.content);
    expect(out.slice(0, 2)).toEqual(['first reply', 'second reply']);
    expect(out[2]).not.toMatch(/reply/);
  });
});

describe('faults', () => {
  it('errorAfterTokens ends a 200 stream with an error line and no done line', async () => {
    sim.setFaults({ errorAfterTokens: 3 });
    const res = await chat('x');
    expect(res.statusCode).toBe(200);
    const ls = (await res.body.text()).trimEnd().split('\n').map((l) => JSON.parse(l) as Json);
    expect(ls).toHaveLength(4);
    expect(ls.at(-1)).toEqual({ error: 'simulated mid-stream failure' });
    expect(ls.some((l) => l.done === true)).toBe(false);
  });

  it('errorAfterTokens 0 (nothing sent yet) and stream:false give a real 500', async () => {
    sim.setFaults({ errorAfterTokens: 0 });
    const a = await chat('x');
    expect([a.statusCode, await a.body.text()]).toEqual([500, '{"error":"simulated mid-stream failure"}']);
    sim.setFaults({ errorAfterTokens: 2 });
    const b = await chat('x', { stream: false });
    expect(b.statusCode).toBe(500);
    await b.body.text();
  });

  it('statusCode answers model requests with a real status before any chunk', async () => {
    sim.setFaults({ statusCode: 503 });
    const r = await chat('x');
    expect([r.statusCode, await r.body.text()]).toEqual([503, '{"error":"simulated failure"}']);
    const tags = await request(sim.url + '/api/tags');
    expect(tags.statusCode).toBe(200);
    await tags.body.text();
  });

  it('resetAfterTokens destroys the socket mid-stream (not recorded as a client abort)', async () => {
    sim.setFaults({ resetAfterTokens: 2 });
    const res = await chat('x');
    const err = await res.body.text().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    await sim.waitFor(() => sim.active === 0);
    expect(sim.requests[0]?.aborted).toBe(false);
  });

  it('endWithoutDone ends the stream without the done chunk', async () => {
    sim.setFaults({ endWithoutDone: true });
    const ls = (await (await chat('x')).body.text()).trimEnd().split('\n').map((l) => JSON.parse(l) as Json);
    expect(ls).toHaveLength(8);
    expect(ls.every((l) => l.done === false)).toBe(true);
  });

  it('hang reads the request and never answers; the control endpoints still work', async () => {
    sim.setFaults({ hang: true });
    const ac = new AbortController();
    const pending = chat('hello', {}, ac.signal).catch((e: Error) => e);
    await sim.waitFor((rs) => rs[0]?.body !== undefined);
    expect((await ctl('GET', '/_sim/requests'))[0].body.messages[0].content).toBe('hello');
    ac.abort();
    await pending;
    await sim.waitFor((rs) => rs[0]?.aborted === true);
    expect(sim.requests[0]?.status).toBeUndefined();
  });

  it('refuseConnections resets every connection until cleared over HTTP', async () => {
    await ctl('POST', '/_sim/faults', { refuseConnections: true });
    await expect(request(sim.url + '/api/tags', { dispatcher: new Agent() }).then((r) => r.body.text())).rejects.toThrow();
    expect(sim.requests).toHaveLength(0);
    await ctl('POST', '/_sim/faults', {});
    const ok = await request(sim.url + '/api/tags');
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
  });

  it('crash breaks streams and refuses connections; restart listens on the same port with nothing loaded', async () => {
    sim.setOptions({ tokenIntervalMs: 20, replyTokens: 100 });
    const res = await chat('x');
    const body = res.body.text().then(
      () => 'ended',
      () => 'broken',
    );
    const port = sim.port;
    await sim.crash();
    expect(await body).toBe('broken');
    expect(sim.requests[0]?.aborted).toBe(false);
    await expect(request(sim.url + '/', { dispatcher: new Agent() })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await sim.restart();
    expect(sim.port).toBe(port);
    expect(sim.loadedModels()).toEqual([]);
    const ok = await request(sim.url + '/');
    expect(await ok.body.text()).toBe('Ollama is running');
  });
});

describe('control endpoints', () => {
  it('serve requests, stats, options and reset without being recorded', async () => {
    await (await chat('hi', { stream: false })).body.text();
    const reqs = (await ctl('GET', '/_sim/requests')) as unknown as Json[];
    expect(reqs).toHaveLength(1);
    expect(reqs[0]).toMatchObject({ id: 1, method: 'POST', path: '/api/chat', status: 200, aborted: false, promptTokens: 5 });
    expect(await ctl('GET', '/_sim/stats')).toEqual({ active: 0, waiting: 0, maxConcurrent: 1, loaded: ['llama3.2:latest'] });
    await ctl('POST', '/_sim/options', { replyTokens: 3, script: ['scripted'] });
    expect(((await (await chat('x', { stream: false })).body.json()) as Json).message.content).toBe('scripted');
    expect(((await (await chat('x', { stream: false })).body.json()) as Json).eval_count).toBe(3);
    await ctl('POST', '/_sim/reset');
    expect(sim.requests).toHaveLength(0);
    expect(sim.maxConcurrent).toBe(0);
  });

  it('keeps at most maxRecordedRequests records, dropping the oldest', async () => {
    const capped = await startSimulator({ maxRecordedRequests: 10 });
    try {
      for (let i = 0; i < 12; i++) await (await request(capped.url + '/')).body.text();
      expect(capped.requests.length).toBeLessThanOrEqual(10);
      expect(capped.requests.at(-1)?.id).toBe(12);
    } finally {
      await capped.close();
    }
  });
});
