// @ts-check
/**
 * B. The minimal relay: node:http in, undici Pool.request out, every chunk written through as it
 * arrives with drain handling. What Node itself costs. Usage: node bench/relay.mjs <port> <upstream>
 */
import { createServer } from 'node:http';
import { once } from 'node:events';
import { Pool } from 'undici';

const [port = '0', upstream = 'http://127.0.0.1:11434'] = process.argv.slice(2);
const pool = new Pool(upstream, { connections: 1024, pipelining: 1 });

const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, async (req, res) => {
  const ac = new AbortController();
  res.once('close', () => { if (!res.writableFinished) ac.abort(); });
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const up = await pool.request({
      method: /** @type {import('undici').Dispatcher.HttpMethod} */ (req.method ?? 'GET'),
      path: req.url ?? '/',
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
      body: chunks.length ? Buffer.concat(chunks) : null,
      signal: ac.signal,
    });
    const headers = /** @type {Record<string, string>} */ ({});
    const ct = up.headers['content-type'];
    if (typeof ct === 'string') headers['content-type'] = ct;
    res.writeHead(up.statusCode, headers);
    for await (const chunk of up.body) {
      if (!res.write(chunk)) await once(res, 'drain', { signal: ac.signal });
    }
    res.end();
  } catch {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  }
});
server.listen(Number(port), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`relay listening on http://127.0.0.1:${a && typeof a === 'object' ? a.port : port}\n`);
});
// A clean exit on SIGTERM, so that `--cpu-prof` writes its profile (bench/cell.mjs).
process.once('SIGTERM', () => process.exit(0));
