import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { callSim, ndjsonLines as lines, RFC3339_NANO_UTC, type Json } from '../../test/helpers/sim-http.js';
import { chatPromptTokens, countTokens, simReplyText, startSimulator, type Simulator } from './index.js';

/** The simulator's /api/chat (the rest of its native API: sim-native.test.ts). */

let sim: Simulator;
const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callSim(sim.url, method, path, body, headers);

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

describe('/api/chat', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Why is the sky blue?' },
  ];

  it('streams NDJSON by default: chunks, then one done chunk with integer metrics', async () => {
    const r = await call('POST', '/api/chat', { model: 'llama3.2', messages });
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/x-ndjson');
    const ls = lines(r.text);
    const last = ls.pop() as Json;
    expect(ls).toHaveLength(8);
    for (const l of ls) {
      expect(Object.keys(l)).toEqual(['model', 'created_at', 'message', 'done']);
      expect(l.created_at).toMatch(RFC3339_NANO_UTC);
      expect(l.message.role).toBe('assistant');
      expect(l.done).toBe(false);
    }
    expect(ls.map((l) => l.message.content).join('')).toBe(simReplyText('Why is the sky blue?', 8));
    expect(last).toMatchObject({ model: 'llama3.2', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop' });
    expect(last.prompt_eval_count).toBe(chatPromptTokens(messages, undefined));
    expect(last.prompt_eval_count).toBe(countTokens('You are terse.') + 4 + countTokens('Why is the sky blue?') + 4);
    expect(last.eval_count).toBe(8);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) expect(Number.isInteger(last[k]) && last[k] > 0).toBe(true);
  });

  it('answers stream:false with one JSON object, joined content and no trailing newline', async () => {
    const r = await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false });
    expect(r.type).toBe('application/json; charset=utf-8');
    expect(r.text.endsWith('\n')).toBe(false);
    const o = JSON.parse(r.text);
    expect(o).toMatchObject({ done: true, done_reason: 'stop', eval_count: 8, message: { role: 'assistant', content: simReplyText('Why is the sky blue?', 8) } });
  });

  it('is deterministic: the same request gives the same reply', async () => {
    const a = JSON.parse((await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false })).text);
    const b = JSON.parse((await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false })).text);
    expect(a.message.content).toBe(b.message.content);
  });

  it('escapes < > & the way Go does', async () => {
    sim.setOptions({ script: ['a <b> & c'] });
    const r = await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false });
    expect(r.text).toContain('a \\u003cb\\u003e \\u0026 c');
    expect(JSON.parse(r.text).message.content).toBe('a <b> & c');
  });

  it('limits the reply with options.num_predict (done_reason length)', async () => {
    const o = JSON.parse((await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false, options: { num_predict: 1 } })).text);
    expect(o).toMatchObject({ done_reason: 'length', eval_count: 1 });
  });

  it('honours options.stop (done_reason stop)', async () => {
    sim.setOptions({ script: ['Hello there. STOP and more words'] });
    const o = JSON.parse((await call('POST', '/api/chat', { model: 'llama3.2', messages, stream: false, options: { stop: ['STOP'] } })).text);
    expect(o.message.content).toBe('Hello there. ');
    expect(o.done_reason).toBe('stop');
  });

  it('answers empty messages with one load object, even when streaming, and keep_alive 0 unloads', async () => {
    const load = await call('POST', '/api/chat', { model: 'llama3.2', messages: [] });
    expect(load.type).toBe('application/json; charset=utf-8');
    expect(JSON.parse(load.text)).toMatchObject({ model: 'llama3.2', message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    expect(sim.loadedModels()).toContain('llama3.2:latest');
    const unload = JSON.parse((await call('POST', '/api/chat', { model: 'llama3.2', keep_alive: 0 })).text);
    expect(unload.done_reason).toBe('unload');
    expect(sim.loadedModels()).not.toContain('llama3.2:latest');
  });

  it('emits thinking first for a thinking model when think is absent, none with think:false', async () => {
    const ls = lines((await call('POST', '/api/chat', { model: 'qwen3', messages })).text);
    const kinds = ls.slice(0, -1).map((l) => (l.message.thinking ? 'thinking' : 'content'));
    expect(kinds.indexOf('content')).toBeGreaterThan(0);
    expect(kinds.lastIndexOf('thinking')).toBeLessThan(kinds.indexOf('content'));
    expect(ls.at(-1)?.eval_count).toBe(4 + 8);
    const off = lines((await call('POST', '/api/chat', { model: 'qwen3', messages, think: false })).text);
    expect(off.some((l) => 'thinking' in l.message)).toBe(false);
  });

  it('rejects think on a non-thinking model and invalid think values', async () => {
    const r = await call('POST', '/api/chat', { model: 'llama3.2', messages, think: true });
    expect([r.status, r.text]).toEqual([400, '{"error":"\\"llama3.2\\" does not support thinking"}']);
    const bad = await call('POST', '/api/chat', { model: 'qwen3', messages, think: 'extreme' });
    expect(JSON.parse(bad.text).error).toBe('invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false)');
  });

  const weatherTool = { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };

  it('answers a "weather" question with one whole tool_calls chunk whose arguments are an object', async () => {
    const ls = lines((await call('POST', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'What is the weather in Tokyo?' }], tools: [weatherTool] })).text);
    expect(ls).toHaveLength(2);
    const call0 = ls[0]?.message.tool_calls[0];
    expect(ls[0]?.message.content).toBe('');
    expect(call0.id).toMatch(/^call_[a-z0-9]{8}$/);
    expect(call0.function).toEqual({ index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } });
    expect(ls[1]).toMatchObject({ done: true, done_reason: 'stop' });
  });

  it('rejects tools on a model without tool support and chat on an embedding model', async () => {
    const noTools = await startSimulator({ models: [{ name: 'gemma:latest' }] });
    try {
      const res = await request(noTools.url + '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'gemma', messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool] }) });
      expect(res.statusCode).toBe(400);
      expect(await res.body.json()).toEqual({ error: 'registry.ollama.ai/library/gemma:latest does not support tools' });
    } finally {
      await noTools.close();
    }
    const r = await call('POST', '/api/chat', { model: 'nomic-embed-text', messages });
    expect([r.status, JSON.parse(r.text).error]).toEqual([400, '"nomic-embed-text" does not support chat']);
  });

  it('truncates the prompt to the context silently but records the full count', async () => {
    const small = await startSimulator({ models: [{ name: 'tiny:latest', contextLength: 16 }] });
    try {
      const content = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen';
      const res = await request(small.url + '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], stream: false }) });
      const o = (await res.body.json()) as Json;
      expect(o.prompt_eval_count).toBe(16);
      expect(small.requests[0]?.promptTokens).toBe(countTokens(content) + 4);
    } finally {
      await small.close();
    }
  });
});
