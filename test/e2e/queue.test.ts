/**
 * End to end: Parley's admission queue seen from clients, over real HTTP, with the Ollama
 * simulator behind it. Parley runs one slot per upstream; the simulator runs several requests at
 * once (`parallel` ≥ 2), so only Parley's queue can serialise what reaches it. Requests are told
 * apart upstream by the `X-Request-Id` Parley forwards.
 */
import { setMaxListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Ollama } from 'ollama';
import { Agent, request, type Dispatcher } from 'undici';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import type { RecordedRequest, Simulator } from '../../src/sim/index.js';

type Json = Record<string, any>;

const SERVER_BUSY = '{"error":"server busy, please try again.  maximum pending requests exceeded"}';
const MODEL_PATHS = new Set(['/api/chat', '/api/generate', '/api/embed', '/api/embeddings']);
/** Keeps a blocker reply running for far longer than any test (it is always aborted). */
const LONG_REPLY = { replyTokens: 2_000, tokenIntervalMs: 10 };
/** Makes a queued chat short whatever the simulator's replyTokens. */
const SHORT = { options: { num_predict: 2 } };

let h: Harness | undefined;
/** Run after each test whatever happened (abort what a failed test left running). */
let cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await h?.close();
  h = undefined;
});

/** Parley (short shutdown drain, so a failing test cannot hang the teardown) in front of the simulator. */
async function start(opts: HarnessOptions): Promise<Harness> {
  h = await startHarness({ ...opts, config: { ...opts.config, shutdown: { drainTimeoutMs: 500 } } });
  return h;
}

/** Model requests the simulator received (health checks and other management calls left out). */
function upstreamCalls(sim: Simulator): RecordedRequest[] {
  return sim.requests.filter((r) => MODEL_PATHS.has(r.path));
}

function upstreamIds(sim: Simulator): string[] {
  return upstreamCalls(sim).map((r) => String(r.headers['x-request-id']));
}

function upstreamCall(sim: Simulator, id: string): RecordedRequest | undefined {
  return upstreamCalls(sim).find((r) => r.headers['x-request-id'] === id);
}

/** Polls `pred` every 5 ms until it holds; fails the test after `timeoutMs`. */
async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function queueState(url: string, requestId?: string): Promise<Json> {
  const res = await request(url + '/api/queue' + (requestId ? `?request_id=${encodeURIComponent(requestId)}` : ''));
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as Json;
}

interface ChatOpts {
  id?: string;
  content?: string;
  queueUpdates?: boolean;
  signal?: AbortSignal;
  body?: Json;
  dispatcher?: Dispatcher;
}

function postChat(url: string, o: ChatOpts = {}): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.id) headers['x-request-id'] = o.id;
  if (o.queueUpdates) headers['x-parley-queue-updates'] = '1';
  return request(url + '/api/chat', {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: o.content ?? 'hello there' }], ...o.body }),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
  });
}

interface Streamed {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  /** Every NDJSON line, parsed, in order. */
  lines: Json[];
}

/**
 * A chat whose NDJSON lines can be watched while it runs (`lines` fills as they arrive).
 * `result` rejects if the request is aborted.
 */
function openChat(url: string, o: ChatOpts = {}): { lines: Json[]; result: Promise<Streamed> } {
  const lines: Json[] = [];
  const result = (async () => {
    const res = await postChat(url, o);
    let buf = '';
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      buf += chunk.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) lines.push(JSON.parse(line) as Json);
      }
    }
    if (buf.trim()) lines.push(JSON.parse(buf) as Json);
    return { status: res.statusCode, headers: res.headers, lines };
  })();
  return { lines, result };
}

/** A long-running chat holding Parley's only slot until `release()` aborts it. */
async function startBlocker(harness: Harness, id = 'blocker'): Promise<{ release: () => Promise<void> }> {
  const ac = new AbortController();
  const chat = openChat(harness.url, { id, signal: ac.signal });
  const settled = chat.result.catch(() => undefined);
  cleanups.push(() => ac.abort());
  await until('the blocker streams its first token', () => chat.lines.length > 0);
  return {
    release: async () => {
      ac.abort();
      await settled;
    },
  };
}

