import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { countTokens, startSimulator, type Simulator } from './index.js';

type Json = Record<string, any>;

let sim: Simulator;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(sim.url + path, {
    method: method as 'GET',
    headers,
    body: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), headers: res.headers, text };
}

beforeEach(async () => {
  sim = await startSimulator();
});
afterEach(async () => {
  await sim.close();
});

describe('blobs', () => {
  const data = Buffer.from('pretend this is a GGUF file');
  const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');

  it('creates a blob whose streamed body matches its digest (201), then says it exists (HEAD 200, POST 200)', async () => {
    expect((await call('HEAD', `/api/blobs/${digest}`)).status).toBe(404);
    const chunks = Readable.from([data.subarray(0, 5), data.subarray(5)]);
    const res = await request(sim.url + `/api/blobs/${digest}`, { method: 'POST', body: chunks });
    expect([res.statusCode, await res.body.text()]).toEqual([201, '']);
    expect((await call('HEAD', `/api/blobs/${digest}`)).status).toBe(200);
    expect((await call('POST', `/api/blobs/${digest}`, data)).status).toBe(200);
  });

  it('rejects a body that does not hash to the digest', async () => {
    const wrong = 'sha256:' + '0'.repeat(64);
    const r = await call('POST', `/api/blobs/${wrong}`, data);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error).toBe(`digest mismatch, expected "${wrong}", got "${digest}"`);
  });

  it('rejects a malformed digest with 400', async () => {
    expect((await call('HEAD', '/api/blobs/sha256:xyz')).status).toBe(400);
    const r = await call('POST', '/api/blobs/md5:abc', data);
    expect([r.status, JSON.parse(r.text).error]).toEqual([400, 'invalid digest format']);
  });
});

describe('create, copy, delete, pull, push', () => {
  it('creates a model from an existing one with status lines ending in success', async () => {
    const r = await call('POST', '/api/create', { model: 'pirate', from: 'llama3.2', system: 'Talk like a pirate.' });
    expect(r.type).toBe('application/x-ndjson');
    const ls = r.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Json);
    expect(ls.some((l) => String(l.status).startsWith('using existing layer sha256:'))).toBe(true);
    expect(ls.at(-1)).toEqual({ status: 'success' });
    const show = JSON.parse((await call('POST', '/api/show', { model: 'pirate' })).text);
    expect(show.system).toBe('Talk like a pirate.');
    expect(show.capabilities).toEqual(['completion', 'tools']);
  });

  it('rejects create without from or files', async () => {
    const r = await call('POST', '/api/create', { model: 'x' });
    expect([r.status, JSON.parse(r.text).error]).toEqual([400, "neither 'from' or 'files' was specified"]);
  });

  it('copies with a 200 empty body and 404 `model "x" not found` for a missing source', async () => {
    const ok = await call('POST', '/api/copy', { source: 'llama3.2', destination: 'llama-copy' });
    expect([ok.status, ok.text, ok.type]).toEqual([200, '', '']);
    const nf = await call('POST', '/api/copy', { source: 'missing', destination: 'y' });
    expect([nf.status, nf.text]).toEqual([404, '{"error":"model \\"missing\\" not found"}']);
  });

  it('deletes with a 200 empty body (legacy name accepted) and 404 `model \'x\' not found`', async () => {
    const ok = await call('DELETE', '/api/delete', { name: 'qwen3' });
    expect([ok.status, ok.text]).toEqual([200, '']);
    const nf = await call('DELETE', '/api/delete', { model: 'qwen3' });
    expect([nf.status, nf.text]).toEqual([404, `{"error":"model 'qwen3' not found"}`]);
  });

  it('returns only the last progress object for pull with stream:false', async () => {
    const r = await call('POST', '/api/pull', { model: 'tinyllama', stream: false });
    expect([r.status, r.text]).toEqual([200, '{"status":"success"}']);
  });

  it('pushes with retrieving manifest, per-layer progress and success', async () => {
    const ls = (await call('POST', '/api/push', { name: 'llama3.2' })).text.trimEnd().split('\n').map((l) => JSON.parse(l) as Json);
    expect(ls[0]).toEqual({ status: 'retrieving manifest' });
    expect(ls.some((l) => /^pushing [0-9a-f]{12}$/.test(l.status) && l.completed === l.total)).toBe(true);
    expect(ls.slice(-2)).toEqual([{ status: 'pushing manifest' }, { status: 'success' }]);
  });
});

