// @ts-check
/**
 * The heap floor of one idle open stream in Node, without Parley: what node:http costs to hold one
 * streaming response open (client side of a gateway), and what undici costs to hold one upstream
 * response open (upstream side). A gateway holds both for each idle stream, so their sum is the
 * least any Node gateway on these libraries can use per idle stream (issue 3's target: ≤ 5 KB).
 *
 *   node --expose-gc bench/stream-heap-floor.mjs [streams=1000] [--json]
 *
 * The other end of every connection is a child process, so only this process's side is measured.
 */
import { createServer, request as httpRequest, Agent } from 'node:http';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { Pool } from 'undici';

const N = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? '1000');
const JSON_OUT = process.argv.includes('--json');
/** @type {Record<string, number>} KB of heap per stream, by side */
const floor = {};
const role = process.env.FLOOR_ROLE;

if (role === 'peer') {
  // The far end: for 'client' it opens N requests to the port and reads the first chunk of each;
  // for 'upstream' it serves N requests, each answered with one chunk and then held open.
  const held = [];
  process.on('message', (/** @type {any} */ m) => {
    if (m.op === 'open') {
      const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
      let firstChunks = 0;
      for (let i = 0; i < m.n; i++) {
        const req = httpRequest({ host: '127.0.0.1', port: m.port, method: 'POST', path: '/api/chat', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            if (++firstChunks === m.n) process.send?.({ op: 'opened' });
          });
          held.push(res);
        });
        req.end('{"model":"m","messages":[]}');
      }
    } else if (m.op === 'serve') {
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"model":"m","message":{"role":"assistant","content":"a"},"done":false}\n');
        held.push(res);
      });
      server.listen(0, '127.0.0.1', () => {
        const a = server.address();
        process.send?.({ op: 'serving', port: a && typeof a === 'object' ? a.port : 0 });
      });
    } else if (m.op === 'exit') process.exit(0);
  });
} else {
  const gc = /** @type {() => void} */ (/** @type {any} */ (globalThis).gc);
  if (!gc) throw new Error('run with node --expose-gc');
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const peer = (/** @type {string} */ r) => fork(fileURLToPath(import.meta.url), [String(N)], { env: { ...process.env, FLOOR_ROLE: r } });
  const next = (/** @type {import('node:child_process').ChildProcess} */ p, /** @type {string} */ op) => new Promise((resolve) => p.on('message', (/** @type {any} */ m) => m.op === op && resolve(m)));

  // 1. node:http server side: each request answered with a first chunk, then held open.
  {
    /** @type {import('node:http').ServerResponse[]} */
    const held = [];
    const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"model":"m","message":{"role":"assistant","content":"a"},"done":false}\n');
      held.push(res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const a = server.address();
    const client = peer('peer');
    const before = heap();
    client.send({ op: 'open', n: N, port: a && typeof a === 'object' ? a.port : 0 });
    await next(client, 'opened');
    await new Promise((r) => setTimeout(r, 300));
    const after = heap();
    floor['node:http, one idle streaming response held open'] = (after - before) / N / 1024;
    client.kill();
    for (const r of held) r.destroy();
    server.close();
  }

  // 2. undici side: one upstream streaming response per stream, first chunk read, then held open.
  {
    const up = peer('peer');
    up.send({ op: 'serve' });
    const { port } = /** @type {any} */ (await next(up, 'serving'));
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: N + 8, pipelining: 1 });
    const warm = await pool.request({ method: 'POST', path: '/api/chat', body: '{}' });
    await once(warm.body, 'data');
    const before = heap();
    const held = [];
    for (let i = 0; i < N; i++) {
      const ac = new AbortController();
      held.push(
        pool.request({ method: 'POST', path: '/api/chat', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}', signal: ac.signal }).then(async (r) => {
          await once(r.body, 'data');
          return { r, ac };
        }),
      );
    }
    const opened = await Promise.all(held);
    await new Promise((r) => setTimeout(r, 300));
    const after = heap();
    floor['undici Pool.request, one idle upstream response held open'] = (after - before) / N / 1024;
    for (const o of opened) o.ac.abort();
    up.kill();
    await pool.destroy();
  }
  if (JSON_OUT) console.log(JSON.stringify(floor));
  else for (const [what, kb] of Object.entries(floor)) console.log(`${what}: ${kb.toFixed(2)} KB heap per stream (${N} streams)`);
  process.exit(0);
}
