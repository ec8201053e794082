import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { callSim, ndjsonLines as lines, type Json } from '../../test/helpers/sim-http.js';
import { countTokens, simReplyText, startSimulator, type Simulator } from './index.js';

let sim: Simulator;
const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callSim(sim.url, method, path, body, headers);

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

describe('root, version and router', () => {
  it('answers GET / with "Ollama is running" as text/plain; charset=utf-8', async () => {
    const r = await call('GET', '/');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/plain; charset=utf-8');
    expect(r.text).toBe('Ollama is running');
  });

  it('answers HEAD / with 200, Content-Length 17 and no body', async () => {
    const r = await call('HEAD', '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('17');
    expect(r.text).toBe('');
  });

  it('serves /api/version on GET and HEAD', async () => {
    expect(JSON.parse((await call('GET', '/api/version')).text)).toEqual({ version: '0.12.3' });
    expect((await call('HEAD', '/api/version')).status).toBe(200);
  });

  it('answers an unknown path with plain-text "404 page not found"', async () => {
    const r = await call('GET', '/api/nothing-here');
    expect([r.status, r.type, r.text]).toEqual([404, 'text/plain', '404 page not found']);
  });

  it('answers a known path with the wrong method with "405 method not allowed"', async () => {
    const r = await call('GET', '/api/chat');
    expect([r.status, r.type, r.text]).toEqual([405, 'text/plain', '405 method not allowed']);
  });

  it('redirects a trailing slash like gin (301 for GET)', async () => {
    const res = await request(sim.url + '/api/tags/', { method: 'GET' });
    await res.body.text();
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe('/api/tags');
  });
});

describe('request bodies and model names', () => {
  it('rejects an empty body with 400 "missing request body"', async () => {
    const r = await call('POST', '/api/chat', '');
    expect(r.status).toBe(400);
    expect(r.type).toBe('application/json; charset=utf-8');
    expect(JSON.parse(r.text)).toEqual({ error: 'missing request body' });
  });

  it('rejects malformed JSON with Go json error texts', async () => {
    expect(JSON.parse((await call('POST', '/api/chat', '{"model": x}')).text)).toEqual({ error: "invalid character 'x' looking for beginning of value" });
    expect(JSON.parse((await call('POST', '/api/chat', '{"model":"llama3.2"')).text)).toEqual({ error: 'unexpected EOF' });
    const wrongType = await call('POST', '/api/chat', { model: 5 });
    expect(wrongType.status).toBe(400);
    expect(JSON.parse(wrongType.text).error).toBe('json: cannot unmarshal number into Go struct field ChatRequest.model of type string');
  });

  it('answers chat without a model 400 "model is required" but generate 404 "model \'\' not found"', async () => {
    expect(await call('POST', '/api/chat', { messages: [] })).toMatchObject({ status: 400, text: '{"error":"model is required"}' });
    expect(await call('POST', '/api/generate', { prompt: 'hi' })).toMatchObject({ status: 404, text: `{"error":"model '' not found"}` });
  });

  it('answers an unknown model 404 with the name as sent, as JSON (not an NDJSON 200)', async () => {
    for (const path of ['/api/chat', '/api/generate']) {
      const r = await call('POST', path, { model: 'nope', messages: [{ role: 'user', content: 'x' }], prompt: 'x' });
      expect([r.status, r.type, r.text]).toEqual([404, 'application/json; charset=utf-8', `{"error":"model 'nope' not found"}`]);
    }
  });

  it('matches model names case-insensitively with :latest defaulted, echoing the name sent', async () => {
    const r = await call('POST', '/api/chat', { model: 'LLAMA3.2', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).model).toBe('LLAMA3.2');
  });
});

describe('/api/generate', () => {
  it('streams response fragments and ends with context', async () => {
    const ls = lines((await call('POST', '/api/generate', { model: 'llama3.2', prompt: 'Tell me a story' })).text);
    const last = ls.at(-1) as Json;
    expect(ls.slice(0, -1).map((l) => l.response).join('')).toBe(simReplyText('Tell me a story', 8));
    expect(last).toMatchObject({ response: '', done: true, done_reason: 'stop', prompt_eval_count: countTokens('Tell me a story') + 4, eval_count: 8 });
    expect(Array.isArray(last.context) && last.context.every(Number.isInteger)).toBe(true);
  });

  it('leaves context out with raw:true and rejects raw with system', async () => {
    const raw = JSON.parse((await call('POST', '/api/generate', { model: 'llama3.2', prompt: 'x y', raw: true, stream: false })).text);
    expect('context' in raw).toBe(false);
    expect(raw.prompt_eval_count).toBe(2);
    const bad = await call('POST', '/api/generate', { model: 'llama3.2', prompt: 'x', raw: true, system: 's' });
    expect([bad.status, JSON.parse(bad.text).error]).toEqual([400, 'raw mode does not support template, system, or context']);
  });

  it('answers an empty prompt with a load object carrying done_reason load', async () => {
    const o = JSON.parse((await call('POST', '/api/generate', { model: 'llama3.2' })).text);
    expect(o).toMatchObject({ model: 'llama3.2', response: '', done: true, done_reason: 'load' });
  });
});

describe('keep_alive and /api/ps', () => {
  it('rejects a bare numeric string with 400 "time: missing unit in duration"', async () => {
    const r = await call('POST', '/api/generate', { model: 'llama3.2', keep_alive: '10' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error).toBe('time: missing unit in duration "10"');
  });

  it('keeps a model for ever with -1, sticky across requests without keep_alive', async () => {
    await call('POST', '/api/generate', { model: 'qwen3', keep_alive: -1 });
    await call('POST', '/api/generate', { model: 'qwen3', prompt: 'hello', stream: false });
    const ps = JSON.parse((await call('GET', '/api/ps')).text);
    const q = ps.models.find((m: Json) => m.name === 'qwen3:latest');
    expect(new Date(q.expires_at).getUTCFullYear()).toBeGreaterThan(2200);
    expect(q).toMatchObject({ model: 'qwen3:latest', size_vram: q.size, context_length: 4096 });
    expect(q.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('counts numeric keep_alive in seconds and accepts Go durations', async () => {
    await call('POST', '/api/generate', { model: 'llama3.2', keep_alive: 300 });
    let m = JSON.parse((await call('GET', '/api/ps')).text).models.find((x: Json) => x.name === 'llama3.2:latest');
    expect(Math.abs(new Date(m.expires_at).getTime() - Date.now() - 300_000)).toBeLessThan(5_000);
    await call('POST', '/api/generate', { model: 'llama3.2', keep_alive: '10m' });
    m = JSON.parse((await call('GET', '/api/ps')).text).models.find((x: Json) => x.name === 'llama3.2:latest');
    expect(Math.abs(new Date(m.expires_at).getTime() - Date.now() - 600_000)).toBeLessThan(5_000);
  });
});

describe('embeddings', () => {
  it('returns deterministic L2-normalised vectors for a string or an array', async () => {
    const a = JSON.parse((await call('POST', '/api/embed', { model: 'nomic-embed-text', input: ['hello', 'world'] })).text);
    expect(a.embeddings).toHaveLength(2);
    for (const v of a.embeddings as number[][]) expect(Math.abs(Math.hypot(...v) - 1)).toBeLessThan(1e-5);
    const b = JSON.parse((await call('POST', '/api/embed', { model: 'nomic-embed-text', input: 'hello' })).text);
    expect(b.embeddings[0]).toEqual(a.embeddings[0]);
    expect(b.prompt_eval_count).toBe(1);
  });

  it('rejects other input types and unknown models with Ollama texts', async () => {
    const bad = await call('POST', '/api/embed', { model: 'nomic-embed-text', input: 5 });
    expect([bad.status, JSON.parse(bad.text).error]).toEqual([400, 'invalid input type']);
    const nf = await call('POST', '/api/embed', { model: 'nope', input: 'x' });
    expect([nf.status, JSON.parse(nf.text).error]).toEqual([404, 'model "nope" not found, try pulling it first']);
  });

  it('returns an un-normalised vector from legacy /api/embeddings, [] for an empty prompt', async () => {
    const o = JSON.parse((await call('POST', '/api/embeddings', { model: 'nomic-embed-text', prompt: 'hello' })).text);
    expect(o.embedding).toHaveLength(8);
    expect(Math.abs(Math.hypot(...(o.embedding as number[])) - 1)).toBeGreaterThan(1e-3);
    expect(JSON.parse((await call('POST', '/api/embeddings', { model: 'nomic-embed-text' })).text)).toEqual({ embedding: [] });
  });
});

describe('/api/tags and /api/show', () => {
  it('lists models newest first with 64-hex digests and details', async () => {
    const { models } = JSON.parse((await call('GET', '/api/tags')).text);
    const times = models.map((m: Json) => new Date(m.modified_at).getTime());
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    for (const m of models) {
      expect(m.name).toBe(m.model);
      expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.keys(m.details)).toEqual(['parent_model', 'format', 'family', 'families', 'parameter_size', 'quantization_level']);
    }
  });

  it('answers {"models":[]} with no models installed', async () => {
    const empty = await startSimulator({ models: [] });
    try {
      const res = await request(empty.url + '/api/tags');
      expect(await res.body.text()).toBe('{"models":[]}');
    } finally {
      await empty.close();
    }
  });

  it('shows model_info, capabilities and a normalised 404', async () => {
    const o = JSON.parse((await call('POST', '/api/show', { model: 'qwen3' })).text);
    expect(o.model_info['general.architecture']).toBe('qwen3');
    expect(o.model_info['qwen3.context_length']).toBe(4096);
    expect(o.capabilities).toEqual(['completion', 'tools', 'thinking']);
    const nf = await call('POST', '/api/show', { model: 'nope' });
    expect([nf.status, nf.text]).toEqual([404, `{"error":"model 'nope:latest' not found"}`]);
  });
});
