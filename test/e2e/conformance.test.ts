import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { simReplyText } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ndjson, raw } from './raw-http.js';

/**
 * Ollama wire conformance (reference ollama-api.md §8), over raw HTTP against Parley in front of
 * the simulator: status lines, content types and body bytes as a stock client sees them.
 * Failure cases are in conformance-errors.test.ts.
 */

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const RFC3339_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };
const upstreamBodies = (path: string) => h.sim.requests.filter((r) => r.path === path).map((r) => r.body as Record<string, unknown>);

function expectIntegerMetrics(o: Record<string, unknown>): void {
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'eval_count', 'eval_duration']) {
    expect(Number.isInteger(o[k]), k).toBe(true);
  }
}

describe('liveness and version (§8.1, §8.2)', () => {
  it("GET / answers 200 text/plain; charset=utf-8 'Ollama is running'", async () => {
    const r = await raw(h.url, '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.text).toBe('Ollama is running');
  });

  it('HEAD / answers 200 with no body', async () => {
    const r = await raw(h.url, '/', { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.bytes.length).toBe(0);
  });

  it('GET /api/version answers the upstream version as JSON; HEAD /api/version answers 200', async () => {
    const r = await raw(h.url, '/api/version');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(r.text)).toEqual({ version: '0.12.3' });
    const head = await raw(h.url, '/api/version', { method: 'HEAD' });
    expect([head.status, head.bytes.length]).toEqual([200, 0]);
  });
});

describe('chat and generate streams (§8.3-§8.6)', () => {
  it('chat without `stream` streams application/x-ndjson lines ending with one done:true line', async () => {
    const r = await raw(h.url, '/api/chat', { body: hi });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const lines = ndjson(r.text);
    expect(lines).toHaveLength(9);
    for (const l of lines) {
      expect(l.model).toBe('llama3.2');
      expect(l.created_at).toMatch(RFC3339_Z);
      expect(l.message.role).toBe('assistant');
    }
    expect(lines.slice(0, -1).every((l) => l.done === false)).toBe(true);
    expect(lines.slice(0, -1).map((l) => l.message.content).join('')).toBe(simReplyText('hi', 8));
    const last = lines.at(-1)!;
    expect(last).toMatchObject({ done: true, done_reason: 'stop', message: { role: 'assistant', content: '' } });
    expectIntegerMetrics(last);
    // Parley forwards the request as sent: no `stream` field was added.
    expect(upstreamBodies('/api/chat')[0]).not.toHaveProperty('stream');
  });

  it('chat with stream:false answers one application/json object without a trailing newline', async () => {
    const r = await raw(h.url, '/api/chat', { body: { ...hi, stream: false } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.text.endsWith('\n')).toBe(false);
    expect(r.text.includes('\n')).toBe(false);
    const o = JSON.parse(r.text) as Record<string, any>;
    expect(o).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'stop', message: { role: 'assistant', content: simReplyText('hi', 8) } });
    expectIntegerMetrics(o);
  });

  it('generate streams response fragments and a final chunk with done_reason and a context array', async () => {
    const r = await raw(h.url, '/api/generate', { body: { model: 'llama3.2', prompt: 'Why is the sky blue?' } });
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const lines = ndjson(r.text);
    expect(lines.map((l) => l.response).join('')).toBe(simReplyText('Why is the sky blue?', 8));
    const last = lines.at(-1)!;
    expect(last).toMatchObject({ done: true, done_reason: 'stop' });
    expect(Array.isArray(last.context) && last.context.length > 0).toBe(true);
    expectIntegerMetrics(last);
  });

  it('generate with raw:true has no context in the final chunk', async () => {
    const lines = ndjson((await raw(h.url, '/api/generate', { body: { model: 'llama3.2', prompt: 'x', raw: true } })).text);
    expect(lines.at(-1)).toMatchObject({ done: true });
    expect(lines.at(-1)).not.toHaveProperty('context');
  });

  it('options.num_predict:1 ends with done_reason length and eval_count 1', async () => {
    const o = JSON.parse((await raw(h.url, '/api/chat', { body: { ...hi, stream: false, options: { num_predict: 1 } } })).text);
    expect([o.done_reason, o.eval_count]).toEqual(['length', 1]);
  });
});

describe('load and unload (§8.9)', () => {
  it('chat with empty messages answers a single load object, even though streaming is the default', async () => {
    const r = await raw(h.url, '/api/chat', { body: { model: 'llama3.2', messages: [] } });
    expect(r.status).toBe(200);
    expect(r.text.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.text)).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'load', message: { role: 'assistant', content: '' } });
    expect(h.sim.loadedModels()).toEqual(['llama3.2:latest']);
  });

  it('generate without a prompt answers a single load object', async () => {
    const r = await raw(h.url, '/api/generate', { body: { model: 'llama3.2' } });
    expect(JSON.parse(r.text)).toMatchObject({ response: '', done: true, done_reason: 'load' });
  });

  it("keep_alive 0 answers done_reason 'unload' and the model leaves /api/ps", async () => {
    await raw(h.url, '/api/chat', { body: { model: 'llama3.2', messages: [] } });
    expect(JSON.parse((await raw(h.url, '/api/ps')).text).models.map((m: { name: string }) => m.name)).toEqual(['llama3.2:latest']);
    const r = await raw(h.url, '/api/chat', { body: { model: 'llama3.2', messages: [], keep_alive: 0 } });
    expect(JSON.parse(r.text)).toMatchObject({ done: true, done_reason: 'unload' });
    await h.sim.waitFor(() => h.sim.loadedModels().length === 0);
    expect(JSON.parse((await raw(h.url, '/api/ps')).text)).toEqual({ models: [] });
  });
});

