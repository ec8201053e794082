import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { ModelCall, ModelCallService, ModelEndpoint } from '../../chat/model-call-service.js';
import type { SessionService } from '../../conversations/session-service.js';
import type { UpstreamPool } from '../../upstream/upstream-pool.js';
import { checkFieldType, parseJsonObject, type JsonObject } from '../http/json-body.js';
import { takeOver } from '../http/http-server.js';
import { threadCallerKey } from '../../conversations/thread-service.js';
import type { SessionAccess } from '../../conversations/session-access.js';
import type { Caller } from '../../usage/key-service.js';
import { callerOf } from '../http/auth.js';

export interface ModelRoutesDeps {
  calls: ModelCallService;
  sessions: SessionService;
  pool: UpstreamPool;
  /** threads.mode = thread: chats without a session id are threaded per caller (API key id, else client IP + User-Agent). */
  threads?: boolean | undefined;
  /** keep_alive added to requests that carry none (config `models.defaultKeepAlive`, read per request); '' = none. */
  defaultKeepAlive?: () => string;
  /** Session ownership and soft delete: checked (and a new id claimed by a keyed caller) before a session turn. */
  access?: SessionAccess | undefined;
  /** Told about every model request (least-recently-used model tracking). */
  onModelUse?: (model: string) => void;
}

/** Header a client sends to receive queue position chunks before the reply (documented in docs/api.md). */
export const QUEUE_UPDATES_HEADER = 'x-parley-queue-updates';

const GO_TYPES: Record<ModelEndpoint, string> = { chat: 'ChatRequest', generate: 'GenerateRequest', embed: 'EmbedRequest', embeddings: 'EmbeddingRequest' };

/**
 * The model-running endpoints of Ollama's API (reference §1.1-1.3): `POST /api/chat`,
 * `/api/generate`, `/api/embed`, `/api/embeddings`. Parley validates only the fields it reads
 * (`model`, `messages`, `prompt`, `stream`, `session_id`), with Ollama's texts; every other field
 * passes through to the upstream untouched.
 */
export function registerModelRoutes(app: FastifyInstance, deps: ModelRoutesDeps): void {
  for (const endpoint of ['chat', 'generate', 'embed', 'embeddings'] as const) {
    app.post(`/api/${endpoint}`, async (request, reply) => {
      const body = parseJsonObject(request.body, `api.${GO_TYPES[endpoint]}`);
      const call = await toModelCall(endpoint, body, request, deps);
      // Another key's session is 404, a deleted conversation 410: before any byte, nothing stored or sent upstream.
      if (call.sessionId !== undefined && deps.access) call.knownHistory = (await deps.access.forChat(call.sessionId, call.caller)).history ?? null;
      deps.onModelUse?.(call.model);
      const { client, signal } = takeOver(request, reply, call.sessionId ? { 'X-Session-Id': call.sessionId } : {});
      await deps.calls.run(call, client, signal);
    });
  }
}

async function toModelCall(endpoint: ModelEndpoint, body: JsonObject, request: FastifyRequest, deps: ModelRoutesDeps): Promise<ModelCall> {
  const struct = GO_TYPES[endpoint];
  checkFieldType(body, 'model', 'string', struct, 'string');
  checkFieldType(body, 'stream', 'bool', struct, 'bool');
  const model = typeof body.model === 'string' ? body.model : '';
  if (endpoint === 'chat') {
    checkFieldType(body, 'messages', 'array', struct, '[]api.Message');
    validateMessages(body.messages);
  }
  if (endpoint === 'generate') checkFieldType(body, 'prompt', 'string', struct, 'string');
  if (model === '') {
    if (endpoint === 'generate') throw new ParleyError('PARLEY_ERR_MODEL_NOT_FOUND', "model '' not found");
    throw new ParleyError('PARLEY_ERR_REQUEST_MODEL_REQUIRED', 'model is required');
  }

  let sessionId: string | undefined;
  const forwarded = { ...body };
  if (endpoint === 'chat') {
    const raw = body.session_id ?? request.headers['x-session-id'];
    delete forwarded.session_id;
    if (raw !== undefined && raw !== null) sessionId = deps.sessions.resolveId(raw);
  }
  if (!(await deps.pool.knowsModel(model))) {
    const text = endpoint === 'embed' || endpoint === 'embeddings' ? `model "${model}" not found, try pulling it first` : `model '${model}' not found`;
    throw new ParleyError('PARLEY_ERR_MODEL_NOT_FOUND', text);
  }
  const keepAlive = deps.defaultKeepAlive?.() ?? '';
  if (keepAlive !== '' && forwarded.keep_alive === undefined) forwarded.keep_alive = /^-?\d+$/.test(keepAlive) ? Number(keepAlive) : keepAlive;
  const forwardHeaders: Record<string, string> = {};
  for (const h of ['accept', 'user-agent'] as const) {
    const v = request.headers[h];
    if (typeof v === 'string') forwardHeaders[h] = v;
  }
  const caller = callerOf(request);
  return {
    endpoint,
    requestId: request.id,
    model,
    body: forwarded,
    clientStream: endpoint === 'chat' || endpoint === 'generate' ? body.stream !== false : false,
    threadCaller: deps.threads && endpoint === 'chat' && sessionId === undefined ? threadCallerOf(request, caller) : undefined,
    sessionId,
    queueUpdates: request.headers[QUEUE_UPDATES_HEADER] === '1',
    forwardHeaders,
    caller,
  };
}

/** Who a thread belongs to: the API key (by id) when the request has one, else the client IP + User-Agent. */
function threadCallerOf(request: FastifyRequest, caller: Caller | undefined): string {
  return threadCallerKey(caller ? ['key', caller.keyId] : [request.ip, String(request.headers['user-agent'] ?? '')]);
}

function validateMessages(messages: unknown): void {
  if (!Array.isArray(messages)) return;
  for (const m of messages) {
    if (m === null) continue;
    if (typeof m !== 'object' || Array.isArray(m)) {
      throw new ParleyError('PARLEY_ERR_REQUEST_FIELD_TYPE', `json: cannot unmarshal ${Array.isArray(m) ? 'array' : typeof m === 'boolean' ? 'bool' : typeof m} into Go struct field ChatRequest.messages of type api.Message`);
    }
    const msg = m as JsonObject;
    checkFieldType(msg, 'role', 'string', 'ChatRequest.messages', 'string');
    checkFieldType(msg, 'content', 'string', 'ChatRequest.messages', 'string');
    checkFieldType(msg, 'images', 'array', 'ChatRequest.messages', '[]api.ImageData');
  }
}
