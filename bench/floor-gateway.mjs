// @ts-check
/**
 * The CPU floor of a gateway built from the libraries Parley must use (developers' guide: Fastify,
 * pino, Kysely over better-sqlite3, prom-client), without Parley: the minimal relay (B) rebuilt
 * layer by layer. Each level adds only what every request of C0 (Parley asked without a session)
 * must do, in its cheapest form:
 *
 *   fastify  Fastify in (body as bytes, the reply hijacked and written raw as B does), undici out
 *   json     + the body parsed and re-serialized (the model name routes and queues the request)
 *   log      + one JSON access-log line per request with its request id (pino child, async write)
 *   auth     + the API key checked: SHA-256 of the bearer key, looked up in memory while SQLite's
 *            `data_version` is unchanged, else one indexed read through Kysely on the better-sqlite3
 *            file (keys are stored hashed, and a revoke by another process takes effect at once)
 *   metrics  + one prom-client histogram observation and one counter increment with labels
 *
 *   node bench/floor-gateway.mjs <port> <upstream> <level> [database file with api_keys]
 *
 * Used by `bench/cell.mjs` (BENCH_FLOOR=1) as targets F1…F5 beside B and C0.
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import Fastify from 'fastify';
import { Pool } from 'undici';

const LEVELS = ['fastify', 'json', 'log', 'auth', 'metrics'];
const [port = '0', upstream = 'http://127.0.0.1:11434', levelName = 'fastify', dbFile] = process.argv.slice(2);
const level = LEVELS.indexOf(levelName);
if (level < 0) throw new Error(`level must be one of ${LEVELS.join(', ')}`);
const pool = new Pool(upstream, { connections: 1024, pipelining: 1 });

const { pino } = await import('pino');
const logger = level >= 2 ? pino({ base: { service: 'floor' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: false })) : undefined;

/** @type {((hash: string) => Promise<unknown>) | undefined} */
let keyByHash;
if (level >= 3) {
  if (!dbFile) throw new Error('level auth needs the database file');
  const { Kysely, SqliteDialect, sql } = await import('kysely');
  const { default: SQLite } = await import('better-sqlite3');
  const file = new SQLite(dbFile);
  const db = new Kysely({ dialect: new SqliteDialect({ database: file }) });
  // The cheapest check that still sees a revoke by another process at once: rows read once are
  // kept while SQLite's data_version (changed by any other connection's commit) is unchanged.
  const dataVersion = file.prepare('pragma data_version').pluck();
  /** @type {Map<string, unknown>} */
  const known = new Map();
  let knownAt = -1;
  keyByHash = async (hash) => {
    const v = dataVersion.get();
    if (v !== knownAt) {
      known.clear();
      knownAt = /** @type {number} */ (v);
    }
    if (known.has(hash)) return known.get(hash);
    const row = (await sql`select * from api_keys where key_hash = ${hash}`.execute(db)).rows[0];
    known.set(hash, row);
    return row;
  };
}

/** @type {{ duration: import('prom-client').Histogram<string>, requests: import('prom-client').Counter<string> } | undefined} */
let metrics;
if (level >= 4) {
  const prom = await import('prom-client');
  metrics = {
    duration: new prom.Histogram({ name: 'floor_request_duration_seconds', help: 'request duration', labelNames: ['endpoint', 'outcome'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5] }),
    requests: new prom.Counter({ name: 'floor_requests_total', help: 'requests', labelNames: ['endpoint', 'status'] }),
  };
}

const app = Fastify({ logger: false, genReqId: () => randomUUID() });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/api/chat', async (request, reply) => {
  const startedAt = performance.now();
  if (keyByHash) {
    const m = /^bearer\s+(\S+)\s*$/i.exec(String(request.headers.authorization ?? ''));
    const row = m ? await keyByHash(createHash('sha256').update(m[1], 'utf8').digest('hex')) : undefined;
    if (!row) return reply.code(401).send({ error: 'unauthorized' });
  }
  let body = /** @type {Buffer | string} */ (request.body);
  if (level >= 1) {
    const parsed = JSON.parse(body.toString('utf8'));
    if (typeof parsed.model !== 'string') return reply.code(400).send({ error: 'model is required' });
    body = JSON.stringify(parsed);
  }
  // From here the relay is B's own loop (bench/relay.mjs), line for line, so F − B is what the levels add.
  reply.hijack();
  const res = reply.raw;
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  try {
    const up = await pool.request({ method: 'POST', path: '/api/chat', headers: { 'content-type': 'application/json' }, body, signal: ac.signal });
    const headers = /** @type {Record<string, string>} */ ({ 'x-request-id': request.id });
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
  const ms = performance.now() - startedAt;
  logger?.child({ reqId: request.id }).info({ method: 'POST', url: request.url, statusCode: res.statusCode, responseTime: Math.round(ms * 10) / 10 }, 'request completed');
  metrics?.duration.observe({ endpoint: 'chat', outcome: 'ok' }, ms / 1000);
  metrics?.requests.inc({ endpoint: 'chat', status: String(res.statusCode) });
});
app.get('/api/version', async () => ({ version: 'floor' }));
// Exits on SIGTERM so that `--cpu-prof` writes its profile (bench/cell.mjs BENCH_PROFILE_DIR).
process.once('SIGTERM', () => process.exit(0));
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.stdout.write(`floor gateway (${levelName}) listening on port ${port}\n`);
