import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ndjson, raw } from './raw-http.js';

/**
 * Ollama wire conformance, failure side and gateway duties (reference ollama-api.md §3, §8):
 * error statuses and texts, errors before and after the first chunk, router 404/405, the Host
 * rewrite, request ids and blob uploads. Raw HTTP against Parley in front of the simulator.
 */

let h: Harness;

beforeEach(async () => {
  // A small JSON body limit: blob uploads stream past it (they are exempt), JSON bodies do not.
  h = await startHarness({ config: { bodyLimitBytes: 1024 * 1024 } });
});
afterEach(async () => {
  await h.close();
});

const JSON_UTF8 = 'application/json; charset=utf-8';
const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };

describe('unknown model (§8.7)', () => {
  it.each([
    ['/api/chat', { model: 'nope', messages: [{ role: 'user', content: 'x' }] }, "model 'nope' not found"],
    ['/api/generate', { model: 'nope', prompt: 'x' }, "model 'nope' not found"],
    ['/api/embed', { model: 'nope', input: 'x' }, 'model "nope" not found, try pulling it first'],
  ])('%s answers 404 application/json with Ollama\'s text, not an NDJSON 200', async (path, body, text) => {
    const r = await raw(h.url, path, { body });
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe(JSON_UTF8);
    expect(r.text).toBe(JSON.stringify({ error: text }));
  });

  it('/api/show answers 404 with the normalised, tagged name, relayed from the upstream', async () => {
    const r = await raw(h.url, '/api/show', { body: { model: 'nope' } });
    expect([r.status, r.headers['content-type']]).toEqual([404, JSON_UTF8]);
    expect(r.text).toBe(`{"error":"model 'nope:latest' not found"}`);
    expect(h.sim.requests.filter((x) => x.path === '/api/show').map((x) => x.status)).toEqual([404]);
  });

  it('ollama-js throws ResponseError 404 for chat and generate', async () => {
    await expect(h.ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ name: 'ResponseError', status_code: 404, error: "model 'nope' not found" });
    await expect(h.ollama.generate({ model: 'nope', prompt: 'x', stream: true })).rejects.toMatchObject({ status_code: 404, error: "model 'nope' not found" });
  });
});

describe('bad requests (§8.8)', () => {
  it('chat without a model, with an empty body and with malformed JSON answer 400 {"error"}', async () => {
    const noModel = await raw(h.url, '/api/chat', { body: { messages: [] } });
    expect([noModel.status, noModel.text]).toEqual([400, '{"error":"model is required"}']);
    const empty = await raw(h.url, '/api/chat', { method: 'POST', body: '' });
    expect([empty.status, empty.text]).toEqual([400, '{"error":"missing request body"}']);
    const bad = await raw(h.url, '/api/chat', { body: '{"model": ' });
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toBe(JSON_UTF8);
    expect(JSON.parse(bad.text).error).toBeTypeOf('string');
    expect(h.sim.requests.filter((x) => x.path === '/api/chat')).toEqual([]);
  });
});

describe('upstream failures (§8.14)', () => {
  it('a failure mid-stream ends the 200 stream with an {"error"} line and no done:true line', async () => {
    h.sim.setFaults({ errorAfterTokens: 3 });
    const r = await raw(h.url, '/api/chat', { body: hi });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const lines = ndjson(r.text);
    expect(lines).toHaveLength(4);
    expect(lines.slice(0, 3).every((l) => l.done === false && typeof l.message.content === 'string')).toBe(true);
    expect(lines.at(-1)).toEqual({ error: 'simulated mid-stream failure' });
    expect(lines.some((l) => l.done === true)).toBe(false);
  });

  it('ollama-js throws on the mid-stream error line after the chunks before it', async () => {
    h.sim.setFaults({ errorAfterTokens: 2 });
    const got: string[] = [];
    const run = async () => {
      for await (const c of await h.ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true })) got.push(c.response ?? '');
    };
    await expect(run()).rejects.toThrow('simulated mid-stream failure');
    expect(got).toHaveLength(2);
  });

  it('an upstream connection cut mid-stream also ends with an {"error"} line, so ollama-js throws a clear error', async () => {
    h.sim.setFaults({ resetAfterTokens: 2 });
    const lines = ndjson((await raw(h.url, '/api/chat', { body: hi })).text);
    // The simulator's reset can swallow the token written just before it, so 1 or 2 chunks arrive.
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.slice(0, -1).every((l) => l.done === false && l.message.content !== '')).toBe(true);
    expect(lines.at(-1)).toEqual({ error: `connection to Ollama at ${h.sim.url} was lost mid-reply` });
    const run = async () => {
      for await (const _ of await h.ollama.chat({ ...hi, stream: true })) void _;
    };
    await expect(run()).rejects.toThrow('was lost mid-reply');
  });

  it('a failure before the first chunk is a real 500 with a JSON body, streaming or not', async () => {
    h.sim.setFaults({ statusCode: 500 });
    for (const stream of [undefined, false]) {
      const r = await raw(h.url, '/api/chat', { body: { ...hi, ...(stream === undefined ? {} : { stream }) } });
      expect(r.status).toBe(500);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(r.text)).toEqual({ error: 'simulated failure' });
    }
    await expect(h.ollama.chat({ ...hi, stream: true })).rejects.toMatchObject({ name: 'ResponseError', status_code: 500, error: 'simulated failure' });
  });
});

