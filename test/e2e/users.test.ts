/**
 * End to end (issue 6): API keys, auth modes, daily token budgets (fake clock) and rate limits,
 * through ollama-js and raw HTTP ("curl") against Parley + the simulator. Keys never reach the logs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Ollama } from 'ollama';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { raw } from './raw-http.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(opts: HarnessOptions = {}): Promise<Harness> {
  h = await startHarness({ ...opts, config: { shutdown: { drainTimeoutMs: 500 }, ...opts.config } });
  return h;
}

const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there!' }], stream: false, options: { num_predict: 8 } };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const ollamaWith = (url: string, key: string) => new Ollama({ host: url, headers: { Authorization: `Bearer ${key}` } });

/** Every key and token must stay out of the captured log lines. */
function expectNotLogged(harness: Harness, secrets: string[]): void {
  const text = JSON.stringify(harness.logs);
  for (const s of secrets) expect(text.includes(s), `a secret appeared in the logs`).toBe(false);
}

describe('API keys and auth', () => {
  it('serves anonymous callers while no key exists, then requires a key once one does (auth auto)', async () => {
    const { url, app } = await start();
    expect((await raw(url, '/api/chat', { body: hi })).status).toBe(200);
    const created = await app.keys.create({ name: 'alice', tier: 'free' });
    const refused = await raw(url, '/api/chat', { body: hi });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.text)).toEqual({ error: 'unauthorized: an API key is required (Authorization: Bearer <key>)' });
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    const ok = await raw(url, '/api/chat', { body: hi, headers: bearer(created.key) });
    expect(ok.status).toBe(200);
    expect((await raw(url, '/')).status).toBe(200);
    expect((await raw(url, '/api/health')).status).toBe(200);
    expectNotLogged(h!, [created.key]);
  });

  it('answers 401 in Ollama shape to ollama-js without a key, with a wrong key and with a revoked key (auth required)', async () => {
    const { url, app } = await start({ config: { auth: { mode: 'required' } } });
    const anonymous = new Ollama({ host: url });
    await expect(anonymous.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 401, error: expect.stringContaining('API key is required') });
    const wrong = 'pk_00000000_' + 'x'.repeat(43);
    await expect(ollamaWith(url, wrong).list()).rejects.toMatchObject({ status_code: 401, error: 'invalid or revoked API key' });

    const created = await app.keys.create({ name: 'bob', tier: 'premium' });
    const bob = ollamaWith(url, created.key);
    const reply = await bob.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    expect(reply.done).toBe(true);
    expect(created.key.startsWith(created.prefix + '_')).toBe(true);

    await app.keys.revoke(created.id);
    await expect(bob.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 401, error: 'invalid or revoked API key' });
    const curl = await raw(url, '/api/tags', { headers: bearer(created.key) });
    expect(curl.status).toBe(401);
    expect(JSON.parse(curl.text)).toEqual({ error: 'invalid or revoked API key' });
    expectNotLogged(h!, [created.key, wrong]);
  });

  it('ignores Authorization entirely in auth off (like Ollama)', async () => {
    const { url, app } = await start({ config: { auth: { mode: 'off' } } });
    await app.keys.create({ name: 'carol' });
    expect((await raw(url, '/api/chat', { body: hi })).status).toBe(200);
    expect((await raw(url, '/api/chat', { body: hi, headers: bearer('nonsense') })).status).toBe(200);
  });

  it('refuses to start anonymous on a non-loopback host unless auth is off', async () => {
    await expect(startHarness({ config: { host: '0.0.0.0' } })).rejects.toThrow(/refusing to serve anonymously on 0.0.0.0/);
    h = await startHarness({ config: { host: '0.0.0.0', auth: { mode: 'off' } } });
    expect((await raw(h.url.replace('0.0.0.0', '127.0.0.1'), '/api/tags')).status).toBe(200);
  });
});

