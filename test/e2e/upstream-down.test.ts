import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { simReplyText } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { raw } from './raw-http.js';

/**
 * Ollama goes away and comes back (`sim.crash()` / `sim.restart()`): Parley itself stays up,
 * reports the outage on /api/health, answers model calls with an Ollama-shaped error (degraded
 * mode `error`, the default: 503 with Retry-After, docs/errors.md PARLEY_ERR_DEGRADED_UNAVAILABLE),
 * management calls with a 502, and serves again once Ollama is back, without a restart of Parley.
 */

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
  // A first call while Ollama is up, so Parley has connections and a catalog to lose.
  expect((await h.ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'warm up' }] })).done).toBe(true);
  await h.sim.crash();
});
afterEach(async () => {
  await h.close();
});

const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };

describe('with the upstream Ollama down', () => {
  it("GET / still answers 200 'Ollama is running'", async () => {
    const r = await raw(h.url, '/');
    expect([r.status, r.text]).toEqual([200, 'Ollama is running']);
  });

  it("/api/health answers 503 'unavailable' with the upstream unreachable and the connection error", async () => {
    const r = await raw(h.url, '/api/health');
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text) as { status: string; upstreams: Array<{ url: string; reachable: boolean; error: string | null }>; database: { ok: boolean } };
    expect(body.status).toBe('unavailable');
    expect(body.upstreams).toHaveLength(1);
    expect(body.upstreams[0]).toMatchObject({ url: h.sim.url, reachable: false });
    expect(body.upstreams[0]?.error).toMatch(/ECONNREFUSED|unavailable/);
    expect(body.database.ok).toBe(true);
  });

  it('chat answers 503 with Retry-After and an Ollama-shaped {"error"} naming the model, streaming or not', async () => {
    for (const body of [hi, { ...hi, stream: false }]) {
      const r = await raw(h.url, '/api/chat', { body });
      expect(r.status).toBe(503);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      const parsed = JSON.parse(r.text) as Record<string, unknown>;
      expect(Object.keys(parsed)).toEqual(['error']);
      expect(parsed.error).toContain("'llama3.2'");
      expect(parsed.error).toMatch(/unavailable/);
    }
  });

  it('ollama-js throws ResponseError with status 503 for chat, generate and embed', async () => {
    await expect(h.ollama.chat(hi)).rejects.toMatchObject({ name: 'ResponseError', status_code: 503, error: expect.stringContaining('unavailable') });
    await expect(h.ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true })).rejects.toMatchObject({ name: 'ResponseError', status_code: 503 });
    await expect(h.ollama.embed({ model: 'nomic-embed-text', input: 'x' })).rejects.toMatchObject({ name: 'ResponseError', status_code: 503 });
  });

  it('management calls (list, ps, show) answer an Ollama-shaped 502 naming the upstream instead of hanging', async () => {
    for (const call of [() => h.ollama.list(), () => h.ollama.ps(), () => h.ollama.show({ model: 'llama3.2' })]) {
      await expect(call()).rejects.toMatchObject({ name: 'ResponseError', status_code: 502, error: expect.stringContaining(h.sim.url) });
    }
  });

  it('after the upstream restarts, chat works again and health is ok', async () => {
    await expect(h.ollama.chat(hi)).rejects.toMatchObject({ status_code: 503 });
    await h.sim.restart();
    const r = await h.ollama.chat(hi);
    expect(r.message.content).toBe(simReplyText('hi', 8));
    let streamed = '';
    for await (const c of await h.ollama.chat({ ...hi, stream: true })) streamed += c.message.content;
    expect(streamed).toBe(simReplyText('hi', 8));
    const health = await raw(h.url, '/api/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({ status: 'ok', upstreams: [{ reachable: true }] });
  });
});
