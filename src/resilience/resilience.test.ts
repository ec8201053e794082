import { describe, expect, it } from 'vitest';
import { ParleyError } from '../errors/parley-error.js';
import { OLLAMA_SERVER_BUSY_TEXT } from '../errors/codes.js';
import { RequestRetry } from './retry-policy.js';
import { UpstreamBreaker } from './upstream-breaker.js';
import { UpstreamStatusFailure, countsAgainstUpstream, isRetryableFailure, parseRetryAfterMs } from './upstream-failure.js';
import { ResponseCache, ReplyCapture, cacheKey, isDeterministic } from './response-cache.js';
import { DegradedResponder, DEGRADED_HEADER } from './degraded-mode.js';
import { MemoryGuardian } from './memory-guardian.js';
import { retryStorage } from './storage-retry.js';

const refused = () => new ParleyError('PARLEY_ERR_UPSTREAM_UNAVAILABLE', 'Ollama at x is unavailable: ECONNREFUSED');
const status = (s: number, body = '{"error":"bad gateway"}', retryAfterMs?: number) => new UpstreamStatusFailure(s, {}, Buffer.from(body), retryAfterMs, 'http://u');

describe('failure classification', () => {
  it('retries connection failures, timeouts before the first byte and 502/503/504, never a 4xx or 500', () => {
    expect(isRetryableFailure(refused())).toBe(true);
    expect(isRetryableFailure(new ParleyError('PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT', 't'))).toBe(true);
    expect(isRetryableFailure(new ParleyError('PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT', 't'))).toBe(true);
    for (const s of [502, 503, 504]) expect(isRetryableFailure(status(s))).toBe(true);
    for (const s of [400, 404, 429, 500]) expect(isRetryableFailure(status(s))).toBe(false);
    expect(isRetryableFailure(new ParleyError('PARLEY_ERR_QUEUE_CANCELLED', 'request canceled'))).toBe(false);
    expect(isRetryableFailure(new ParleyError('PARLEY_ERR_UPSTREAM_STREAM_BROKEN', 'x'))).toBe(false);
  });

  it("counts upstream faults against the breaker but not a 404, a 500 (model cannot load) or Ollama's busy 503", () => {
    expect(countsAgainstUpstream(refused())).toBe(true);
    expect(countsAgainstUpstream(new ParleyError('PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT', 'x'))).toBe(true);
    expect(countsAgainstUpstream(status(502))).toBe(true);
    expect(countsAgainstUpstream(status(404, '{"error":"model \'x\' not found"}'))).toBe(false);
    expect(countsAgainstUpstream(status(500, '{"error":"llama runner process has terminated"}'))).toBe(false);
    expect(countsAgainstUpstream(status(503, JSON.stringify({ error: OLLAMA_SERVER_BUSY_TEXT })))).toBe(false);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    expect(parseRetryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
    expect(parseRetryAfterMs('soon')).toBeUndefined();
  });
});

describe('RequestRetry', () => {
  const opts = { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 4, retryAfterCapMs: 50 };

  it('retries a retryable failure up to maxRetries times, then gives the last error', async () => {
    const r = new RequestRetry(opts);
    let calls = 0;
    await expect(r.execute(async () => { calls++; throw refused(); })).rejects.toMatchObject({ code: 'PARLEY_ERR_UPSTREAM_UNAVAILABLE' });
    expect(calls).toBe(4);
  });

  it('succeeds on a later attempt and reports each retry', async () => {
    const r = new RequestRetry(opts);
    const seen: number[] = [];
    const v = await r.execute(async (n) => { if (n < 2) throw status(503); return 'ok'; }, { onRetry: (_e, _d, a) => seen.push(a) });
    expect(v).toBe('ok');
    expect(seen).toEqual([1, 2]);
  });

  it('never retries a 4xx, and stops when mayRetry says no (first byte sent)', async () => {
    const r = new RequestRetry(opts);
    let calls = 0;
    await expect(r.execute(async () => { calls++; throw status(400); })).rejects.toMatchObject({ status: 400 });
    expect(calls).toBe(1);
    calls = 0;
    await expect(r.execute(async () => { calls++; throw refused(); }, { mayRetry: () => false })).rejects.toBeTruthy();
    expect(calls).toBe(1);
  });

  it('backs off exponentially with jitter, capped, and honours Retry-After up to its cap', () => {
    const low = new RequestRetry({ maxRetries: 5, baseDelayMs: 100, maxDelayMs: 1000, retryAfterCapMs: 3000, random: () => 0 });
    const high = new RequestRetry({ maxRetries: 5, baseDelayMs: 100, maxDelayMs: 1000, retryAfterCapMs: 3000, random: () => 0.999 });
    expect([1, 2, 3, 4, 5].map((a) => low.delayFor(refused(), a))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((a) => high.delayFor(refused(), a))).toEqual([99, 199, 399, 799, 999]);
    expect(low.delayFor(status(503, '{}', 2_000), 1)).toBe(2_000);
    expect(low.delayFor(status(503, '{}', 60_000), 1)).toBe(3_000);
  });
});

describe('UpstreamBreaker', () => {
  const fail = (b: UpstreamBreaker, e: unknown = refused()) => b.execute(async () => { throw e; }).catch(() => undefined);

  it('opens after N consecutive faults, rejects at once, and a half-open probe success closes it', async () => {
    const states: string[] = [];
    const b = new UpstreamBreaker({ url: 'http://u', threshold: 3, halfOpenAfterMs: 30, onStateChange: (s) => states.push(s) });
    for (let i = 0; i < 2; i++) await fail(b);
    expect(b.state).toBe('closed');
    await fail(b);
    expect(b.state).toBe('open');
    expect(b.admits).toBe(false);
    let ran = false;
    await expect(b.execute(async () => { ran = true; })).rejects.toMatchObject({ code: 'PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN', status: 503 });
    expect(ran).toBe(false);
    await new Promise((r) => setTimeout(r, 40));
    expect(b.admits).toBe(true);
    // One probe runs; a concurrent call is rejected at once instead of waiting behind it.
    let release!: () => void;
    const probe = b.execute(() => new Promise<string>((r) => (release = () => r('ok'))));
    expect(b.state).toBe('half_open');
    await expect(b.execute(async () => 'second')).rejects.toMatchObject({ code: 'PARLEY_ERR_UPSTREAM_CIRCUIT_OPEN' });
    release();
    await expect(probe).resolves.toBe('ok');
    expect(b.state).toBe('closed');
    expect(states).toEqual(['open', 'half_open', 'closed']);
  });

  it('a failed probe opens it again', async () => {
    const b = new UpstreamBreaker({ url: 'http://u', threshold: 1, halfOpenAfterMs: 10 });
    await fail(b);
    await new Promise((r) => setTimeout(r, 15));
    await fail(b);
    expect(b.state).toBe('open');
    expect(b.snapshot()).toMatchObject({ state: 'open', last_failure: 'PARLEY_ERR_UPSTREAM_UNAVAILABLE' });
  });

  it('counts a fault reported after the call (a reply broken mid-body), and only an upstream fault; a whole reply resets the count', async () => {
    const b = new UpstreamBreaker({ url: 'http://u', threshold: 2, halfOpenAfterMs: 1000 });
    const broken = new ParleyError('PARLEY_ERR_UPSTREAM_STREAM_BROKEN', 'lost mid-reply');
    await b.recordFault(new ParleyError('PARLEY_ERR_STREAM_CLIENT_TOO_SLOW', 'client cut off'));
    await b.recordFault(broken);
    expect(b.snapshot().consecutive_failures).toBe(1);
    // A status line alone does not show the upstream healthy; a reply relayed whole does.
    await b.execute(async () => 'status line');
    expect(b.snapshot().consecutive_failures).toBe(1);
    b.recordSuccess();
    expect(b.snapshot().consecutive_failures).toBe(0);
    await b.recordFault(broken);
    await b.recordFault(broken);
    expect(b.state).toBe('open');
    expect(b.snapshot().last_failure).toBe('PARLEY_ERR_UPSTREAM_STREAM_BROKEN');
  });

  it('is not opened by one model failing (404, 500 cannot load)', async () => {
    const b = new UpstreamBreaker({ url: 'http://u', threshold: 2, halfOpenAfterMs: 10 });
    for (let i = 0; i < 5; i++) {
      await fail(b, status(404, '{"error":"model \'x\' not found"}'));
      await fail(b, status(500, '{"error":"unable to load model"}'));
    }
    expect(b.state).toBe('closed');
  });
});

describe('ResponseCache', () => {
  it('keys on model, messages and options, not on stream or keep_alive', () => {
    const a = cacheKey('chat', 'm:latest', { messages: [{ role: 'user', content: 'hi' }], options: { temperature: 0, seed: 1 }, stream: true });
    const b = cacheKey('chat', 'm:latest', { options: { seed: 1, temperature: 0 }, messages: [{ role: 'user', content: 'hi' }], stream: false, keep_alive: '5m' });
    expect(a).toBe(b);
    expect(cacheKey('chat', 'm:latest', { messages: [{ role: 'user', content: 'hi!' }] })).not.toBe(a);
    expect(cacheKey('generate', 'm:latest', { messages: [{ role: 'user', content: 'hi' }], options: { temperature: 0, seed: 1 } })).not.toBe(a);
  });

  it('knows deterministic requests', () => {
    expect(isDeterministic({ options: { temperature: 0 } })).toBe(true);
    expect(isDeterministic({ options: { seed: 42 } })).toBe(true);
    expect(isDeterministic({ options: { temperature: 0.7 } })).toBe(false);
    expect(isDeterministic({})).toBe(false);
  });

  it('is an LRU bounded by entries and bytes, with a per-lookup maximum age', () => {
    let t = 0;
    const c = new ResponseCache({ maxEntries: 2, maxBytes: 10_000, now: () => t });
    const r = (content: string) => ({ endpoint: 'chat' as const, model: 'm', content, thinking: '', toolCalls: [], final: {} });
    c.set('a', r('A'));
    c.set('b', r('B'));
    expect(c.get('a', 100)?.content).toBe('A');
    c.set('c', r('C'));
    expect(c.get('b', 100)).toBeUndefined();
    expect(c.size).toBe(2);
    t = 50;
    expect(c.get('a', 40)).toBeUndefined();
    expect(c.get('a', 60)?.content).toBe('A');
    const small = new ResponseCache({ maxEntries: 100, maxBytes: 400 });
    for (let i = 0; i < 10; i++) small.set(String(i), r('x'.repeat(100)));
    expect(small.bytes).toBeLessThanOrEqual(400);
    expect(small.size).toBeLessThan(10);
    small.clear();
    expect([small.size, small.bytes]).toEqual([0, 0]);
  });

  it('captures a streamed chat answer and refuses an answer that ended in an error', () => {
    const cap = new ReplyCapture('chat', 10_000);
    cap.push('{"model":"m","created_at":"t","message":{"role":"assistant","content":"Hel"},"done":false}\n{"model":"m","created_at":"t","message":{"role":"assistant","content":"lo"},"done":false}\n');
    cap.push('{"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":2}\n');
    expect(cap.result()).toMatchObject({ content: 'Hello', final: { done_reason: 'stop', eval_count: 2 } });
    const bad = new ReplyCapture('generate', 10_000);
    bad.push('{"model":"m","response":"a","done":false}\n{"error":"boom"}\n');
    expect(bad.result()).toBeUndefined();
  });
});

describe('DegradedResponder', () => {
  const opts = { mode: 'error' as const, retryAfterMs: 10_000, staticGreeting: 'Hello!', staticApology: 'Sorry, the model is down.', staticRetry: 'Try again soon.' };

  it('error: 503 in Ollama shape, Retry-After, the degraded header and field', () => {
    const a = new DegradedResponder(opts).answer({ endpoint: 'chat', model: 'llama3.2', stream: true, firstTurn: true });
    expect(a.status).toBe(503);
    expect(a.headers['Retry-After']).toBe('10');
    expect(a.headers[DEGRADED_HEADER]).toBe('error');
    expect(JSON.parse(a.body)).toEqual({ error: "Ollama is unavailable right now, so model 'llama3.2' cannot answer; please try again in 10 seconds" });
    const b = new DegradedResponder(opts).answer({ endpoint: 'embed', model: 'e', stream: false, firstTurn: true, reason: 'Ollama at http://u is unavailable: ECONNREFUSED' });
    expect(JSON.parse(b.body).error).toBe("Ollama is unavailable right now (Ollama at http://u is unavailable: ECONNREFUSED), so model 'e' cannot answer; please try again in 10 seconds");
  });

  it('static: greeting on the first turn, apology and retry line, every chunk marked', () => {
    const r = new DegradedResponder({ ...opts, mode: 'static' });
    const a = r.answer({ endpoint: 'chat', model: 'm', stream: true, firstTurn: true, extraFields: { session_id: 's' } });
    const lines = a.body.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.degraded)).toEqual(['static', 'static']);
    expect(lines[0].message.content).toBe('Hello! Sorry, the model is down. Try again soon.');
    expect(lines[1]).toMatchObject({ done: true, done_reason: 'stop', session_id: 's' });
    const g = r.answer({ endpoint: 'generate', model: 'm', stream: false, firstTurn: false });
    expect(JSON.parse(g.body)).toMatchObject({ response: 'Sorry, the model is down. Try again soon.', done: true, degraded: 'static' });
  });

  it('cache: serves the cached answer, falls back to error without one, and embeddings always get error', () => {
    const r = new DegradedResponder({ ...opts, mode: 'cache' });
    const cached = { endpoint: 'chat' as const, model: 'm', content: 'cached words', thinking: '', toolCalls: [], final: { done_reason: 'stop', eval_count: 2 } };
    const hit = r.answer({ endpoint: 'chat', model: 'm', stream: false, firstTurn: true, cached });
    expect(hit.headers[DEGRADED_HEADER]).toBe('cache');
    expect(JSON.parse(hit.body)).toMatchObject({ message: { content: 'cached words' }, done: true, eval_count: 2, degraded: 'cache' });
    expect(r.answer({ endpoint: 'chat', model: 'm', stream: false, firstTurn: true }).mode).toBe('error');
    expect(r.answer({ endpoint: 'embed', model: 'm', stream: false, firstTurn: true, cached }).status).toBe(503);
  });
});