describe('tools and thinking (§8.11, §8.12)', () => {
  const tools = [
    {
      type: 'function',
      function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
    },
  ];
  const ask = { model: 'llama3.2', messages: [{ role: 'user', content: 'What is the weather in Tokyo?' }], tools };
  const expectedCall = { id: expect.stringMatching(/^call_[a-z0-9]{8}$/), function: { index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } } };

  it('streams a tool call whole in one chunk with content "" and arguments as an object, then done', async () => {
    const lines = ndjson((await raw(h.url, '/api/chat', { body: ask })).text);
    const withCalls = lines.filter((l) => l.message.tool_calls);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0]!.message.content).toBe('');
    expect(withCalls[0]!.message.tool_calls).toEqual([expectedCall]);
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' });
  });

  it('ollama-js gets the tool call with object arguments without streaming', async () => {
    const r = await h.ollama.chat(ask as Parameters<typeof h.ollama.chat>[0] & { stream?: false });
    expect(r.message.tool_calls).toEqual([expectedCall]);
    expect(typeof r.message.tool_calls?.[0]?.function.arguments).toBe('object');
  });

  it('a thinking model emits message.thinking without being asked, before the content', async () => {
    const lines = ndjson((await raw(h.url, '/api/chat', { body: { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] } })).text);
    const firstThinking = lines.findIndex((l) => l.message.thinking);
    const firstContent = lines.findIndex((l) => l.message.content);
    expect(firstThinking).toBeGreaterThanOrEqual(0);
    expect(firstThinking).toBeLessThan(firstContent);
    const r = await h.ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.message.thinking).toBe(lines.map((l) => l.message.thinking ?? '').join(''));
    expect(r.message.content).toBe(lines.map((l) => l.message.content).join(''));
  });
});

describe('pass-through', () => {
  it('fields Parley does not know reach the upstream unchanged', async () => {
    const extra = { x_custom: { nested: [1, 'two'] }, options: { mirostat: 2, temperature: 0.1 }, format: 'json', keep_alive: '10m', think: false };
    await raw(h.url, '/api/chat', { body: { ...hi, stream: false, ...extra } });
    await raw(h.url, '/api/generate', { body: { model: 'llama3.2', prompt: 'p', stream: false, suffix_hint: 'kept', options: { tfs_z: 1 } } });
    await raw(h.url, '/api/show', { body: { model: 'llama3.2', verbose: true } });
    expect(upstreamBodies('/api/chat')).toEqual([{ ...hi, stream: false, ...extra }]);
    expect(upstreamBodies('/api/generate')).toEqual([{ model: 'llama3.2', prompt: 'p', stream: false, suffix_hint: 'kept', options: { tfs_z: 1 } }]);
    expect(upstreamBodies('/api/show')).toEqual([{ model: 'llama3.2', verbose: true }]);
  });
});

describe('byte for byte', () => {
  /** Blanks what legitimately differs between two runs: timestamps and durations. */
  const normalise = (text: string) =>
    text
      .replace(/"(created_at|expires_at)":"[^"]*"/g, '"$1":"T"')
      .replace(/"(total|load|prompt_eval|eval)_duration":\d+/g, '"$1_duration":0');

  it.each([
    ['chat, streamed', '/api/chat', hi],
    ['chat, stream:false', '/api/chat', { ...hi, stream: false }],
    ['generate, streamed', '/api/generate', { model: 'llama3.2', prompt: 'Tell me <b>more</b> & more' }],
    ['generate, stream:false', '/api/generate', { model: 'llama3.2', prompt: 'x', stream: false }],
    ['embed', '/api/embed', { model: 'nomic-embed-text', input: ['a', 'b'] }],
    ['show', '/api/show', { model: 'qwen3' }],
    ['tags', '/api/tags', undefined],
    ['show, unknown model', '/api/show', { model: 'nope' }],
  ])('%s: Parley answers what Ollama answers, with the same status and content type', async (_name, path, body) => {
    const direct = await raw(h.sim.url, path, { body });
    const viaParley = await raw(h.url, path, { body });
    expect(viaParley.status).toBe(direct.status);
    expect(viaParley.headers['content-type']).toBe(direct.headers['content-type']);
    expect(normalise(viaParley.text)).toBe(normalise(direct.text));
  });
});
