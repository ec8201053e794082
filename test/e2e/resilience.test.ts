import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { startSimulator, simReplyText, type Simulator } from '../../src/sim/index.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { ndjson, raw } from './raw-http.js';

/**
 * Issue 5 through real HTTP: retries (never after the first byte), the per-upstream breaker,
 * timeouts with their own codes, the memory guardian's caps, and /metrics.
 */

let h: Harness | undefined;
const extra: Simulator[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const s of extra.splice(0)) await s.close();
});

async function start(opts: HarnessOptions): Promise<Harness> {
  h = await startHarness(opts);
  return h;
}

const hi = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };
const chats = (s: Simulator) => s.requests.filter((r) => r.path === '/api/chat');
const metric = async (url: string, line: RegExp) => (await raw(url, '/metrics')).text.split('\n').find((l) => line.test(l));

describe('retries', () => {
  it('retries a 503 before the first byte on the same upstream and answers 200', async () => {
    const p = await start({ sim: { faults: { statusCode: 503 } }, config: { resilience: { maxRetries: 3, retryBaseDelayMs: 100 } } });
    const res = raw(p.url, '/api/chat', { body: { ...hi, stream: false } });
    await p.sim.waitFor((r) => r.some((x) => x.path === '/api/chat'));
    p.sim.setFaults({});
    const r = await res;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).message.content).toBe(simReplyText('hi', 8));
    expect(chats(p.sim).length).toBeGreaterThanOrEqual(2);
    expect(chats(p.sim)[0]!.status).toBe(503);
    expect(await metric(p.url, /^parley_resilience_retries_total\{code="PARLEY_ERR_UPSTREAM_REJECTED"\}/)).toBeDefined();
  });

  it('with two upstreams, a retry goes to the other one that serves the model', async () => {
    const bad = await startSimulator({ faults: { statusCode: 502 } });
    const good = await startSimulator({});
    extra.push(bad, good);
    const p = await start({ simulator: bad, config: { upstreams: [bad.url, good.url], resilience: { maxRetries: 1 } } });
    const r = await raw(p.url, '/api/chat', { body: hi });
    expect(r.status).toBe(200);
    expect(ndjson(r.text).at(-1)).toMatchObject({ done: true });
    expect([chats(bad).length, chats(good).length]).toEqual([1, 1]);
  });

  it('never retries a 4xx or a 500 (the model cannot load)', async () => {
    for (const statusCode of [400, 500]) {
      const p = await start({ sim: { faults: { statusCode } }, config: { resilience: { maxRetries: 3, retryBaseDelayMs: 1 } } });
      const r = await raw(p.url, '/api/chat', { body: hi });
      expect(r.status).toBe(statusCode);
      expect(JSON.parse(r.text)).toEqual({ error: 'simulated failure' });
      expect(chats(p.sim)).toHaveLength(1);
      await p.close();
      h = undefined;
    }
  });

  it('never retries once the first byte reached the client: a reset mid-stream ends with an error line, one upstream call', async () => {
    const other = await startSimulator({});
    extra.push(other);
    const p = await start({ sim: { replyTokens: 8, faults: { resetAfterTokens: 3 } }, config: { upstreams: undefined, resilience: { maxRetries: 5, retryBaseDelayMs: 1 } } });
    const r = await raw(p.url, '/api/chat', { body: hi });
    expect(r.status).toBe(200);
    const lines = ndjson(r.text);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.slice(0, -1).every((l) => l.done === false)).toBe(true);
    expect(lines.at(-1)!.error).toMatch(/lost mid-reply/);
    expect(chats(p.sim)).toHaveLength(1);

    // Same with two upstreams: the second one is never asked, and with an error line mid-stream.
    await p.close();
    const broken = await startSimulator({ faults: { errorAfterTokens: 2 } });
    extra.push(broken);
    h = await startHarness({ simulator: broken, config: { upstreams: [broken.url, other.url], resilience: { maxRetries: 5, retryBaseDelayMs: 1 } } });
    const r2 = await raw(h.url, '/api/chat', { body: hi });
    expect(ndjson(r2.text).at(-1)).toEqual({ error: 'simulated mid-stream failure' });
    const r3 = await raw(h.url, '/api/generate', { body: { model: 'llama3.2', prompt: 'x' } });
    expect(ndjson(r3.text).at(-1)).toEqual({ error: 'simulated mid-stream failure' });
    expect([chats(broken).length, broken.requests.filter((x) => x.path === '/api/generate').length]).toEqual([1, 1]);
    expect(other.requests.filter((x) => x.path.startsWith('/api/chat') || x.path.startsWith('/api/generate'))).toHaveLength(0);
  });

  it('does not retry once queue updates started the response', async () => {
    const p = await start({ sim: { faults: { statusCode: 502 } }, config: { resilience: { maxRetries: 3, retryBaseDelayMs: 1 } } });
    const r = await raw(p.url, '/api/chat', { body: hi, headers: { 'x-parley-queue-updates': '1' } });
    expect(r.status).toBe(200);
    expect(ndjson(r.text).at(-1)).toEqual({ error: 'simulated failure' });
    expect(chats(p.sim)).toHaveLength(1);
  });
});

