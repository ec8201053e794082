import { afterEach, describe, expect, it } from 'vitest';
import { simReplyText } from '../../src/sim/index.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { ndjson, raw } from './raw-http.js';

/**
 * Degraded mode (issue 5 item 5): when no upstream can serve a model, Parley answers per
 * `degraded.mode` — error (default), cache or static — marks every answer (X-Parley-Degraded and a
 * "degraded" field on the chunks), and never stores a degraded answer as the model's words.
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(opts: HarnessOptions): Promise<Harness> {
  h = await startHarness({ ...opts, config: { resilience: { maxRetries: 1, retryBaseDelayMs: 1 }, ...opts.config } });
  return h;
}

const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };
const session = async (url: string, id: string) => JSON.parse((await raw(url, `/api/sessions/${id}`)).text) as { message_count?: number; messages?: Array<{ role: string; content: string; status: string }>; error?: string };

describe('degraded mode error (default)', () => {
  it('answers 503 in Ollama shape with Retry-After and X-Parley-Degraded: error, and stores nothing', async () => {
    const p = await start({});
    await p.sim.crash();
    for (const body of [{ ...hi, session_id: 'e1' }, { ...hi, stream: false, session_id: 'e1' }, { model: 'llama3.2', prompt: 'x' }]) {
      const r = await raw(p.url, 'messages' in body ? '/api/chat' : '/api/generate', { body });
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('10');
      expect(r.headers['x-parley-degraded']).toBe('error');
      const parsed = JSON.parse(r.text) as Record<string, unknown>;
      expect(Object.keys(parsed)).toEqual(['error']);
      expect(parsed.error).toMatch(/^Ollama is unavailable right now \(.*\), so model 'llama3.2' cannot answer; please try again in 10 seconds$/);
    }
    expect((await session(p.url, 'e1')).error).toBe("session 'e1' not found");
    expect((await raw(p.url, '/metrics')).text).toMatch(/parley_degraded_responses_total\{mode="error",endpoint="chat"\} 2/);
  });
});

describe('degraded mode static', () => {
  it('answers the configured greeting, apology and retry line, marked on every chunk, and stores nothing', async () => {
    const p = await start({ config: { degraded: { mode: 'static', staticGreeting: 'Welcome!', staticApology: 'Our model is resting.', staticRetry: 'Please come back soon.' } } });
    // A stored first turn, then Ollama goes away.
    expect((await raw(p.url, '/api/chat', { body: { ...hi, stream: false, session_id: 's1' } })).status).toBe(200);
    await p.sim.crash();
    const r = await raw(p.url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content: 'still there?' }], session_id: 's1' } });
    expect(r.status).toBe(200);
    expect(r.headers['x-parley-degraded']).toBe('static');
    const lines = ndjson(r.text);
    expect(lines.every((l) => l.degraded === 'static' && l.session_id === 's1')).toBe(true);
    expect(lines.map((l) => l.message.content).join('')).toBe('Our model is resting. Please come back soon.');
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' });
    // First turn of a new conversation: greeting too; stream:false and generate in their own shapes.
    const whole = JSON.parse((await raw(p.url, '/api/chat', { body: { ...hi, stream: false } })).text);
    expect(whole).toMatchObject({ message: { role: 'assistant', content: 'Welcome! Our model is resting. Please come back soon.' }, done: true, degraded: 'static' });
    const gen = JSON.parse((await raw(p.url, '/api/generate', { body: { model: 'llama3.2', prompt: 'x', stream: false } })).text);
    expect(gen).toMatchObject({ response: 'Welcome! Our model is resting. Please come back soon.', degraded: 'static' });
    // The history holds only the real first turn.
    const stored = await session(p.url, 's1');
    expect(stored.messages?.map((m) => [m.role, m.content])).toEqual([['user', 'hi'], ['assistant', simReplyText('hi', 8)]]);
  });
});

describe('degraded mode cache', () => {
  it('serves a recent identical answer marked cache, an error for anything else, and stores nothing degraded', async () => {
    const p = await start({ config: { degraded: { mode: 'cache' } } });
    const first = await raw(p.url, '/api/chat', { body: hi });
    expect(first.headers['x-parley-degraded']).toBeUndefined();
    await p.sim.crash();
    const again = await raw(p.url, '/api/chat', { body: hi });
    expect(again.status).toBe(200);
    expect(again.headers['x-parley-degraded']).toBe('cache');
    const lines = ndjson(again.text);
    expect(lines.every((l) => l.degraded === 'cache')).toBe(true);
    expect(lines.map((l) => l.message.content).join('')).toBe(simReplyText('hi', 8));
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop', eval_count: 8 });
    const whole = JSON.parse((await raw(p.url, '/api/chat', { body: { ...hi, stream: false } })).text);
    expect(whole).toMatchObject({ message: { content: simReplyText('hi', 8) }, degraded: 'cache' });
    // Different options: a different key, so no cached answer: the error answer.
    const other = await raw(p.url, '/api/chat', { body: { ...hi, options: { temperature: 0.1 } } });
    expect([other.status, other.headers['x-parley-degraded']]).toEqual([503, 'error']);
  });

  it('a session turn answered from the cache is not stored in the history', async () => {
    const p = await start({ config: { degraded: { mode: 'cache' } } });
    // Session A's first turn fills the cache; session B's identical first turn is then answered from it.
    expect((await raw(p.url, '/api/chat', { body: { ...hi, session_id: 'a' } })).status).toBe(200);
    await p.sim.crash();
    const r = await raw(p.url, '/api/chat', { body: { ...hi, stream: false, session_id: 'b' } });
    expect([r.status, r.headers['x-parley-degraded']]).toEqual([200, 'cache']);
    expect(JSON.parse(r.text)).toMatchObject({ degraded: 'cache', session_id: 'b', message: { content: simReplyText('hi', 8) } });
    expect((await session(p.url, 'b')).error).toBe("session 'b' not found");
    expect((await session(p.url, 'a')).message_count).toBe(2);
  });
});

describe('response cache in normal operation', () => {
  it('answers identical deterministic requests from the cache (X-Parley-Cache: hit), others from the model', async () => {
    const p = await start({ config: { cache: { deterministicTtlMs: 60_000 } } });
    const det = { ...hi, stream: false, options: { temperature: 0 } };
    const a = await raw(p.url, '/api/chat', { body: det });
    const b = await raw(p.url, '/api/chat', { body: det });
    expect(JSON.parse(b.text).message).toEqual(JSON.parse(a.text).message);
    expect(b.headers['x-parley-cache']).toBe('hit');
    expect(b.headers['x-parley-degraded']).toBeUndefined();
    await raw(p.url, '/api/chat', { body: { ...hi, stream: false, options: { temperature: 0.7 } } });
    await raw(p.url, '/api/chat', { body: { ...hi, stream: false, options: { temperature: 0.7 } } });
    expect(p.sim.requests.filter((r) => r.path === '/api/chat')).toHaveLength(3);
  });
});
