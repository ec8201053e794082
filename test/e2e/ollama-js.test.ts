import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatResponse } from 'ollama';
import { simReplyText } from '../../src/sim/index.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';

/**
 * The official JavaScript client, used exactly as a user would (`new Ollama({ host })`), pointed
 * at Parley in front of the Ollama simulator. Every call goes over real HTTP through Parley.
 */

let h: Harness;

/** A fresh simulator and Parley for each test of the enclosing describe. */
function useHarness(opts: HarnessOptions = {}): void {
  beforeEach(async () => {
    h = await startHarness(opts);
  });
  afterEach(async () => {
    await h.close();
  });
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The final-chunk metrics a user reads: integer nanosecond durations and token counts. */
function expectMetrics(r: { total_duration: number; load_duration: number; prompt_eval_count: number; eval_count: number; eval_duration: number }, evalCount: number): void {
  expect(r.eval_count).toBe(evalCount);
  expect(r.prompt_eval_count).toBeGreaterThan(0);
  for (const v of [r.total_duration, r.load_duration, r.eval_duration]) {
    expect(Number.isInteger(v)).toBe(true);
    expect(v).toBeGreaterThan(0);
  }
}

/** Requests the simulator received on `path`. */
const upstream = (path: string) => h.sim.requests.filter((r) => r.path === path);

describe('ollama-js chat and generate through Parley', () => {
  useHarness();
  it('chat without streaming returns the whole reply, done, done_reason stop and metrics', async () => {
    const r = await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }] });
    expect(r.model).toBe('llama3.2');
    expect(r.message).toEqual({ role: 'assistant', content: simReplyText('Hello there', 8) });
    expect(r.done).toBe(true);
    expect(r.done_reason).toBe('stop');
    expectMetrics(r, 8);
    expect(upstream('/api/chat').map((x) => x.body)).toEqual([{ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }], stream: false }]);
  });

  it('chat with streaming yields token chunks, then one final done chunk with metrics', async () => {
    const chunks: ChatResponse[] = [];
    for await (const c of await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }], stream: true })) chunks.push(c);
    expect(chunks).toHaveLength(9);
    expect(chunks.slice(0, -1).every((c) => c.done === false && c.message.role === 'assistant')).toBe(true);
    expect(chunks.map((c) => c.message.content).join('')).toBe(simReplyText('Hello there', 8));
    const last = chunks.at(-1)!;
    expect([last.done, last.done_reason, last.message.content]).toEqual([true, 'stop', '']);
    expectMetrics(last, 8);
  });

  it('generate without streaming returns the response, context and metrics', async () => {
    const r = await h.ollama.generate({ model: 'llama3.2', prompt: 'Write a haiku' });
    expect(r.response).toBe(simReplyText('Write a haiku', 8));
    expect([r.done, r.done_reason]).toEqual([true, 'stop']);
    expect(r.context.length).toBeGreaterThan(0);
    expect(r.context.every((t) => Number.isInteger(t))).toBe(true);
    expectMetrics(r, 8);
  });

  it('generate with streaming yields the same text as without, ending in a done chunk', async () => {
    const parts: Array<string | undefined> = [];
    let final: { done: boolean; done_reason: string; context: number[] } | undefined;
    for await (const c of await h.ollama.generate({ model: 'llama3.2', prompt: 'Write a haiku', stream: true })) {
      parts.push(c.response);
      if (c.done) final = c;
    }
    expect(parts.join('')).toBe(simReplyText('Write a haiku', 8));
    expect(final?.done_reason).toBe('stop');
    expect(final?.context.length).toBeGreaterThan(0);
    expect(parts).toHaveLength(9);
    expect(parts.every((p) => typeof p === 'string')).toBe(true);
  });

  it('chat honours options.num_predict: done_reason length and eval_count 1', async () => {
    const r = await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello' }], options: { num_predict: 1 } });
    expect(r.done_reason).toBe('length');
    expect(r.eval_count).toBe(1);
  });
});

