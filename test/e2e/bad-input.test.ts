/**
 * End to end: what a client gets for bad requests, over real HTTP with the Ollama simulator behind
 * Parley. Each case checks the status, the exact body (Ollama's texts, reference §1 and §3) and
 * that nothing reached the simulator's model endpoints or the session store when Parley itself
 * should have refused the request. Upstream-side validation is relayed with Ollama's own status
 * and bytes. After all of it, good requests still work and the queue is empty.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startHarness, type Harness } from '../helpers/harness.js';

type Json = Record<string, any>;

const JSON_CT = 'application/json; charset=utf-8';
const MODEL_PATHS = new Set(['/api/chat', '/api/generate', '/api/embed', '/api/embeddings']);
const BODY_LIMIT = 2048;
const INVALID_SESSION_TEXT = 'invalid session_id: use 1-128 characters from A-Z a-z 0-9 . _ : -, or "new" to start a session';
const INVALID_SESSION = JSON.stringify({ error: INVALID_SESSION_TEXT });
const HI = [{ role: 'user', content: 'hi' }];

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ config: { bodyLimitBytes: BODY_LIMIT, shutdown: { drainTimeoutMs: 500 } } });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.sim.reset();
});

interface Answer {
  status: number;
  contentType: string | undefined;
  text: string;
}

async function post(path: string, body: string | Readable, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(h.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.statusCode, contentType: res.headers['content-type'] as string | undefined, text: await res.body.text() };
}

const postJson = (path: string, value: unknown, headers?: Record<string, string>): Promise<Answer> => post(path, JSON.stringify(value), headers);

/** The model requests the simulator received since the last reset. */
function upstreamCalls() {
  return h.sim.requests.filter((r) => MODEL_PATHS.has(r.path));
}

async function storedRows(): Promise<{ sessions: number; messages: number }> {
  const { db } = h.app.database;
  const sessions = await db.selectFrom('sessions').select('id').execute();
  const messages = await db.selectFrom('messages').select('id').execute();
  return { sessions: sessions.length, messages: messages.length };
}

/** Asserts a refusal by Parley itself: status, JSON content type, exact body, nothing went upstream. */
function expectRefused(a: Answer, status: number, error: string): void {
  expect({ status: a.status, contentType: a.contentType, body: a.text }).toEqual({ status, contentType: JSON_CT, body: JSON.stringify({ error }) });
  expect(upstreamCalls()).toEqual([]);
}

describe('bad input: bodies that are not JSON', () => {
  it.each([
    ['a body cut short', '{"model":"llama3.2","messages":[', 'unexpected EOF'],
    ['a body ending after a comma', '{"model":"llama3.2",', 'unexpected EOF'],
    ['an unterminated string', '{"model":"llama3.2', 'unexpected EOF'],
    ['plain text', 'hello', "invalid character 'h' looking for beginning of value"],
    ['a misspelt literal', 'not json', "invalid character 'o' in literal null (expecting 'u')"],
    ['an unquoted key', '{model:"llama3.2"}', "invalid character 'm' looking for beginning of object key string"],
    ['a missing colon', '{"model" "llama3.2"}', 'invalid character \'"\' after object key'],
    ['a missing comma between fields', '{"model":"llama3.2" "messages":[]}', 'invalid character \'"\' after object key:value pair'],
    ['a missing comma between messages', '{"model":"llama3.2","messages":[{"role":"user","content":"a"} {"role":"user","content":"b"}]}', "invalid character '{' after array element"],
    ['a trailing comma', '{"model":"llama3.2",}', "invalid character '}' looking for beginning of object key string"],
  ])('answers 400 with Go\'s json error for %s', async (_name, body, error) => {
    expectRefused(await post('/api/chat', body), 400, error);
  });

  it('answers 400 "missing request body" for an empty or blank body, on every model endpoint', async () => {
    for (const path of ['/api/chat', '/api/generate', '/api/embed', '/api/embeddings']) {
      expectRefused(await post(path, ''), 400, 'missing request body');
      expectRefused(await post(path, '  \n'), 400, 'missing request body');
    }
  });

  it('reads only the first JSON value of the body, as Ollama\'s json.Decoder does', async () => {
    const a = await post('/api/chat', JSON.stringify({ model: 'llama3.2', messages: HI, stream: false }) + ' and then some');
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text)).toMatchObject({ done: true, message: { role: 'assistant' } });
    expect(upstreamCalls()).toHaveLength(1);
  });
});