describe('Host and CORS guards', () => {
  it('answers 403 with an empty body for a foreign Host', async () => {
    const r = await call('GET', '/api/tags', undefined, { host: 'evil.example.com' });
    expect([r.status, r.text]).toEqual([403, '']);
    expect(sim.requests.at(-1)?.headers.host).toBe('evil.example.com');
  });

  it('allows localhost, private IPs, *.localhost, *.local and *.internal', async () => {
    for (const host of ['localhost:11434', '192.168.1.5:11434', 'app.localhost', 'box.local', 'svc.internal', '[::1]:11434']) {
      expect((await call('GET', '/', undefined, { host })).status).toBe(200);
    }
  });

  it('does not guard when disabled', async () => {
    const open = await startSimulator({ checkHost: false });
    try {
      const r = await request(open.url + '/', { headers: { host: 'evil.example.com' } });
      expect(await r.body.text()).toBe('Ollama is running');
    } finally {
      await open.close();
    }
  });

  it('rejects a foreign Origin with 403 and answers an allowed preflight with 204', async () => {
    expect((await call('GET', '/api/tags', undefined, { origin: 'https://evil.example.com' })).status).toBe(403);
    const pre = await call('OPTIONS', '/api/chat', undefined, { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('http://localhost:3000');
  });
});

describe('/v1 (OpenAI compatibility)', () => {
  const body = { model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there' }] };

  it('answers non-streaming by default with chat.completion and usage', async () => {
    const o = JSON.parse((await call('POST', '/v1/chat/completions', body)).text);
    expect(o).toMatchObject({ object: 'chat.completion', model: 'llama3.2', system_fingerprint: 'fp_ollama', choices: [{ index: 0, finish_reason: 'stop' }] });
    expect(o.id).toMatch(/^chatcmpl-\d{1,3}$/);
    expect(o.usage).toEqual({ prompt_tokens: countTokens('Hello there') + 4, completion_tokens: 8, total_tokens: countTokens('Hello there') + 12 });
  });

  it('streams SSE: role delta, content deltas, finish chunk with delta {}, usage chunk, [DONE]', async () => {
    const r = await call('POST', '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
    expect(r.type).toBe('text/event-stream');
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as Json);
    expect(chunks[0]?.choices[0].delta.role).toBe('assistant');
    expect(chunks[1]?.choices[0].delta).toEqual({ content: expect.any(String) });
    const finish = chunks.at(-2) as Json;
    expect(finish.choices).toEqual([{ index: 0, delta: {}, finish_reason: 'stop' }]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 8 } });
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
  });

  it('returns tool calls with string arguments and finish_reason tool_calls', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const o = JSON.parse((await call('POST', '/v1/chat/completions', { model: 'llama3.2', messages: [{ role: 'user', content: 'weather in Oslo' }], tools })).text);
    expect(o.choices[0].finish_reason).toBe('tool_calls');
    expect(o.choices[0].message.tool_calls[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } });
  });

  it('uses the OpenAI error shape', async () => {
    const nf = await call('POST', '/v1/chat/completions', { ...body, model: 'x' });
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.text)).toEqual({ error: { message: "model 'x' not found", type: 'not_found_error', param: null, code: null } });
    const empty = await call('POST', '/v1/chat/completions', { model: 'llama3.2', messages: [] });
    expect(JSON.parse(empty.text).error).toMatchObject({ message: "[] is too short - 'messages'", type: 'invalid_request_error' });
  });

  it('ends SSE after one empty delta on a mid-stream failure, without finish or [DONE] (Ollama quirk)', async () => {
    sim.setFaults({ errorAfterTokens: 2 });
    const r = await call('POST', '/v1/chat/completions', { ...body, stream: true });
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(3);
    expect(JSON.parse(events[2]!.slice(6)).choices[0]).toEqual({ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null });
    expect(r.text).not.toContain('[DONE]');
  });

  it('lists models, and data is null with none installed', async () => {
    const o = JSON.parse((await call('GET', '/v1/models')).text);
    expect(o.data[0]).toMatchObject({ id: 'llama3.2:latest', object: 'model', owned_by: 'library' });
    const empty = await startSimulator({ models: [] });
    try {
      expect(await (await request(empty.url + '/v1/models')).body.text()).toBe('{"object":"list","data":null}');
    } finally {
      await empty.close();
    }
  });
});
