import type { FastifyInstance } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { UpstreamEntry } from '../../upstream/upstream-pool.js';
import { auditNote, sendJson, type AdminDeps } from './admin-context.js';

/** One upstream's queue as /admin shows it: every waiting request with key, model, position and wait. */
function queueView(e: UpstreamEntry) {
  const s = e.queue.snapshot();
  return {
    upstream: e.node.url,
    slots: s.slots,
    active: s.active,
    depth: s.depth,
    max_depth: s.maxDepth,
    paused: s.paused,
    draining: s.draining,
    waiting: s.waiting.map((w) => ({
      request_id: w.requestId,
      key: w.meta?.key ?? 'anonymous',
      model: w.meta?.model ?? null,
      endpoint: w.meta?.endpoint ?? null,
      position: w.position,
      waiting_ms: w.waitedMs,
    })),
  };
}

/**
 * GET /admin/queue; POST /admin/queue/pause | resume | drain | clear; DELETE /admin/queue/:requestId.
 * pause: nothing new starts (waiters stay, new requests queue); drain: new requests get 503 while
 * queued ones run; resume ends both; clear answers every waiting request 503; DELETE answers one.
 */
export function registerAdminQueueRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const view = () => ({ upstreams: deps.pool.entries.map(queueView) });
  app.get('/admin/queue', async (_request, reply) => sendJson(reply, 200, view()));
  for (const action of ['pause', 'resume', 'drain'] as const) {
    app.post(`/admin/queue/${action}`, async (request, reply) => {
      for (const e of deps.pool.entries) e.queue[action]();
      auditNote(request, 'queue');
      return sendJson(reply, 200, view());
    });
  }
  app.post('/admin/queue/clear', async (request, reply) => {
    let cleared = 0;
    for (const e of deps.pool.entries) cleared += e.queue.clear();
    auditNote(request, 'queue', { cleared });
    return sendJson(reply, 200, { cleared, ...view() });
  });
  app.delete('/admin/queue/:requestId', async (request, reply) => {
    const { requestId } = request.params as { requestId: string };
    auditNote(request, requestId);
    if (!deps.pool.entries.some((e) => e.queue.cancelWaiting(requestId))) {
      throw new ParleyError('PARLEY_ERR_ADMIN_NOT_FOUND', `no waiting request with id '${requestId}'`);
    }
    return sendJson(reply, 200, { cancelled: requestId });
  });
}