describe('bad input: fields of the wrong type', () => {
  it.each([
    ['model is a number', '/api/chat', { model: 5, messages: HI }, 'json: cannot unmarshal number into Go struct field ChatRequest.model of type string'],
    ['messages is a string', '/api/chat', { model: 'llama3.2', messages: 'x' }, 'json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message'],
    ['stream is a string', '/api/chat', { model: 'llama3.2', messages: HI, stream: 'yes' }, 'json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool'],
    ['a message content is a number', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 5 }] }, 'json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type string'],
    ['a message is a string', '/api/chat', { model: 'llama3.2', messages: ['hi'] }, 'json: cannot unmarshal string into Go struct field ChatRequest.messages of type api.Message'],
    ['the chat body is an array', '/api/chat', [{ model: 'llama3.2', messages: HI }], 'json: cannot unmarshal array into Go value of type api.ChatRequest'],
    ['the generate body is a string', '/api/generate', 'hi', 'json: cannot unmarshal string into Go value of type api.GenerateRequest'],
    ['the generate prompt is a number', '/api/generate', { model: 'llama3.2', prompt: 5 }, 'json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string'],
    ['the embed model is a bool', '/api/embed', { model: true, input: 'x' }, 'json: cannot unmarshal bool into Go struct field EmbedRequest.model of type string'],
  ])('answers 400 with Go\'s unmarshal error when %s, and stores nothing', async (_name, path, body, error) => {
    const withSession = typeof body === 'object' && !Array.isArray(body) && path === '/api/chat' ? { ...body, session_id: 'typed-wrong' } : body;
    expectRefused(await postJson(path, withSession), 400, error);
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
  });
});

describe('bad input: models', () => {
  it('answers /api/chat without a model with 400 "model is required"', async () => {
    expectRefused(await postJson('/api/chat', { messages: HI, session_id: 'no-model' }), 400, 'model is required');
    expectRefused(await postJson('/api/chat', { model: '', messages: HI }), 400, 'model is required');
    expectRefused(await post('/api/chat', 'null'), 400, 'model is required');
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
  });

  it('answers /api/generate without a model with 404 "model \'\' not found", as Ollama does', async () => {
    expectRefused(await postJson('/api/generate', { prompt: 'hi' }), 404, "model '' not found");
    expectRefused(await postJson('/api/generate', { model: '', prompt: 'hi' }), 404, "model '' not found");
  });

  it('answers an unknown model with 404 and the endpoint\'s own wording, without running anything upstream', async () => {
    expectRefused(await postJson('/api/chat', { model: 'nope', messages: HI, session_id: 'unknown-model' }), 404, "model 'nope' not found");
    expectRefused(await postJson('/api/chat', { model: 'nope', messages: HI, stream: false }), 404, "model 'nope' not found");
    expectRefused(await postJson('/api/generate', { model: 'nope', prompt: 'hi' }), 404, "model 'nope' not found");
    expectRefused(await postJson('/api/embed', { model: 'nope', input: 'hi' }), 404, 'model "nope" not found, try pulling it first');
    expectRefused(await postJson('/api/embeddings', { model: 'nope', prompt: 'hi' }), 404, 'model "nope" not found, try pulling it first');
    // Also when the client asked for queue updates: the refusal comes before any chunk.
    expectRefused(await postJson('/api/chat', { model: 'nope', messages: HI }, { 'x-parley-queue-updates': '1' }), 404, "model 'nope' not found");
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
    const session = await request(h.url + '/api/sessions/unknown-model');
    expect(session.statusCode).toBe(404);
    expect(await session.body.text()).toBe('{"error":"session \'unknown-model\' not found"}');
  });
});

