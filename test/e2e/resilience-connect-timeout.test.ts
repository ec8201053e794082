import { connect, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { raw } from './raw-http.js';

/**
 * Connect timeout (issue 5), on loopback only: an "upstream" whose TCP handshakes are never
 * answered, so Parley's connect attempt times out rather than being refused.
 *
 * How: a listening socket with backlog 1 whose owner never calls accept(). Node accepts every
 * pending connection as soon as its event loop polls, so the listener lives in a worker thread
 * whose event loop is blocked in `Atomics.wait` right after `listen()`. Linux then completes
 * handshakes into the accept queue until it holds backlog + 1 connections, and from then on drops
 * further SYNs (the queue is full: `tcp_conn_request` drops, SYN cookies only apply to a full SYN
 * queue), so the client side retransmits its SYN and never sees SYN-ACK — a connect timeout. The
 * test proves the backlog is full (a probe connect does not complete) before pointing Parley at it.
 */

interface Blackhole {
  url: string;
  port: number;
  close(): Promise<void>;
}

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const net = require('node:net');
const server = net.createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  parentPort.postMessage(server.address().port);
  // Block this thread's event loop: libuv never polls the listener, so nothing is accepted.
  const flag = new Int32Array(workerData.flag);
  Atomics.wait(flag, 0, 0);
  server.close();
});
`;

/** A loopback listener that never accepts, its accept queue already full. */
async function blackhole(): Promise<Blackhole> {
  const flag = new SharedArrayBuffer(4);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { flag } });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', (p: number) => resolve(p));
    worker.once('error', reject);
  });
  const fillers: Socket[] = [];
  // Backlog 1 admits two connections on Linux (the queue is full when it holds more than backlog).
  for (let i = 0; i < 8; i++) {
    const { socket, outcome } = await tryConnect(port, 500);
    fillers.push(socket);
    if (outcome === 'timeout') break;
    expect(outcome).toBe('connected');
  }
  // The last attempt was not answered: the queue is full.
  const probe = await tryConnect(port, 500);
  fillers.push(probe.socket);
  expect(probe.outcome).toBe('timeout');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      for (const s of fillers) s.destroy();
      const view = new Int32Array(flag);
      Atomics.store(view, 0, 1);
      Atomics.notify(view, 0);
      await worker.terminate();
    },
  };
}

function tryConnect(port: number, timeoutMs: number): Promise<{ socket: Socket; outcome: 'connected' | 'timeout' | string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const timer = setTimeout(() => resolve({ socket, outcome: 'timeout' }), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve({ socket, outcome: 'connected' });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ socket, outcome: e.code ?? e.message });
    });
  });
}

let h: Harness | undefined;
let hole: Blackhole | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  await hole?.close();
  hole = undefined;
});

describe('connect timeout', () => {
  it('an upstream that never answers the TCP handshake: the chat fails fast with the connect-timeout error, counted as kind connect', async () => {
    hole = await blackhole();
    h = await startHarness({ config: { upstreams: [hole.url], upstream: { connectTimeoutMs: 300 }, resilience: { maxRetries: 0 } } });

    const t0 = Date.now();
    const r = await raw(h.url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] } });
    const elapsed = Date.now() - t0;
    // Nothing answered: the default degraded mode (error) answers 503 in Ollama's shape and quotes
    // the connect timeout as the reason (docs/errors.md, PARLEY_ERR_DEGRADED_UNAVAILABLE).
    expect(r.status).toBe(503);
    expect(r.headers['x-parley-degraded']).toBe('error');
    expect(JSON.parse(r.text)).toEqual({
      error: `Ollama is unavailable right now (Ollama at ${hole.url} did not accept a connection in time (UND_ERR_CONNECT_TIMEOUT)), so model 'llama3.2' cannot answer; please try again in 10 seconds`,
    });
    // A health check (one connect timeout) runs first to learn the model, then the call (another):
    // about a second each (undici's timers tick every ~0.5 s), never the OS's own ~2 minute SYN
    // retry limit.
    expect(elapsed).toBeLessThan(5_000);
    expect(h.logs.some((l) => l.msg === 'upstream.call_failed' && l.code === 'PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT')).toBe(true);

    const metrics = (await raw(h.url, '/metrics')).text;
    expect(metrics).toContain(`parley_upstream_timeouts_total{upstream="${hole.url}",kind="connect"} 1\n`);
    expect(metrics).toContain(`parley_upstream_failures_total{upstream="${hole.url}",code="PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT"} 1\n`);

    // With a retry, each attempt times out and counts: the first and one retry.
    await h.close();
    h = await startHarness({ config: { upstreams: [hole.url], upstream: { connectTimeoutMs: 200 }, resilience: { maxRetries: 1, retryBaseDelayMs: 1, retryMaxDelayMs: 5, breakerThreshold: 10 } } });
    const r2 = await raw(h.url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false } });
    expect(r2.status).toBe(503);
    expect(JSON.parse(r2.text).error).toMatch(/did not accept a connection in time/);
    const m2 = (await raw(h.url, '/metrics')).text;
    expect(m2).toContain(`parley_upstream_timeouts_total{upstream="${hole.url}",kind="connect"} 2\n`);
    expect(m2).toContain(`parley_resilience_retries_total{code="PARLEY_ERR_UPSTREAM_CONNECT_TIMEOUT"} 1\n`);
  });
});