describe('daily token budgets', () => {
  it('answers 429 with used / budget and the reset time once the day budget is spent, and serves again the next day (fake clock)', async () => {
    let clock = new Date('2026-03-10T15:30:00.000Z');
    const { url, app } = await start({
      now: () => clock,
      config: { users: { tiers: { tiny: { tokensPerDay: 120, weight: 1 } }, defaultTier: 'tiny' } },
    });
    const { key } = await app.keys.create({ name: 'dave' });
    const dave = ollamaWith(url, key);
    let spent = 0;
    let refusal: { status_code?: number; error?: string } | undefined;
    for (let i = 0; i < 20 && !refusal; i++) {
      try {
        const r = await dave.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there!' }], options: { num_predict: 8 } });
        spent += (r.prompt_eval_count ?? 0) + (r.eval_count ?? 0);
      } catch (e) {
        refusal = e as typeof refusal;
      }
    }
    expect(spent).toBeGreaterThan(0);
    expect(refusal?.status_code).toBe(429);
    // Reconciled with the upstream's real counts: "used" is exactly what the replies reported.
    const needs = refusal?.error?.match(/needs up to (\d+);/)?.[1];
    expect(Number(needs)).toBeGreaterThan(120 - spent);
    expect(refusal?.error).toBe(`token budget exceeded: used ${spent} of 120 tokens today (tier tiny); this request needs up to ${needs}; the budget resets at 2026-03-11T00:00:00.000Z`);
    const curl = await raw(url, '/api/chat', { body: hi, headers: bearer(key) });
    expect(curl.status).toBe(429);
    expect(curl.headers['retry-after']).toBe(String(8.5 * 3600));
    expect(curl.headers['x-parley-budget-used']).toBe(String(spent));
    expect(curl.headers['x-parley-budget-limit']).toBe('120');
    expect(curl.headers['x-parley-budget-reset']).toBe('2026-03-11T00:00:00.000Z');

    clock = new Date('2026-03-11T00:00:01.000Z');
    const next = await dave.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello there!' }], options: { num_predict: 8 } });
    expect(next.done).toBe(true);
    await app.usage.flush();
    const usage = await app.usage.store.query({ keyId: (await app.keys.list())[0]!.id });
    expect(usage.map((u) => u.day)).toEqual(['2026-03-10', '2026-03-11']);
    expect(usage[0]!.promptTokens + usage[0]!.replyTokens).toBe(spent);
    expectNotLogged(h!, [key]);
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After and X-RateLimit-* when the requests-per-minute bucket is empty, and serves again after the refill', async () => {
    let clock = new Date('2026-03-10T10:00:00.000Z');
    const { url, app } = await start({ now: () => clock, config: { users: { tiers: { slow: { tokensPerDay: null, requestsPerMinute: 2 } }, defaultTier: 'slow' } } });
    const { key } = await app.keys.create({ name: 'erin' });
    expect((await raw(url, '/api/chat', { body: hi, headers: bearer(key) })).status).toBe(200);
    expect((await raw(url, '/api/chat', { body: hi, headers: bearer(key) })).status).toBe(200);
    const limited = await raw(url, '/api/chat', { body: hi, headers: bearer(key) });
    expect(limited.status).toBe(429);
    expect(JSON.parse(limited.text)).toEqual({ error: 'rate limit exceeded: this key may send 2 requests per minute; retry in 30 s' });
    expect(limited.headers['retry-after']).toBe('30');
    expect(limited.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(limited.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(limited.headers['x-ratelimit-limit']).toBe('2');
    expect(limited.headers['x-ratelimit-reset']).toBe('60');
    await expect(ollamaWith(url, key).chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 429 });

    clock = new Date(clock.getTime() + 30_000);
    expect((await raw(url, '/api/chat', { body: hi, headers: bearer(key) })).status).toBe(200);
    // Refused requests were not counted as usage.
    await app.usage.flush();
    const rows = await app.usage.store.query({});
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(3);
    expectNotLogged(h!, [key]);
  });

  it('answers 429 when a key has its tier\'s maxQueued requests waiting', async () => {
    const { url, app } = await start({ sim: { tokenIntervalMs: 20, replyTokens: 20 }, config: { users: { tiers: { q: { tokensPerDay: null, maxQueued: 1 } }, defaultTier: 'q' } } });
    const { key } = await app.keys.create({ name: 'frank' });
    const first = raw(url, '/api/chat', { body: hi, headers: bearer(key) });
    await new Promise((r) => setTimeout(r, 50));
    const second = raw(url, '/api/chat', { body: hi, headers: bearer(key) });
    await new Promise((r) => setTimeout(r, 50));
    const third = await raw(url, '/api/chat', { body: hi, headers: bearer(key) });
    expect(third.status).toBe(429);
    expect(JSON.parse(third.text).error).toMatch(/too many queued requests: this key may have 1 waiting/);
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });
});