describe('router', () => {
  it("an unknown path answers 404 text '404 page not found'", async () => {
    const r = await raw(h.url, '/api/nope');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.text).toBe('404 page not found');
  });

  it("a known path with the wrong method answers 405 '405 method not allowed'", async () => {
    for (const [method, path] of [['GET', '/api/chat'], ['POST', '/api/tags'], ['GET', '/api/delete']] as const) {
      const r = await raw(h.url, path, { method });
      expect([r.status, r.text], `${method} ${path}`).toEqual([405, '405 method not allowed']);
    }
  });
});

describe('gateway duties', () => {
  it('a foreign Host header (gw.example.com) is not forwarded: the Ollama Host guard lets the request through', async () => {
    // The simulator enforces Ollama's DNS-rebinding guard: this Host sent to it directly is refused.
    const direct = await raw(h.sim.url, '/api/tags', { headers: { host: 'gw.example.com' } });
    expect([direct.status, direct.text]).toEqual([403, '']);
    h.sim.reset();

    const chat = await raw(h.url, '/api/chat', { headers: { host: 'gw.example.com' }, body: { ...hi, stream: false } });
    expect(chat.status).toBe(200);
    expect(JSON.parse(chat.text).done).toBe(true);
    const tags = await raw(h.url, '/api/tags', { headers: { host: 'gw.example.com:443' } });
    expect(tags.status).toBe(200);
    const show = await raw(h.url, '/api/show', { headers: { host: 'gw.example.com' }, body: { model: 'llama3.2' } });
    expect(show.status).toBe(200);
    expect(h.sim.requests.length).toBeGreaterThanOrEqual(3);
    expect(h.sim.requests.every((x) => x.headers.host !== 'gw.example.com' && x.headers.host !== 'gw.example.com:443')).toBe(true);
  });

  it('every response carries X-Request-Id, and a client-sent one is echoed', async () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const responses = await Promise.all([
      raw(h.url, '/'),
      raw(h.url, '/api/tags'),
      raw(h.url, '/api/chat', { body: hi }),
      raw(h.url, '/api/chat', { body: { ...hi, stream: false } }),
      raw(h.url, '/api/chat', { body: { model: 'nope', messages: [] } }),
      raw(h.url, '/api/show', { body: { model: 'nope' } }),
      raw(h.url, '/api/nope'),
      raw(h.url, '/api/chat', { method: 'GET' }),
      raw(h.url, '/api/blobs/sha256:' + '0'.repeat(64), { method: 'HEAD' }),
    ]);
    for (const r of responses) expect(r.headers['x-request-id']).toMatch(uuid);
    expect(new Set(responses.map((r) => r.headers['x-request-id'])).size).toBe(responses.length);

    const mine = 'client-trace.42:abc';
    for (const [path, body] of [['/api/chat', hi], ['/api/chat', { ...hi, stream: false }], ['/api/generate', { model: 'nope', prompt: 'x' }], ['/api/tags', undefined]] as const) {
      const r = await raw(h.url, path, { headers: { 'x-request-id': mine }, body });
      expect(r.headers['x-request-id'], path).toBe(mine);
    }
    const bad = await raw(h.url, '/', { headers: { 'x-request-id': 'has spaces and/slashes' } });
    expect(bad.headers['x-request-id']).toMatch(uuid);
  });
});

describe('blobs (§1.4)', () => {
  const size = 4 * 1024 * 1024 + 123;
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 11)) & 0xff;
  const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
  /** The bytes as a stream of 64 KiB chunks, as a client uploading a file would send them. */
  const stream = () => Readable.from((function* () {
    for (let o = 0; o < size; o += 65536) yield data.subarray(o, o + 65536);
  })());

  it('HEAD 404, then a streamed multi-MB POST creates it (201), then HEAD 200 and a repeated POST 200', async () => {
    expect((await raw(h.url, `/api/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    const created = await raw(h.url, `/api/blobs/${digest}`, { method: 'POST', body: stream(), headers: { 'content-type': 'application/octet-stream' } });
    expect([created.status, created.text]).toEqual([201, '']);
    expect((await raw(h.url, `/api/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await raw(h.url, `/api/blobs/${digest}`, { method: 'POST', body: stream() })).status).toBe(200);
  });

  it('a body that does not hash to the digest answers 400 digest mismatch and is not stored', async () => {
    const wrong = 'sha256:' + 'ab'.repeat(32);
    const r = await raw(h.url, `/api/blobs/${wrong}`, { method: 'POST', body: stream() });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({ error: `digest mismatch, expected "${wrong}", got "${digest}"` });
    expect((await raw(h.url, `/api/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('a malformed digest answers 400', async () => {
    expect((await raw(h.url, '/api/blobs/sha256:xyz', { method: 'HEAD' })).status).toBe(400);
  });
});
