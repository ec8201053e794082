import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { ParleyError } from '../../errors/parley-error.js';
import { relayRaw } from '../../chat/raw-relay.js';
import type { UpstreamEntry, UpstreamPool } from '../../upstream/upstream-pool.js';
import { parseJsonObject } from '../http/json-body.js';
import { takeOver } from '../http/http-server.js';

const JSON_UTF8 = 'application/json; charset=utf-8';

/**
 * Ollama's management endpoints (reference §1.4): they bypass the queue. Reads merge every
 * reachable upstream (`/api/tags`, `/api/ps`); model-specific calls go to an upstream that serves
 * the model; writes without a served model (pull, push, create, blobs) go to the primary upstream
 * (the first reachable one in config order). Bodies and replies are relayed byte for byte.
 */
export function registerManagementRoutes(app: FastifyInstance, pool: UpstreamPool): void {
  app.get('/', async (_req, reply) => reply.type('text/plain; charset=utf-8').send('Ollama is running'));

  app.get('/api/version', async (request, reply) => {
    const entry = pool.primary();
    try {
      const res = await entry.node.request({ method: 'GET', path: '/api/version', signal: AbortSignal.timeout(5_000) });
      return await sendBuffered(reply, res);
    } catch (e) {
      const known = pool.entries.find((x) => x.node.health.version)?.node.health.version;
      if (known) return reply.type(JSON_UTF8).send(JSON.stringify({ version: known }));
      throw e;
    }
  });

  app.get('/api/tags', async (_req, reply) => {
    const lists = await fromAll(pool, '/api/tags');
    const byName = new Map<string, Record<string, unknown>>();
    for (const m of lists.flat()) if (!byName.has(String(m.name))) byName.set(String(m.name), m);
    const models = [...byName.values()].sort((a, b) => Date.parse(String(b.modified_at)) - Date.parse(String(a.modified_at)));
    return reply.type(JSON_UTF8).send(JSON.stringify({ models }));
  });

  app.get('/api/ps', async (_req, reply) => {
    const lists = await fromAll(pool, '/api/ps');
    const models = lists.flat().sort((a, b) => Date.parse(String(b.expires_at)) - Date.parse(String(a.expires_at)));
    return reply.type(JSON_UTF8).send(JSON.stringify({ models }));
  });

  const byModel = (field: 'model' | 'source') => async (request: FastifyRequest, reply: FastifyReply) => {
    const body = parseJsonObject(request.body, 'api.Request');
    const name = body[field] ?? body.name;
    const entry = typeof name === 'string' && name !== '' ? pool.pick(name) : pool.primary();
    await forward(request, reply, entry, request.body as Buffer);
  };
  app.post('/api/show', byModel('model'));
  app.post('/api/copy', byModel('source'));
  app.delete('/api/delete', byModel('model'));

  const toPrimary = async (request: FastifyRequest, reply: FastifyReply) => {
    parseJsonObject(request.body, 'api.Request');
    await forward(request, reply, pool.primary(), request.body as Buffer);
  };
  app.post('/api/pull', toPrimary);
  app.post('/api/push', toPrimary);
  app.post('/api/create', toPrimary);

  // Blob uploads: the body is streamed straight to the upstream, never held in memory.
  void app.register(async (blobs) => {
    blobs.removeAllContentTypeParsers();
    blobs.addContentTypeParser('*', (_req, _payload, done) => done(null));
    blobs.head('/api/blobs/:digest', async (request, reply) => forward(request, reply, pool.primary(), null));
    blobs.post('/api/blobs/:digest', async (request, reply) => forward(request, reply, pool.primary(), request.raw));
  });
}

/** Relays one request to `entry` and its response back, streaming both ways, aborting upstream if the client leaves. */
async function forward(request: FastifyRequest, reply: FastifyReply, entry: UpstreamEntry, body: Buffer | NodeJS.ReadableStream | null): Promise<void> {
  const { client, signal } = takeOver(request, reply);
  const headers: Record<string, string> = {};
  for (const h of ['content-type', 'accept', 'user-agent', 'content-length'] as const) {
    const v = request.headers[h];
    if (typeof v === 'string' && (h !== 'content-length' || body === request.raw)) headers[h] = v;
  }
  try {
    const res = await entry.node.request({ method: request.method as Dispatcher.HttpMethod, path: request.url, headers, body, signal });
    await relayRaw(res, client, entry.node.url);
  } catch (e) {
    if (!client.gone) {
      request.log.warn({ err: e, upstream: entry.node.url }, 'request.failed');
      client.fail(e);
    }
  }
}

async function sendBuffered(reply: FastifyReply, res: Dispatcher.ResponseData): Promise<FastifyReply> {
  const bytes = Buffer.from(await res.body.arrayBuffer());
  const ct = res.headers['content-type'];
  if (typeof ct === 'string') void reply.type(ct);
  return reply.status(res.statusCode).send(bytes);
}

/** `models` arrays from every reachable upstream; fails only when none answers. */
async function fromAll(pool: UpstreamPool, path: string): Promise<Array<Array<Record<string, unknown>>>> {
  const results = await Promise.allSettled(
    pool.entries.map(async (e) => {
      const res = await e.node.request({ method: 'GET', path, signal: AbortSignal.timeout(10_000) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new ParleyError('PARLEY_ERR_UPSTREAM_REJECTED', `Ollama at ${e.node.url} answered ${res.statusCode} to ${path}`, { status: 502 });
      }
      return (((await res.body.json()) as { models?: Array<Record<string, unknown>> | null }).models ?? []);
    }),
  );
  const ok = results.filter((r): r is PromiseFulfilledResult<Array<Record<string, unknown>>> => r.status === 'fulfilled');
  if (ok.length === 0) throw (results[0] as PromiseRejectedResult).reason;
  return ok.map((r) => r.value);
}