describe('MemoryGuardian', () => {
  it('evicts above the first threshold and sheds above the second, recovering below', () => {
    let rss = 100;
    let evicted = 0;
    const g = new MemoryGuardian({ evictAboveRssBytes: 200, shedAboveRssBytes: 300, sampleIntervalMs: 1000, sample: () => ({ rss, heapUsed: rss / 2 }) });
    g.addEvictor(() => evicted++);
    expect(g.sampleNow()).toBe('ok');
    g.admit();
    rss = 250;
    expect(g.sampleNow()).toBe('evicting');
    expect(evicted).toBe(1);
    g.admit();
    rss = 350;
    expect(g.sampleNow()).toBe('shedding');
    expect(() => g.admit()).toThrow(expect.objectContaining({ code: 'PARLEY_ERR_OVERLOADED', status: 503 }));
    rss = 100;
    expect(g.sampleNow()).toBe('ok');
    g.admit();
    expect(g.snapshot()).toMatchObject({ state: 'ok', shed_requests: 1, rss_bytes: 100 });
  });
});

describe('retryStorage', () => {
  it('retries a storage failure, and passes other errors at once', async () => {
    let n = 0;
    const v = await retryStorage('op', async () => { if (n++ < 2) throw new ParleyError('PARLEY_ERR_STORAGE_UNAVAILABLE', 'x'); return 7; }, { baseDelayMs: 1 });
    expect([v, n]).toEqual([7, 3]);
    n = 0;
    await expect(retryStorage('op', async () => { n++; throw new Error('bug'); }, { baseDelayMs: 1 })).rejects.toThrow('bug');
    expect(n).toBe(1);
  });
});
