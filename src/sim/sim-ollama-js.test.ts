import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ollama } from 'ollama';
import { simReplyText, startSimulator, type Simulator } from './index.js';

/** The official JS client against the simulator: what a user of ollama-js would see. */

let sim: Simulator;
let ollama: Ollama;

beforeEach(async () => {
  sim = await startSimulator();
  ollama = new Ollama({ host: sim.url });
});
afterEach(async () => {
  await sim.close();
});

describe('ollama-js against the simulator', () => {
  it('chats without streaming', async () => {
    const r = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }] });
    expect(r.message).toEqual({ role: 'assistant', content: simReplyText('Hello there', 8) });
    expect(r.done).toBe(true);
    expect(r.eval_count).toBe(8);
  });

  it('chats with streaming and the iterator ends cleanly on done', async () => {
    const parts: string[] = [];
    let doneReason = '';
    for await (const chunk of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }], stream: true })) {
      parts.push(chunk.message.content);
      if (chunk.done) doneReason = chunk.done_reason;
    }
    expect(parts.join('')).toBe(simReplyText('Hello there', 8));
    expect(doneReason).toBe('stop');
  });

  it('generates with and without streaming', async () => {
    const whole = await ollama.generate({ model: 'llama3.2', prompt: 'Write a haiku' });
    expect(whole.response).toBe(simReplyText('Write a haiku', 8));
    expect(whole.context.length).toBeGreaterThan(0);
    let streamed = '';
    for await (const c of await ollama.generate({ model: 'llama3.2', prompt: 'Write a haiku', stream: true })) streamed += c.response;
    expect(streamed).toBe(whole.response);
  });

  it('lists, shows and reports running models', async () => {
    const list = await ollama.list();
    expect(list.models.map((m) => m.name)).toEqual(['llama3.2:latest', 'qwen3:latest', 'nomic-embed-text:latest']);
    const show = await ollama.show({ model: 'llama3.2' });
    expect(show.capabilities).toEqual(['completion', 'tools']);
    expect(show.details.family).toBe('llama');
    await ollama.generate({ model: 'llama3.2', prompt: 'hi' });
    const ps = await ollama.ps();
    expect(ps.models.map((m) => m.name)).toEqual(['llama3.2:latest']);
    expect(ps.models[0]?.size_vram).toBe(ps.models[0]?.size);
  });

  it('pulls with progress (sending legacy name) and the new model is listed', async () => {
    const statuses: string[] = [];
    let sawCompleted = false;
    for await (const p of await ollama.pull({ model: 'tinyllama', stream: true })) {
      statuses.push(p.status);
      if (p.completed && p.total) sawCompleted = true;
    }
    expect(statuses[0]).toBe('pulling manifest');
    expect(statuses.at(-1)).toBe('success');
    expect(sawCompleted).toBe(true);
    expect(sim.requests.at(-1)?.body).toMatchObject({ name: 'tinyllama', stream: true });
    expect((await ollama.list()).models[0]?.name).toBe('tinyllama:latest');
  });

  it('throws the mid-stream pull error for a model the registry does not have', async () => {
    const run = async () => {
      for await (const _ of await ollama.pull({ model: 'no-such-model', stream: true })) void _;
    };
    await expect(run()).rejects.toThrow('pull model manifest: file does not exist');
  });

  it('embeds', async () => {
    const r = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
    expect(r.embeddings).toHaveLength(2);
    expect(r.embeddings[0]).toHaveLength(8);
  });

  it('copies and deletes models; deleting a missing one throws 404', async () => {
    await ollama.copy({ source: 'llama3.2', destination: 'my-llama' });
    expect((await ollama.list()).models.map((m) => m.name)).toContain('my-llama:latest');
    await ollama.delete({ model: 'my-llama' });
    expect((await ollama.list()).models.map((m) => m.name)).not.toContain('my-llama:latest');
    await expect(ollama.delete({ model: 'my-llama' })).rejects.toMatchObject({ status_code: 404, error: "model 'my-llama' not found" });
  });

  it('surfaces a 404 for an unknown model as ResponseError', async () => {
    await expect(ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status_code: 404, error: "model 'nope' not found" });
  });

  it('records an abort from the iterator and frees the slot for the next request', async () => {
    sim.setOptions({ tokenIntervalMs: 20, replyTokens: 200 });
    const stream = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'long story' }], stream: true });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of stream) {
          if (++n === 3) stream.abort();
        }
      })(),
    ).rejects.toThrow();
    await sim.waitFor((rs) => rs[0]?.aborted === true);
    const rec = sim.requests[0];
    expect(rec?.abortedAt).toBeGreaterThanOrEqual(rec?.firstByteAt ?? 0);
    await sim.waitFor(() => sim.active === 0);
    sim.setOptions({ tokenIntervalMs: 0, replyTokens: 8 });
    const next = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'next' }] });
    expect(next.done).toBe(true);
  });

  it('records ollama.abort() of every ongoing stream', async () => {
    sim.setOptions({ ttftMs: 50, tokenIntervalMs: 20, replyTokens: 100, parallel: 2 });
    const a = await ollama.generate({ model: 'llama3.2', prompt: 'a', stream: true });
    const b = await ollama.generate({ model: 'llama3.2', prompt: 'b', stream: true });
    const drain = async (it: AsyncIterable<unknown>) => {
      try {
        for await (const _ of it) void _;
      } catch {
        /* aborted */
      }
    };
    const pending = [drain(a), drain(b)];
    ollama.abort();
    await Promise.all(pending);
    await sim.waitFor((rs) => rs.length === 2 && rs.every((r) => r.aborted));
  });

  it('throws on a trailing mid-stream error line', async () => {
    sim.setFaults({ errorAfterTokens: 2 });
    const got: string[] = [];
    const run = async () => {
      for await (const c of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true })) got.push(c.message.content);
    };
    await expect(run()).rejects.toThrow('simulated mid-stream failure');
    expect(got).toHaveLength(2);
  });

  it('throws when a stream ends without done (repetition guard)', async () => {
    sim.setFaults({ endWithoutDone: true });
    const run = async () => {
      for await (const _ of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true })) void _;
    };
    await expect(run()).rejects.toThrow('Did not receive done or success response in stream.');
  });
});