describe('ollama-js model management through Parley', () => {
  useHarness();
  it('version reports the upstream Ollama version', async () => {
    expect(await h.ollama.version()).toEqual({ version: '0.12.3' });
  });

  it('list shows the installed models with full digests and details', async () => {
    const { models } = await h.ollama.list();
    expect(models.map((m) => m.name)).toEqual(['llama3.2:latest', 'qwen3:latest', 'nomic-embed-text:latest']);
    for (const m of models) {
      expect(m.model).toBe(m.name);
      expect(m.digest).toMatch(HEX64);
      expect(m.size).toBeGreaterThan(0);
      expect(Number.isNaN(new Date(m.modified_at).getTime())).toBe(false);
      expect(m.details).toMatchObject({ format: 'gguf', family: expect.any(String), parameter_size: expect.any(String), quantization_level: expect.any(String) });
    }
  });

  it('show returns capabilities and details; an unknown model throws 404 with the tagged name', async () => {
    const show = await h.ollama.show({ model: 'qwen3' });
    expect(show.capabilities).toEqual(['completion', 'tools', 'thinking']);
    expect(show.details.family).toBeTypeOf('string');
    expect(show.model_info).toBeTypeOf('object');
    await expect(h.ollama.show({ model: 'nope' })).rejects.toMatchObject({ name: 'ResponseError', status_code: 404, error: "model 'nope:latest' not found" });
  });

  it('ps lists the model a request just loaded, with expires_at and size_vram', async () => {
    expect((await h.ollama.ps()).models).toEqual([]);
    await h.ollama.generate({ model: 'llama3.2', prompt: 'hi' });
    const { models } = await h.ollama.ps();
    expect(models.map((m) => m.name)).toEqual(['llama3.2:latest']);
    expect(new Date(models[0]!.expires_at).getTime()).toBeGreaterThan(Date.now());
    expect(models[0]!.size_vram).toBeGreaterThan(0);
  });

  it('pull streams progress ending in success; the pulled model is then listed and can chat', async () => {
    const progress: Array<{ status: string; total?: number; completed?: number; digest?: string }> = [];
    for await (const p of await h.ollama.pull({ model: 'tinyllama', stream: true })) progress.push(p);
    expect(progress[0]?.status).toBe('pulling manifest');
    expect(progress.at(-1)?.status).toBe('success');
    const layer = progress.find((p) => p.total && p.completed);
    expect(layer?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(layer!.completed!).toBeLessThanOrEqual(layer!.total!);
    // ollama-js sends the legacy `name`; Parley relays the body unchanged.
    expect(upstream('/api/pull')[0]?.body).toMatchObject({ name: 'tinyllama', stream: true });
    expect((await h.ollama.list()).models.map((m) => m.name)).toContain('tinyllama:latest');
    const r = await h.ollama.chat({ model: 'tinyllama', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.done).toBe(true);
  });

  it('pull without streaming returns the final success object', async () => {
    expect(await h.ollama.pull({ model: 'all-minilm' })).toEqual({ status: 'success' });
    expect((await h.ollama.list()).models.map((m) => m.name)).toContain('all-minilm:latest');
  });

  it('embed returns one L2-normalised vector per input', async () => {
    const r = await h.ollama.embed({ model: 'nomic-embed-text', input: ['first text', 'second text'] });
    expect(r.model).toBe('nomic-embed-text');
    expect(r.embeddings).toHaveLength(2);
    for (const v of r.embeddings) {
      expect(v).toHaveLength(8);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(r.embeddings[0]).not.toEqual(r.embeddings[1]);
  });

  it('copy makes a new model name that lists and chats', async () => {
    expect(await h.ollama.copy({ source: 'llama3.2', destination: 'my-llama' })).toEqual({ status: 'success' });
    expect((await h.ollama.list()).models.map((m) => m.name)).toContain('my-llama:latest');
    const r = await h.ollama.chat({ model: 'my-llama', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.message.content).toBe(simReplyText('hi', 8));
  });

  it('delete removes a model; deleting it again throws 404', async () => {
    await h.ollama.copy({ source: 'llama3.2', destination: 'scratch' });
    expect(await h.ollama.delete({ model: 'scratch' })).toEqual({ status: 'success' });
    expect((await h.ollama.list()).models.map((m) => m.name)).not.toContain('scratch:latest');
    await expect(h.ollama.delete({ model: 'scratch' })).rejects.toMatchObject({ status_code: 404, error: "model 'scratch' not found" });
  });
});

describe('ollama-js abort through Parley', () => {
  // Two slots so two streams run upstream at once (Parley's default is one, like OLLAMA_NUM_PARALLEL=1).
  useHarness({ config: { queue: { slotsPerUpstream: 2 } } });
  it("the iterator's abort() mid-stream cancels the upstream request, and the next request is served", async () => {
    h.sim.setOptions({ tokenIntervalMs: 20, replyTokens: 200 });
    const stream = await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'long story' }], stream: true });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of stream) if (++n === 3) stream.abort();
      })(),
    ).rejects.toThrow(/abort/i);
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat' && r.aborted));
    const rec = upstream('/api/chat')[0]!;
    expect(rec.finishedAt).toBeUndefined();
    await h.sim.waitFor(() => h.sim.active === 0);
    h.sim.setOptions({ tokenIntervalMs: 0, replyTokens: 8 });
    const next = await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'next' }] });
    expect(next.message.content).toBe(simReplyText('next', 8));
  });

  it('ollama.abort() cancels every ongoing stream upstream', async () => {
    h.sim.setOptions({ tokenIntervalMs: 20, replyTokens: 200, parallel: 2 });
    const a = await h.ollama.generate({ model: 'llama3.2', prompt: 'a', stream: true });
    const b = await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'b' }], stream: true });
    const drain = async (it: AsyncIterable<unknown>) => {
      let got = 0;
      try {
        for await (const _ of it) got++;
      } catch (e) {
        return { got, error: e as Error };
      }
      return { got, error: undefined };
    };
    const pending = [drain(a), drain(b)];
    await h.sim.waitFor((rs) => rs.filter((r) => r.firstByteAt !== undefined && (r.path === '/api/chat' || r.path === '/api/generate')).length === 2);
    h.ollama.abort();
    const results = await Promise.all(pending);
    for (const r of results) {
      expect(r.error?.name).toBe('AbortError');
      expect(r.got).toBeLessThan(200);
    }
    await h.sim.waitFor((rs) => rs.filter((r) => (r.path === '/api/chat' || r.path === '/api/generate') && r.aborted).length === 2);
  });
});
