import type { FastifyInstance } from 'fastify';
import { RUNTIME_SETTINGS } from '../../config/live-config.js';
import { ParleyError } from '../../errors/parley-error.js';
import type { UsageRow } from '../../usage/usage-store.js';
import { upstreamsView } from '../http/upstream-view.js';
import { adminBody, auditNote, sendJson, stringField, type AdminDeps } from './admin-context.js';

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Upstreams (GET /admin/upstreams: health and breaker state), models (GET /admin/models; POST /admin/models/preload | unload | reload `{"model"}`), sessions
 * (GET /admin/sessions/:id, GET /admin/sessions?key=<key id>), configuration (GET / PATCH
 * /admin/config), usage (GET /admin/usage?key=&model=&from=&to=&format=json|csv) and the audit log
 * (GET /admin/audit?limit=).
 */
export function registerAdminOpsRoutes(app: FastifyInstance, deps: AdminDeps): void {
  // Upstreams: health, circuit breaker state (closed / open / half-open), inference, queue.
  app.get('/admin/upstreams', async (_request, reply) => {
    await deps.pool.checkAll();
    return sendJson(reply, 200, { upstreams: upstreamsView(deps.pool) });
  });
  app.get('/admin/models', async (_request, reply) => sendJson(reply, 200, { upstreams: await deps.models.status() }));
  for (const action of ['preload', 'unload', 'reload'] as const) {
    app.post(`/admin/models/${action}`, async (request, reply) => {
      const model = stringField(adminBody(request), 'model');
      auditNote(request, model);
      if (!(await deps.pool.knowsModel(model))) throw new ParleyError('PARLEY_ERR_ADMIN_NOT_FOUND', `model '${model}' not found on any upstream`);
      const results = await deps.models[action](model);
      auditNote(request, model, { results });
      return sendJson(reply, 200, { model, action, results });
    });
  }

  app.get('/admin/sessions/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    auditNote(request, id);
    const found = await deps.sessions.get(deps.sessions.resolveId(id));
    if (!found) throw new ParleyError('PARLEY_ERR_ADMIN_NOT_FOUND', `session '${id}' not found`);
    const { session, messages } = found;
    let promptTokens = 0;
    let replyTokens = 0;
    for (const m of messages) {
      promptTokens += m.metrics?.promptTokens ?? 0;
      replyTokens += m.metrics?.completionTokens ?? 0;
    }
    const context = (await deps.inspectContext?.(session.id)) ?? null;
    return sendJson(reply, 200, {
      session,
      owner_key_id: (await deps.audit.ownerOf(session.id)) ?? null,
      totals: { messages: messages.length, incomplete: messages.filter((m) => m.status === 'incomplete').length, prompt_tokens: promptTokens, reply_tokens: replyTokens },
      context,
      messages,
    });
  });
  app.get('/admin/sessions', async (request, reply) => {
    const key = (request.query as { key?: string }).key;
    auditNote(request, key ?? null);
    if (typeof key !== 'string' || key === '') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid key: give ?key=<key id>');
    return sendJson(reply, 200, { key_id: key, sessions: await deps.audit.sessionsOf(key) });
  });

  app.get('/admin/config', async (_request, reply) => sendJson(reply, 200, { settings: deps.live.runtimeView(), changeable: RUNTIME_SETTINGS }));
  app.patch('/admin/config', async (request, reply) => {
    const body = adminBody(request);
    auditNote(request, Object.keys(body).join(',') || null, { requested: body });
    const changed = deps.live.update(body);
    auditNote(request, changed.map((c) => c.path).join(','), { changed });
    return sendJson(reply, 200, { changed, settings: deps.live.runtimeView() });
  });

  app.get('/admin/usage', async (request, reply) => {
    const q = request.query as Record<string, string | undefined>;
    for (const f of ['from', 'to'] as const) if (q[f] !== undefined && !DAY.test(q[f])) throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid ${f}: must be a day YYYY-MM-DD`);
    if (q.format !== undefined && q.format !== 'json' && q.format !== 'csv') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid format: json or csv');
    auditNote(request, q.key ?? null, { model: q.model ?? null, from: q.from ?? null, to: q.to ?? null, format: q.format ?? 'json' });
    await deps.usage.flush();
    const rows = await deps.usage.store.query({ keyId: q.key, model: q.model, from: q.from, to: q.to });
    if (q.format === 'csv') return reply.status(200).type('text/csv; charset=utf-8').send(toCsv(rows));
    return sendJson(reply, 200, { usage: rows.map(snake) });
  });

  app.get('/admin/audit', async (request, reply) => {
    const limit = Number((request.query as { limit?: string }).limit ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid limit: a whole number from 1 to 1000');
    return sendJson(reply, 200, { entries: await deps.audit.list(limit) });
  });
}

const COLUMNS = ['day', 'key_id', 'model', 'requests', 'prompt_tokens', 'reply_tokens', 'errors', 'duration_ms'] as const;

function snake(r: UsageRow): Record<(typeof COLUMNS)[number], string | number> {
  return { day: r.day, key_id: r.keyId, model: r.model, requests: r.requests, prompt_tokens: r.promptTokens, reply_tokens: r.replyTokens, errors: r.errors, duration_ms: r.durationMs };
}

function toCsv(rows: UsageRow[]): string {
  const cell = (v: string | number) => (typeof v === 'number' ? String(v) : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => cell(snake(r)[c])).join(','))].join('\n') + '\n';
}