describe('bad input: size and session ids', () => {
  it(`answers a body over bodyLimitBytes (${BODY_LIMIT}) with 413, with or without Content-Length`, async () => {
    const big = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT) }], session_id: 'too-big' });
    const error = `request body too large: the limit is ${BODY_LIMIT} bytes (PARLEY_BODY_LIMIT_BYTES)`;
    expectRefused(await post('/api/chat', big), 413, error);
    // Chunked: the size is only known while reading.
    expectRefused(await post('/api/chat', Readable.from([Buffer.from(big.slice(0, 1000)), Buffer.from(big.slice(1000))])), 413, error);
    expectRefused(await post('/api/embed', JSON.stringify({ model: 'nomic-embed-text', input: 'y'.repeat(BODY_LIMIT) })), 413, error);
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
    // Just under the limit is fine.
    const fits = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT - 200) }], stream: false });
    expect(Buffer.byteLength(fits)).toBeLessThan(BODY_LIMIT);
    expect((await post('/api/chat', fits)).status).toBe(200);
  });

  it('answers an invalid session id with 400, in the body, the X-Session-Id header or the sessions API, and stores nothing', async () => {
    for (const session_id of ['has space', 'a/b', 'x'.repeat(129), '', 5, true, { id: 'x' }]) {
      expectRefused(await postJson('/api/chat', { model: 'llama3.2', messages: HI, session_id }), 400, INVALID_SESSION_TEXT);
    }
    expectRefused(await postJson('/api/chat', { model: 'llama3.2', messages: HI }, { 'x-session-id': 'bad/id' }), 400, INVALID_SESSION_TEXT);
    const created = await postJson('/api/sessions', { session_id: 'bad id' });
    expect({ status: created.status, body: created.text }).toEqual({ status: 400, body: INVALID_SESSION });
    const fetched = await request(h.url + '/api/sessions/bad%20id');
    expect({ status: fetched.statusCode, body: await fetched.body.text() }).toEqual({ status: 400, body: INVALID_SESSION });
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
  });
});

describe('bad input: validation done by Ollama', () => {
  it('relays the upstream\'s 400 for raw mode with a system prompt, unchanged', async () => {
    const a = await postJson('/api/generate', { model: 'llama3.2', prompt: 'hi', raw: true, system: 'be brief' });
    expect({ status: a.status, contentType: a.contentType, body: a.text }).toEqual({ status: 400, contentType: JSON_CT, body: '{"error":"raw mode does not support template, system, or context"}' });
    expect(upstreamCalls().map((r) => r.status)).toEqual([400]);
  });

  it('relays the upstream\'s 400 for keep_alive "10" and stores nothing for the session turn', async () => {
    const a = await postJson('/api/chat', { model: 'llama3.2', messages: HI, keep_alive: '10', session_id: 'keep-alive-10' });
    expect({ status: a.status, contentType: a.contentType, body: a.text }).toEqual({ status: 400, contentType: JSON_CT, body: '{"error":"time: missing unit in duration \\"10\\""}' });
    expect(upstreamCalls().map((r) => r.status)).toEqual([400]);
    expect(await storedRows()).toEqual({ sessions: 0, messages: 0 });
  });

  it('sends an upstream rejection as the last line when queue updates already started the stream', async () => {
    const res = await request(h.url + '/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-parley-queue-updates': '1' },
      body: JSON.stringify({ model: 'llama3.2', messages: HI, keep_alive: '10' }),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = (await res.body.text()).split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(0, -1).map((l) => JSON.parse(l) as Json)).toEqual([
      expect.objectContaining({ done: false, message: { role: 'assistant', content: '' }, queue: { position: 0, depth: 0 } }),
      { error: 'time: missing unit in duration "10"' },
    ]);
  });
});

describe('bad input: afterwards', () => {
  it('still serves good requests with nothing left in the queue', async () => {
    // A burst of bad requests of every kind, then good ones.
    await Promise.all([
      post('/api/chat', '{"model":'),
      post('/api/chat', ''),
      postJson('/api/chat', { model: 5 }),
      postJson('/api/chat', { model: 'nope', messages: HI }),
      postJson('/api/chat', { model: 'llama3.2', messages: HI, keep_alive: '10' }),
      postJson('/api/generate', { model: 'llama3.2', prompt: 'hi', raw: true, system: 's' }),
      post('/api/chat', JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'z'.repeat(BODY_LIMIT) }] })),
    ]);
    const chat = await h.ollama.chat({ model: 'llama3.2', messages: HI, stream: false });
    expect(chat.done).toBe(true);
    expect(chat.message.content.length).toBeGreaterThan(0);
    const streamed: string[] = [];
    for await (const part of await h.ollama.generate({ model: 'llama3.2', prompt: 'hello', stream: true })) streamed.push(part.response ?? '');
    expect(streamed.join('').length).toBeGreaterThan(0);
    const embed = await h.ollama.embed({ model: 'nomic-embed-text', input: 'hello' });
    expect(embed.embeddings).toHaveLength(1);
    const turn = await postJson('/api/chat', { model: 'llama3.2', messages: HI, stream: false, session_id: 'good-after-bad' });
    expect(turn.status).toBe(200);
    expect(await storedRows()).toEqual({ sessions: 1, messages: 2 });
    const queue = await request(h.url + '/api/queue');
    expect(await queue.body.json()).toMatchObject({ depth: 0, active: 0 });
  });
});
