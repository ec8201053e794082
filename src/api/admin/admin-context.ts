import type { FastifyReply, FastifyRequest } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { LiveConfig } from '../../config/live-config.js';
import type { SessionService } from '../../conversations/session-service.js';
import type { Logger } from '../../observability/logger.js';
import type { ModelManager } from '../../upstream/model-manager.js';
import type { UpstreamPool } from '../../upstream/upstream-pool.js';
import type { AuditStore } from '../../usage/audit-store.js';
import type { KeyService } from '../../usage/key-service.js';
import type { UsageService } from '../../usage/usage-service.js';
import { parseJsonObject, type JsonObject } from '../http/json-body.js';

/** Everything the /admin routes act on. */
export interface AdminDeps {
  pool: UpstreamPool;
  keys: KeyService;
  usage: UsageService;
  audit: AuditStore;
  live: LiveConfig;
  sessions: SessionService;
  models: ModelManager;
  logger: Logger;
  now: () => Date;
  /** Context details of a session (token counts, truncations, summary) when the context module provides them. */
  inspectContext?: ((sessionId: string) => Promise<Record<string, unknown> | undefined>) | undefined;
}

const notes = new WeakMap<FastifyRequest, { target: string | null; details: Record<string, unknown> | null }>();

/** Sets what the audit entry of this request names as its target and details (never a key). */
export function auditNote(request: FastifyRequest, target: string | null, details: Record<string, unknown> | null = null): void {
  notes.set(request, { target, details });
}

export function auditNoteOf(request: FastifyRequest): { target: string | null; details: Record<string, unknown> | null } {
  return notes.get(request) ?? { target: null, details: null };
}

/** The JSON object body of an admin request; an empty body is `{}`. @throws ParleyError 400 */
export function adminBody(request: FastifyRequest): JsonObject {
  const raw = request.body;
  if (raw === undefined || (Buffer.isBuffer(raw) && raw.length === 0)) return {};
  return parseJsonObject(raw, 'admin request');
}

/** A required string field. @throws ParleyError PARLEY_ERR_REQUEST_INVALID naming the field */
export function stringField(body: JsonObject, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.trim() === '') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid ${field}: must be a non-empty string`);
  return v;
}

export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.status(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}
