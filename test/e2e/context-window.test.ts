/**
 * The context window lookup under a slow upstream: /api/show that takes longer than the old
 * 5-second cut-off is waited for (the window is the model's, not `context.defaultWindowTokens`), and
 * a failed lookup is not remembered as "no context length". Parley talks to the simulator through
 * a small proxy that delays or fails `/api/show` only.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const WINDOW = 1024;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Forwards to `target`; `/api/show` is first passed to `onShow` (delay it, or answer it). */
async function proxy(target: string, onShow: (res: import('node:http').ServerResponse) => Promise<boolean>): Promise<string> {
  const to = new URL(target);
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/api/show' && (await onShow(res))) return req.resume();
      const up = httpRequest({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function parleyVia(sim: Simulator, onShow: Parameters<typeof proxy>[1]): Promise<Harness> {
  const url = await proxy(sim.url, onShow);
  const h = await startHarness({ simulator: sim, config: { upstreams: [url], context: { replyReserveTokens: 64 } } });
  cleanups.push(() => h.close());
  return h;
}

const huge = Array.from({ length: 1200 }, (_, i) => `word${i % 20}`).join(' ');
const turn = (h: Harness, sessionId: string, content: string) =>
  fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', session_id: sessionId, stream: false, messages: [{ role: 'user', content }] }) });

describe('context window lookup', () => {
  test('a slow /api/show (6 s) is waited for: the model\'s 1024-token window applies, not the 4096 default', async () => {
    const sim = await startSimulator({ models: [{ name: 'llama3.2:latest', contextLength: WINDOW, capabilities: ['completion'] }] });
    cleanups.push(() => sim.close());
    const h = await parleyVia(sim, async () => {
      await new Promise((r) => setTimeout(r, 6_000));
      return false;
    });
    const res = await turn(h, 'slow-show', huge);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/but model 'llama3.2' has a context window of 1024 tokens/);
    expect(sim.requests.filter((r) => r.path === '/api/chat')).toHaveLength(0);
  }, 20_000);

  test('a failed /api/show is not remembered: the next turn asks again and gets the model\'s window', async () => {
    const sim = await startSimulator({ models: [{ name: 'llama3.2:latest', contextLength: WINDOW, capabilities: ['completion'] }] });
    cleanups.push(() => sim.close());
    let shows = 0;
    const h = await parleyVia(sim, async (res) => {
      if (++shows > 1) return false;
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"busy"}');
      return true;
    });
    // The first lookup fails: the default window is used, and said so in the log.
    expect((await turn(h, 'first', 'Hello')).status).toBe(200);
    expect(h.logs.some((l) => l.msg === 'context.window_unknown' && l.source === 'default')).toBe(true);
    // The next turn asks again (no cached failure) and gets 1024.
    const res = await turn(h, 'second', huge);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/context window of 1024 tokens/);
    expect(shows).toBe(2);
  });
});