describe('queue: one slot per upstream', () => {
  it('runs 20 concurrent streaming chats one at a time upstream, and all 20 complete', async () => {
    const { sim, url } = await start({
      sim: { parallel: 4, ttftMs: 20, tokenIntervalMs: 5, replyTokens: 4 },
      config: { queue: { slotsPerUpstream: 1, maxDepth: 512, positionUpdateIntervalMs: 20 } },
    });
    // Control: the simulator itself would run these concurrently, so only Parley can serialise them.
    await Promise.all([1, 2, 3].map(async (i) => (await request(sim.url + '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: `direct ${i}` }] }) })).body.text()));
    expect(sim.maxConcurrent).toBeGreaterThanOrEqual(2);
    sim.reset();

    const chats = Array.from({ length: 20 }, (_, i) => openChat(url, { id: `c${i}`, content: `question ${i}`, queueUpdates: i % 2 === 0 }));
    const results = await Promise.all(chats.map((c) => c.result));

    expect(sim.maxConcurrent).toBe(1);
    const calls = upstreamCalls(sim);
    expect(calls).toHaveLength(20);
    expect(calls.every((r) => !r.aborted && r.status === 200)).toBe(true);
    // Each upstream request starts only after the previous one finished.
    const byStart = [...calls].sort((a, b) => a.receivedAt - b.receivedAt);
    for (let i = 1; i < byStart.length; i++) expect(byStart[i]!.receivedAt).toBeGreaterThanOrEqual(byStart[i - 1]!.finishedAt!);

    let deepestPosition = 0;
    results.forEach((res, i) => {
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-ndjson');
      expect(res.headers['x-request-id']).toBe(`c${i}`);
      const last = res.lines.at(-1)!;
      expect(last).toMatchObject({ done: true, done_reason: 'stop', message: { role: 'assistant', content: '' } });
      expect(res.lines.filter((l) => l.done === true)).toHaveLength(1);
      const firstContent = res.lines.findIndex((l) => (l.message?.content ?? '') !== '');
      expect(firstContent).toBeGreaterThanOrEqual(0);
      const queueLines = res.lines.filter((l) => l.queue !== undefined);
      if (i % 2 === 1) {
        expect(queueLines).toEqual([]);
        return;
      }
      // Opted in: position chunks first, shaped like chat chunks, never increasing, ending at 0.
      expect(queueLines.length).toBeGreaterThan(0);
      expect(res.lines.slice(0, queueLines.length)).toEqual(queueLines);
      expect(firstContent).toBe(queueLines.length);
      for (const q of queueLines) {
        expect(q).toMatchObject({ model: 'llama3.2', message: { role: 'assistant', content: '' }, done: false });
        expect(typeof q.created_at).toBe('string');
        expect(q.queue.depth).toBeGreaterThanOrEqual(0);
      }
      const positions = queueLines.map((q) => q.queue.position as number);
      for (let k = 1; k < positions.length; k++) expect(positions[k]).toBeLessThanOrEqual(positions[k - 1]!);
      expect(positions.at(-1)).toBe(0);
      deepestPosition = Math.max(deepestPosition, positions[0]!);
    });
    // The requests really waited behind each other (not merely arrived one after another).
    expect(deepestPosition).toBeGreaterThanOrEqual(5);
  });

  it('gives a stock client (ollama-js) that opts in to position updates the same reply as one that does not', async () => {
    const { url } = await start({ sim: { parallel: 2, ...LONG_REPLY }, config: { queue: { positionUpdateIntervalMs: 0 } } });
    const blocker = await startBlocker(h!);
    const optedIn = new Ollama({ host: url, headers: { 'X-Parley-Queue-Updates': '1' } });
    const messages = [{ role: 'user', content: 'tell me about queues' }];
    const pending = (async () => {
      let text = '';
      let parts = 0;
      let done = false;
      for await (const part of await optedIn.chat({ model: 'llama3.2', messages, stream: true, ...SHORT })) {
        parts++;
        text += part.message.content;
        done ||= part.done;
      }
      return { text, parts, done };
    })();
    await until('the ollama-js request waits', async () => (await queueState(url)).depth === 1);
    await blocker.release();
    const viaQueue = await pending;
    const plain = await h!.ollama.chat({ model: 'llama3.2', messages, stream: false, ...SHORT });
    expect(viaQueue.done).toBe(true);
    expect(viaQueue.text).toBe(plain.message.content);
    expect(viaQueue.text.length).toBeGreaterThan(0);
    // position 1, position 0, two tokens (num_predict 2) and the final chunk
    expect(viaQueue.parts).toBe(2 + 2 + 1);
  });

  it('GET /api/queue shows depth, active and the position of a waiting request by its X-Request-Id', async () => {
    const { sim, url } = await start({ sim: { parallel: 4, ...LONG_REPLY }, config: { queue: { slotsPerUpstream: 1, maxDepth: 512 } } });
    const blocker = await startBlocker(h!);
    expect(await queueState(url, 'blocker')).toMatchObject({ depth: 0, active: 1, request_id: 'blocker', position: 0 });

    const waiters = [];
    for (const id of ['wait-1', 'wait-2', 'wait-3']) {
      waiters.push(openChat(url, { id, body: SHORT }));
      const n = waiters.length;
      await until(`${id} is queued`, async () => (await queueState(url)).depth === n);
    }
    const state = await queueState(url);
    expect(state).toEqual({ depth: 3, active: 1, upstreams: [{ url: sim.url, slots: 1, active: 1, depth: 3, max_depth: 512, paused: false }] });
    expect(await queueState(url, 'wait-1')).toMatchObject({ request_id: 'wait-1', position: 1 });
    expect(await queueState(url, 'wait-2')).toMatchObject({ request_id: 'wait-2', position: 2 });
    expect(await queueState(url, 'wait-3')).toMatchObject({ request_id: 'wait-3', position: 3, depth: 3 });
    expect(await queueState(url, 'nobody')).toMatchObject({ request_id: 'nobody', position: null });
    expect(upstreamIds(sim)).toEqual(['blocker']);

    await blocker.release();
    const done = await Promise.all(waiters.map((w) => w.result));
    for (const r of done) expect(r.lines.at(-1)).toMatchObject({ done: true });
    expect(upstreamIds(sim)).toEqual(['blocker', 'wait-1', 'wait-2', 'wait-3']);
    expect(await queueState(url, 'wait-3')).toMatchObject({ depth: 0, active: 0, position: null });
  });
});

describe('queue: full, timed out, abandoned', () => {
  it('accepts 512 waiting requests and answers the 513th with Ollama\'s 503 "server busy"', async () => {
    const { sim, url } = await start({ sim: { parallel: 2, ...LONG_REPLY }, config: { queue: { slotsPerUpstream: 1, maxDepth: 512 } } });
    const agent = new Agent({ connections: 600, pipelining: 0 });
    const ac = new AbortController();
    setMaxListeners(1_000, ac.signal); // one listener per waiting request
    try {
      const blocker = await startBlocker(h!);
      const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'wait' }], stream: false, ...SHORT });
      const waiters = Array.from({ length: 512 }, (_, i) =>
        request(url + '/api/chat', { method: 'POST', dispatcher: agent, signal: ac.signal, headers: { 'x-request-id': `w${i}` }, body }).then(
          (r) => r.statusCode,
          () => 'aborted' as const,
        ),
      );
      await until('512 requests wait', async () => (await queueState(url)).depth === 512, 15_000);

      const res = await request(url + '/api/chat', { method: 'POST', dispatcher: agent, headers: { 'x-request-id': 'one-too-many' }, body });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(await res.body.text()).toBe(SERVER_BUSY);
      expect(res.headers['x-request-id']).toBe('one-too-many');
      // Refused at once: nobody was dropped to make room, nothing more went upstream.
      expect(await queueState(url)).toMatchObject({ depth: 512, active: 1 });
      expect(upstreamIds(sim)).toEqual(['blocker']);

      ac.abort();
      expect(new Set(await Promise.all(waiters))).toEqual(new Set(['aborted']));
      await until('the abandoned waiters leave the queue', async () => (await queueState(url)).depth === 0);
      expect(upstreamIds(sim)).toEqual(['blocker']);
      await blocker.release();
      // Nothing is stuck: the next request runs at once.
      const after = await h!.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'after' }], stream: false, ...SHORT });
      expect(after.done).toBe(true);
    } finally {
      ac.abort();
      await agent.destroy();
    }
  }, 30_000);

  it('a client that leaves while queued frees its place at once: depth drops, the ones behind move up, and it never reaches Ollama', async () => {
    const { sim, url } = await start({ sim: { parallel: 4, ...LONG_REPLY }, config: { queue: { positionUpdateIntervalMs: 0 } } });
    const blocker = await startBlocker(h!);
    const a = openChat(url, { id: 'q-a', body: SHORT });
    await until('q-a queued', async () => (await queueState(url)).depth === 1);
    const bAbort = new AbortController();
    const b = openChat(url, { id: 'q-b', body: SHORT, signal: bAbort.signal });
    const bSettled = b.result.then(
      () => 'finished',
      () => 'aborted',
    );
    await until('q-b queued', async () => (await queueState(url)).depth === 2);
    const c = openChat(url, { id: 'q-c', body: SHORT, queueUpdates: true });
    await until('q-c told it is third', () => c.lines.some((l) => l.queue?.position === 3));
    expect(await queueState(url, 'q-c')).toMatchObject({ depth: 3, position: 3 });

    const abortedAt = Date.now();
    bAbort.abort();
    await until('q-b leaves the queue', async () => (await queueState(url)).depth === 2, 1_000);
    expect(Date.now() - abortedAt).toBeLessThan(200);
    expect(await bSettled).toBe('aborted');
    expect(await queueState(url, 'q-b')).toMatchObject({ position: null });
    expect(await queueState(url, 'q-a')).toMatchObject({ position: 1 });
    expect(await queueState(url, 'q-c')).toMatchObject({ depth: 2, position: 2 });
    await until('q-c told it moved up', () => c.lines.some((l) => l.queue?.position === 2));
    expect(c.lines.map((l) => l.queue)).toEqual([
      { position: 3, depth: 3 },
      { position: 2, depth: 2 },
    ]);

    await blocker.release();
    const [ra, rc] = await Promise.all([a.result, c.result]);
    expect(ra.lines.at(-1)).toMatchObject({ done: true });
    expect(rc.lines.at(-1)).toMatchObject({ done: true });
    expect(rc.lines.map((l) => l.queue?.position).filter((p) => p !== undefined)).toEqual([3, 2, 1, 0]);
    expect(upstreamIds(sim)).toEqual(['blocker', 'q-a', 'q-c']);
  });

  it('a client that disconnects mid-reply aborts the upstream request within 200 ms, and the next queued request then starts', async () => {
    const { sim, url } = await start({ sim: { parallel: 4, ...LONG_REPLY } });
    const ac = new AbortController();
    const long = openChat(url, { id: 'long', signal: ac.signal });
    const longSettled = long.result.then(
      () => 'finished',
      () => 'aborted',
    );
    await until('long streams content', () => long.lines.some((l) => (l.message?.content ?? '') !== ''));
    const next = openChat(url, { id: 'next', body: SHORT });
    await until('next is queued', async () => (await queueState(url, 'next')).position === 1);
    expect(upstreamIds(sim)).toEqual(['long']);

    const clientAbortAt = Date.now();
    ac.abort();
    expect(await longSettled).toBe('aborted');
    await until('the simulator sees the upstream request aborted', () => upstreamCall(sim, 'long')?.aborted === true, 2_000);
    const upstream = upstreamCall(sim, 'long')!;
    expect(upstream.abortedAt! - clientAbortAt).toBeLessThan(200);
    expect(upstream.finishedAt).toBeUndefined();

    const done = await next.result;
    expect(done.status).toBe(200);
    expect(done.lines.at(-1)).toMatchObject({ done: true });
    const nextUpstream = upstreamCall(sim, 'next')!;
    expect(nextUpstream.receivedAt).toBeGreaterThanOrEqual(clientAbortAt);
    expect(nextUpstream.receivedAt - clientAbortAt).toBeLessThan(500);
    expect(await queueState(url)).toMatchObject({ depth: 0, active: 0 });
  });

  it('answers a request that waited longer than queue.maxWaitMs with 503 and a clear error, without sending it upstream', async () => {
    const { sim, url } = await start({ sim: { parallel: 4, ...LONG_REPLY }, config: { queue: { maxWaitMs: 300, positionUpdateIntervalMs: 0 } } });
    const blocker = await startBlocker(h!);

    const t0 = Date.now();
    const res = await postChat(url, { id: 'patient', body: SHORT });
    const waited = Date.now() - t0;
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(await res.body.text()).toBe('{"error":"queue wait exceeded 300 ms; please try again"}');
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(2_000);

    // With position updates the response has started, so the same error is the stream's last line.
    const streamed = await openChat(url, { id: 'patient-2', body: SHORT, queueUpdates: true }).result;
    expect(streamed.status).toBe(200);
    expect(streamed.lines).toEqual([
      expect.objectContaining({ done: false, queue: { position: 1, depth: 1 } }),
      { error: 'queue wait exceeded 300 ms; please try again' },
    ]);

    expect(upstreamIds(sim)).toEqual(['blocker']);
    expect(await queueState(url)).toMatchObject({ depth: 0, active: 1 });
    await blocker.release();
  });

  it('queues embed requests with chat requests: mixing them never runs two upstream at once', async () => {
    const { sim, url, ollama } = await start({ sim: { parallel: 4, ttftMs: 15, tokenIntervalMs: 2, replyTokens: 3 } });
    // Control: straight to the simulator, a chat and an embed do overlap.
    await Promise.all([
      request(sim.url + '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) }).then((r) => r.body.text()),
      request(sim.url + '/api/embed', { method: 'POST', body: JSON.stringify({ model: 'nomic-embed-text', input: 'x' }) }).then((r) => r.body.text()),
    ]);
    expect(sim.maxConcurrent).toBe(2);
    sim.reset();

    const chats = Array.from({ length: 6 }, (_, i) => ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: `chat ${i}` }], stream: false }));
    const embeds = Array.from({ length: 6 }, (_, i) => ollama.embed({ model: 'nomic-embed-text', input: [`text ${i}`, `more ${i}`] }));
    const legacy = request(url + '/api/embeddings', { method: 'POST', body: JSON.stringify({ model: 'nomic-embed-text', prompt: 'legacy' }) }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as Json }));
    const [chatResults, embedResults, legacyResult] = await Promise.all([Promise.all(chats), Promise.all(embeds), legacy]);

    for (const c of chatResults) expect(c.done).toBe(true);
    for (const e of embedResults) {
      expect(e.embeddings).toHaveLength(2);
      expect(e.embeddings[0]!.length).toBeGreaterThan(0);
    }
    expect(legacyResult.status).toBe(200);
    expect((legacyResult.body.embedding as number[]).length).toBeGreaterThan(0);
    const calls = upstreamCalls(sim);
    expect(calls.filter((r) => r.path === '/api/chat')).toHaveLength(6);
    expect(calls.filter((r) => r.path === '/api/embed')).toHaveLength(6);
    expect(calls.filter((r) => r.path === '/api/embeddings')).toHaveLength(1);
    expect(sim.maxConcurrent).toBe(1);
  });
});