describe('circuit breaker', () => {
  it('opens after N consecutive failures, rejects at once, shows in health and metrics, and a probe closes it', async () => {
    const p = await start({ sim: { faults: { statusCode: 502 } }, config: { resilience: { maxRetries: 0, breakerThreshold: 3, breakerHalfOpenAfterMs: 300 } } });
    for (let i = 0; i < 3; i++) expect((await raw(p.url, '/api/chat', { body: hi })).status).toBe(502);
    const refused = await raw(p.url, '/api/chat', { body: hi });
    expect(refused.status).toBe(503);
    expect(refused.headers['x-parley-degraded']).toBe('error');
    expect(JSON.parse(refused.text).error).toMatch(/circuit breaker open/);
    expect(chats(p.sim)).toHaveLength(3);
    const health = JSON.parse((await raw(p.url, '/api/health')).text);
    expect(health.upstreams[0].breaker).toMatchObject({ state: 'open', consecutive_failures: 3 });
    expect(health.upstreams[0].serving).toBe(false);
    expect(health.status).toBe('unavailable');
    expect(await metric(p.url, /^parley_upstream_breaker_state\{/)).toMatch(/ 1$/);
    p.sim.setFaults({});
    await new Promise((r) => setTimeout(r, 320));
    expect((await raw(p.url, '/api/chat', { body: hi })).status).toBe(200);
    expect(JSON.parse((await raw(p.url, '/api/health')).text).upstreams[0].breaker.state).toBe('closed');
  });

  it('counts replies that break mid-stream: consecutive resets open it, a whole reply in between resets the count', async () => {
    const p = await start({ sim: { replyTokens: 6, faults: { resetAfterTokens: 2 } }, config: { resilience: { maxRetries: 0, breakerThreshold: 2, breakerHalfOpenAfterMs: 60_000 } } });
    const breaker = async () => JSON.parse((await raw(p.url, '/api/health')).text).upstreams[0].breaker;
    expect(ndjson((await raw(p.url, '/api/chat', { body: hi })).text).at(-1)!.error).toMatch(/lost mid-reply/);
    expect(await breaker()).toMatchObject({ state: 'closed', consecutive_failures: 1 });
    p.sim.setFaults({});
    expect(ndjson((await raw(p.url, '/api/chat', { body: hi })).text).at(-1)).toMatchObject({ done: true });
    expect(await breaker()).toMatchObject({ state: 'closed', consecutive_failures: 0 });
    p.sim.setFaults({ resetAfterTokens: 2 });
    for (let i = 0; i < 2; i++) await raw(p.url, '/api/chat', { body: hi });
    expect(await breaker()).toMatchObject({ state: 'open', last_failure: 'PARLEY_ERR_UPSTREAM_STREAM_BROKEN' });
    expect((await raw(p.url, '/api/chat', { body: hi })).status).toBe(503);
    expect(chats(p.sim)).toHaveLength(4);
  });

  it('is not opened by one model failing (404 model not found, 500 cannot load)', async () => {
    const p = await start({ sim: { faults: { statusCode: 500 } }, config: { resilience: { maxRetries: 0, breakerThreshold: 2 } } });
    for (let i = 0; i < 4; i++) expect((await raw(p.url, '/api/chat', { body: hi })).status).toBe(500);
    p.sim.setFaults({ statusCode: 404 });
    for (let i = 0; i < 4; i++) expect((await raw(p.url, '/api/chat', { body: hi })).status).toBe(404);
    expect(JSON.parse((await raw(p.url, '/api/health')).text).upstreams[0].breaker.state).toBe('closed');
  });
});

describe('timeouts', () => {
  it('first byte: a hanging upstream gets PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT, counted as kind first_byte', async () => {
    const p = await start({ sim: { faults: { hang: true } }, config: { upstream: { headersTimeoutMs: 300 }, resilience: { maxRetries: 0 } } });
    const t0 = Date.now();
    const r = await raw(p.url, '/api/chat', { body: hi });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error).toMatch(/did not start answering in time/);
    expect(p.logs.some((l) => l.code === 'PARLEY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT')).toBe(true);
    expect(await metric(p.url, /^parley_upstream_timeouts_total\{.*kind="first_byte"/)).toMatch(/ 1$/);
  });

  it('idle gap: silence mid-stream ends the stream with PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT, counted as kind idle', async () => {
    // undici's body timer ticks about every 0.5 s, so the gap is made much longer than the timeout.
    const p = await start({ sim: { tokenIntervalMs: 2_500, replyTokens: 3 }, config: { upstream: { bodyTimeoutMs: 300 }, resilience: { maxRetries: 3 } } });
    const r = await raw(p.url, '/api/chat', { body: hi });
    expect(r.status).toBe(200);
    expect(ndjson(r.text).at(-1)!.error).toMatch(/went silent mid-reply/);
    expect(p.logs.some((l) => l.code === 'PARLEY_ERR_UPSTREAM_IDLE_TIMEOUT')).toBe(true);
    expect(await metric(p.url, /^parley_upstream_timeouts_total\{.*kind="idle"/)).toMatch(/ 1$/);
    expect(chats(p.sim)).toHaveLength(1);
  });
});

describe('memory guardian', () => {
  it('sheds new requests with 503 above the RSS threshold; state in health and metrics', async () => {
    const p = await start({ config: { memory: { evictAboveRssBytes: 1, shedAboveRssBytes: 2, sampleIntervalMs: 10 } } });
    const r = await raw(p.url, '/api/chat', { body: hi });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
    expect(JSON.parse(r.text).error).toMatch(/low on memory/);
    const health = JSON.parse((await raw(p.url, '/api/health')).text);
    expect(health.memory).toMatchObject({ state: 'shedding', shed_requests: 1 });
    expect(await metric(p.url, /^parley_memory_guardian_state /)).toBe('parley_memory_guardian_state 2');
    expect(chats(p.sim)).toHaveLength(0);
  });

  it('refuses a turn past the session caps with 413', async () => {
    const p = await start({ config: { memory: { sessionMaxMessages: 4 } } });
    const turn = () => raw(p.url, '/api/chat', { body: { ...hi, stream: false, session_id: 'capped' } });
    expect((await turn()).status).toBe(200);
    expect((await turn()).status).toBe(200);
    const r = await turn();
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text).error).toMatch(/too large.*start a new session/);
  });

  it('cuts off a client that does not read once the stream buffer cap is passed, and aborts the upstream', async () => {
    const p = await start({ sim: { replyTokens: 200_000 }, config: { memory: { streamBufferMaxBytes: 64 * 1024 } } });
    const url = new URL(p.url);
    const sock = connect(Number(url.port), url.hostname);
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'long' });
    sock.write(`POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    sock.pause(); // never read: the kernel buffers fill, then Parley's buffer grows past the cap
    await p.sim.waitFor((r) => r.some((x) => x.path === '/api/generate' && x.aborted), 15_000);
    expect(await metric(p.url, /^parley_stream_slow_clients_cut_total /)).toBe('parley_stream_slow_clients_cut_total 1');
    sock.destroy();
  });
});

describe('/metrics', () => {
  it('serves the Prometheus text with Parley metric names', async () => {
    const p = await start({});
    await raw(p.url, '/api/chat', { body: hi });
    const r = await raw(p.url, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/text\/plain/);
    for (const name of ['parley_request_duration_seconds_bucket', 'parley_memory_rss_bytes', 'parley_degraded_responses_total', 'parley_upstream_breaker_state']) {
      expect(r.text).toContain(name);
    }
  });
});
