/**
 * Model management end to end (docs/api.md "Model management"): start-up preload and
 * least-recently-used unloading at `models.maxLoadedBytes`, checked on what the simulator received
 * (it reports the default models' sizes in /api/ps: llama3.2 2,019,393,189 bytes, qwen3
 * 5,225,388,164, nomic-embed-text 274,302,450).
 */
import { afterEach, describe, expect, test } from 'vitest';
import type { RecordedRequest } from '../../src/sim/index.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { raw } from './raw-http.js';

type Json = Record<string, unknown>;
const MODEL_CALLS = new Set(['/api/chat', '/api/generate', '/api/embed', '/api/embeddings']);

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(opts: HarnessOptions): Promise<Harness> {
  h = await startHarness({ ...opts, config: { shutdown: { drainTimeoutMs: 500 }, ...opts.config } });
  return h;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const modelCalls = (harness: Harness): RecordedRequest[] => harness.sim.requests.filter((r) => MODEL_CALLS.has(r.path));

describe('model management', () => {
  test('models.preload: at start-up the simulator receives the empty load request with the default keep_alive, before any user request', async () => {
    const harness = await start({ config: { models: { preload: ['qwen3'], defaultKeepAlive: '30m' } } });
    const load = await until('the preload request', () => modelCalls(harness)[0]);
    // Ollama's load request: /api/generate with only model and keep_alive (no prompt).
    expect(load.path).toBe('/api/generate');
    expect(load.body).toEqual({ model: 'qwen3', keep_alive: '30m' });
    await until('qwen3 to be loaded', () => (harness.sim.loadedModels().includes('qwen3:latest') ? true : undefined));

    const res = await raw(harness.url, '/api/chat', { body: { model: 'qwen3', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 4 } } });
    expect(res.status).toBe(200);
    const calls = modelCalls(harness);
    expect(calls.map((r) => r.path)).toEqual(['/api/generate', '/api/chat']);
    expect(calls[0]!.id).toBeLessThan(calls[1]!.id);
    // The user request was answered by the model already loaded (no load time on it).
    expect((JSON.parse(res.text) as Json).load_duration).toBeLessThan(1e8);
  });

  test('models.maxLoadedBytes: past the limit the least recently requested idle model gets keep_alive 0, and only that one', async () => {
    // llama3.2 + nomic-embed-text + qwen3 = 7.52 GB > 6 GB; without llama3.2 (the least recently used) 5.50 GB fits.
    const harness = await start({ config: { models: { maxLoadedBytes: 6_000_000_000 }, upstream: { healthIntervalMs: 100 } } });
    const say = (model: string) => raw(harness.url, '/api/chat', { body: { model, messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 4 } } });
    expect((await say('llama3.2')).status).toBe(200);
    expect((await raw(harness.url, '/api/embed', { body: { model: 'nomic-embed-text', input: 'hello' } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    // 2.29 GB loaded so far: nothing is unloaded.
    expect(modelCalls(harness).filter((r) => (r.body as Json).keep_alive === 0)).toEqual([]);

    expect((await say('qwen3')).status).toBe(200);
    const unload = await until('an unload request', () => modelCalls(harness).find((r) => (r.body as Json).keep_alive === 0));
    expect(unload.path).toBe('/api/generate');
    expect(unload.body).toEqual({ model: 'llama3.2:latest', keep_alive: 0 });
    await until('llama3.2 to be unloaded', () => (harness.sim.loadedModels().includes('llama3.2:latest') ? undefined : true));
    expect(harness.sim.loadedModels().sort()).toEqual(['nomic-embed-text:latest', 'qwen3:latest']);
    await new Promise((r) => setTimeout(r, 300));
    expect(modelCalls(harness).filter((r) => (r.body as Json).keep_alive === 0)).toHaveLength(1);
  });
});
