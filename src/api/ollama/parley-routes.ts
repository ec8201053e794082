import type { FastifyInstance } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { SessionService } from '../../conversations/session-service.js';
import type { StoredMessage } from '../../conversations/session-store.js';
import type { UpstreamPool } from '../../upstream/upstream-pool.js';
import { parseJsonObject } from '../http/json-body.js';
import { upstreamsView } from '../http/upstream-view.js';
import { toWireMessage } from '../../conversations/session-service.js';
import type { MemoryGuardian } from '../../resilience/memory-guardian.js';
import type { ContextStore, SessionContextState } from '../../context/context-store.js';
import type { SessionAccess } from '../../conversations/session-access.js';
import { callerOf } from '../http/auth.js';

export interface ParleyRoutesDeps {
  pool: UpstreamPool;
  sessions: SessionService;
  version: string;
  startedAt: number;
  databaseDialect: string;
  /** Memory guardian, for its state (optional so tests can build the routes alone). */
  guardian?: MemoryGuardian | undefined;
  /** degraded.mode, reported as `degraded_mode`. */
  degradedMode?: string | undefined;
  /** Context state per session (truncation, summary), shown by GET /api/sessions/:id. */
  context?: { store: ContextStore; settled(sessionId: string): Promise<void> } | undefined;
  /** Ownership (another key's session is 404) and soft delete (410). */
  access?: SessionAccess | undefined;
}

/**
 * Parley's own endpoints beside Ollama's: `GET /api/health`, `GET /api/queue`,
 * `POST /api/sessions`, `GET /api/sessions/:id`. Shapes are in docs/api.md.
 */
export function registerParleyRoutes(app: FastifyInstance, deps: ParleyRoutesDeps): void {
  app.get('/api/health', async (_req, reply) => {
    await deps.pool.checkAll();
    const upstreams = upstreamsView(deps.pool);
    const databaseOk = await deps.sessions.store.ping();
    const serving = upstreams.filter((u) => u.serving).length;
    const memory = deps.guardian?.snapshot();
    const status = !databaseOk || serving === 0 ? 'unavailable' : serving < upstreams.length || (memory !== undefined && memory.state !== 'ok') ? 'degraded' : 'ok';
    return reply.status(status === 'unavailable' ? 503 : 200).send({
      status,
      version: deps.version,
      uptime_ms: Date.now() - deps.startedAt,
      upstreams,
      database: { dialect: deps.databaseDialect, ok: databaseOk },
      ...(memory ? { memory } : {}),
      ...(deps.degradedMode ? { degraded_mode: deps.degradedMode } : {}),
      queue: { depth: sum(upstreams.map((u) => u.queue.depth)), active: sum(upstreams.map((u) => u.queue.active)) },
    });
  });

  app.get('/api/queue', async (request, reply) => {
    const q = request.query as { request_id?: string };
    const upstreams = deps.pool.entries.map((e) => {
      const snap = e.queue.snapshot();
      return { url: e.node.url, slots: snap.slots, active: snap.active, depth: snap.depth, max_depth: snap.maxDepth, paused: snap.paused };
    });
    let position: number | null = null;
    if (q.request_id) {
      for (const e of deps.pool.entries) position ??= e.queue.positionOf(q.request_id) ?? null;
    }
    return reply.send({ depth: sum(upstreams.map((u) => u.depth)), active: sum(upstreams.map((u) => u.active)), upstreams, ...(q.request_id ? { request_id: q.request_id, position } : {}) });
  });

  app.post('/api/sessions', async (request, reply) => {
    const body = request.body === undefined || (Buffer.isBuffer(request.body) && request.body.length === 0) ? {} : parseJsonObject(request.body, 'parley.SessionRequest');
    const id = body.session_id === undefined ? deps.sessions.mintId() : deps.sessions.resolveId(body.session_id);
    const model = typeof body.model === 'string' ? body.model : '';
    await deps.access?.forChat(id, callerOf(request));
    const session = await deps.sessions.create(id, model);
    return reply.status(201).header('X-Session-Id', id).send({ session_id: session.id, status: session.status, created_at: session.createdAt });
  });

  app.get('/api/sessions/:id', async (request, reply) => {
    const id = deps.sessions.resolveId((request.params as { id: string }).id);
    const notFound = () => new ParleyError('PARLEY_ERR_SESSION_NOT_FOUND', `session '${id}' not found`);
    await deps.access?.read(id, callerOf(request), notFound);
    await deps.context?.settled(id);
    const found = await deps.sessions.get(id);
    if (!found) throw notFound();
    const s = found.session;
    return reply.send({
      session_id: s.id,
      status: s.status,
      model: s.model,
      title: s.title,
      created_at: s.createdAt,
      updated_at: s.updatedAt,
      last_active_at: s.lastActiveAt,
      archived_at: s.archivedAt,
      message_count: found.messages.length,
      messages: found.messages.map(toWire),
      ...(deps.context ? { context: contextWire(await deps.context.store.get(id)) } : {}),
    });
  });
}

function toWire(m: StoredMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { ...toWireMessage(m) };
  out.model = m.model;
  out.status = m.status;
  out.created_at = m.createdAt;
  if (m.tokens != null) {
    out.tokens = m.tokens;
    out.tokens_exact = m.tokensExact === true;
  }
  if (m.metrics) {
    out.done_reason = m.metrics.doneReason;
    out.prompt_eval_count = m.metrics.promptTokens;
    out.eval_count = m.metrics.completionTokens;
    out.total_duration = m.metrics.totalDurationNs;
    out.load_duration = m.metrics.loadDurationNs;
    out.prompt_eval_duration = m.metrics.promptEvalDurationNs;
    out.eval_duration = m.metrics.evalDurationNs;
  }
  return out;
}

/** The `context` object of GET /api/sessions/:id and GET /admin/sessions/:id (docs/api.md). */
export function contextWire(c: SessionContextState | undefined): Record<string, unknown> {
  const s = c?.summary ?? null;
  return {
    window_tokens: c?.windowTokens ?? null,
    truncations: c?.truncations ?? 0,
    truncated_messages: c?.truncatedMessages ?? 0,
    truncated_turns: c?.truncatedTurns ?? 0,
    dropped_through_seq: c?.droppedThroughSeq ?? null,
    summaries: c?.summaries ?? 0,
    summary: s && { text: s.text, covers_through_seq: s.throughSeq, covered_messages: s.messages, tokens: s.tokens, model: s.model, created_at: s.createdAt },
  };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
