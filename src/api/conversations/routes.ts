import type { FastifyInstance, FastifyRequest } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import { ERROR_CODES, type ErrorCode } from '../../errors/codes.js';
import { ParleyError } from '../../errors/parley-error.js';
import type { ConversationReplies, SendInput } from '../../chat/conversation-replies.js';
import type { ReplyEvent, ReplyRun } from '../../chat/reply-run.js';
import type { ConversationService } from '../../conversations/conversation-service.js';
import type { SessionAccess } from '../../conversations/session-access.js';
import { callerOf } from '../http/auth.js';
import { checkFieldType, parseJsonObject, type JsonObject } from '../http/json-body.js';
import { streamSse } from './sse.js';
import { conversationToMarkdown, conversationToWire, messageToWire } from './wire.js';
import { registerConversationWebSocket } from './websocket.js';

export interface ConversationRoutesDeps {
  conversations: ConversationService;
  replies: ConversationReplies;
  /** `conversations.websocket === 'on'`: register GET /api/conversations/:id/ws. */
  websocket: boolean;
  /** Ownership: with an API key, only the key's own conversations exist (others are 404). */
  access?: SessionAccess | undefined;
}

type IdParams = { id: string };

/**
 * The conversations API (docs/api.md, "Conversations API"): REST over stored conversations, the
 * reply to a new message as Server-Sent Events (resumable with Last-Event-ID), and a WebSocket
 * carrying the same events both ways. Registers @fastify/websocket when the WebSocket is on.
 * With an API key, a conversation belongs to the key that created it: every `/:id` route (the
 * WebSocket included, before its upgrade) answers another key's as unknown (404), lists show only
 * the key's own, and replies run as the key (budget, rate limits, fair queue, usage).
 */
export async function registerConversationRoutes(app: FastifyInstance, deps: ConversationRoutesDeps): Promise<void> {
  const { conversations, replies } = deps;
  if (deps.websocket) await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 * 1024 } });
  const access = deps.access;
  if (access) {
    // onRequest (after the auth hook), so it comes before the WebSocket's own 404/410 check.
    app.addHook('onRequest', async (request) => {
      if (!request.routeOptions.url?.startsWith('/api/conversations/:id')) return;
      const caller = callerOf(request);
      if (caller === undefined || caller.admin) return;
      const { id } = request.params as IdParams;
      await access.read(id, caller, () => new ParleyError('PARLEY_ERR_CONVERSATION_NOT_FOUND', `conversation '${id}' not found`), true);
    });
  }

  app.post('/api/conversations', async (request, reply) => {
    const body = isEmpty(request.body) ? {} : parseJsonObject(request.body, 'parley.ConversationRequest');
    checkFieldType(body, 'model', 'string', 'ConversationRequest', 'string');
    checkFieldType(body, 'title', 'string', 'ConversationRequest', 'string');
    const created = await conversations.create({ model: body.model as string | undefined, title: body.title as string | undefined });
    const caller = callerOf(request);
    if (caller) await access?.claim(created.id, caller.keyId);
    return reply.status(201).header('Location', `/api/conversations/${created.id}`).header('X-Session-Id', created.id).send(conversationToWire(created));
  });

  app.get('/api/conversations', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const page = await conversations.list({ limit: q.limit, cursor: q.cursor, q: q.q, ownerKeyId: callerOf(request)?.keyId });
    return reply.send({ conversations: page.items.map((c) => conversationToWire(c)), next_cursor: page.nextCursor });
  });

  app.get('/api/conversations/:id', async (request, reply) => {
    const { id } = request.params as IdParams;
    const { conversation, totals } = await conversations.get(id);
    return reply.send({ ...conversationToWire(conversation, totals), current_reply_id: replies.current(id)?.replyId ?? null });
  });

  app.patch('/api/conversations/:id', async (request, reply) => {
    const { id } = request.params as IdParams;
    const body = parseJsonObject(request.body, 'parley.ConversationUpdate');
    checkFieldType(body, 'title', 'string', 'ConversationUpdate', 'string');
    if (typeof body.title !== 'string') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'title is required');
    await conversations.rename(id, body.title);
    const { conversation, totals } = await conversations.get(id);
    return reply.send(conversationToWire(conversation, totals));
  });

  app.delete('/api/conversations/:id', async (request, reply) => {
    const { id } = request.params as IdParams;
    await conversations.delete(id);
    replies.cancel(id, 'the conversation was deleted');
    return reply.status(204).send();
  });

  app.post('/api/conversations/:id/restore', async (request, reply) => {
    const { id } = request.params as IdParams;
    await conversations.restore(id);
    const { conversation, totals } = await conversations.get(id);
    return reply.send(conversationToWire(conversation, totals));
  });

  app.get('/api/conversations/:id/messages', async (request, reply) => {
    const { id } = request.params as IdParams;
    const q = request.query as Record<string, unknown>;
    const page = await conversations.messages(id, { limit: q.limit, cursor: q.cursor, order: q.order });
    return reply.send({ messages: page.items.map(messageToWire), next_cursor: page.nextCursor });
  });

  app.post('/api/conversations/:id/messages', async (request, reply) => {
    const { id } = request.params as IdParams;
    const body = parseJsonObject(request.body, 'parley.MessageRequest');
    checkFieldType(body, 'stream', 'bool', 'MessageRequest', 'bool');
    const run = await replies.send(await toSendInput(id, body, request, deps));
    if (body.stream === false) return reply.send(await collect(run));
    streamSse(request, reply, run, 0, { 'X-Session-Id': id });
    return reply;
  });

  app.get('/api/conversations/:id/events', async (request, reply) => {
    const { id } = request.params as IdParams;
    await conversations.get(id, true);
    const header = request.headers['last-event-id'];
    const given = typeof header === 'string' && header !== '' ? header : (request.query as { last_event_id?: unknown }).last_event_id;
    let run: ReplyRun | undefined;
    let afterSeq = 0;
    if (typeof given === 'string' && given !== '') {
      ({ run, seq: afterSeq } = replies.resolveEventId(id, given));
    } else {
      run = replies.current(id);
      if (!run) throw new ParleyError('PARLEY_ERR_CONVERSATION_NO_REPLY', `no reply is running in conversation '${id}'; pass Last-Event-ID to replay a finished one`);
    }
    streamSse(request, reply, run, afterSeq, { 'X-Session-Id': id });
    return reply;
  });

  app.post('/api/conversations/:id/cancel', async (request, reply) => {
    const { id } = request.params as IdParams;
    await conversations.get(id, true);
    const run = replies.current(id);
    if (!run || !replies.cancel(id, 'the client cancelled the reply')) {
      throw new ParleyError('PARLEY_ERR_CONVERSATION_NO_REPLY', `no reply is running in conversation '${id}'`);
    }
    return reply.status(202).send({ reply_id: run.replyId, cancelled: true });
  });

  app.get('/api/conversations/:id/export', async (request, reply) => {
    const { id } = request.params as IdParams;
    const format = (request.query as { format?: unknown }).format ?? 'json';
    if (format !== 'json' && format !== 'markdown') throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid format '${String(format)}': use json or markdown`);
    const { conversation, totals } = await conversations.get(id);
    const messages = await conversations.allMessages(id);
    const name = `conversation-${id.replace(/[^A-Za-z0-9._-]/g, '_')}.${format === 'json' ? 'json' : 'md'}`;
    reply.header('Content-Disposition', `attachment; filename="${name}"`);
    if (format === 'markdown') return reply.type('text/markdown; charset=utf-8').send(conversationToMarkdown(conversation, totals, messages));
    return reply.send({ ...conversationToWire(conversation, totals), exported_at: new Date().toISOString(), messages: messages.map(messageToWire) });
  });

  if (deps.websocket) {
    registerConversationWebSocket(app, { conversations, replies, toSendInput: (id, body, request) => toSendInput(id, body, request, deps) });
  } else {
    app.get('/api/conversations/:id/ws', async () => {
      throw new ParleyError('PARLEY_ERR_REQUEST_NOT_FOUND', 'the WebSocket endpoint is turned off (conversations.websocket = off); use Server-Sent Events');
    });
  }
}

/**
 * Validates a message body (`content` required unless `images`; `model` defaults to the
 * conversation's) against a conversation that exists and is not deleted.
 */
async function toSendInput(id: string, body: JsonObject, request: FastifyRequest, deps: ConversationRoutesDeps): Promise<SendInput> {
  checkFieldType(body, 'content', 'string', 'MessageRequest', 'string');
  checkFieldType(body, 'model', 'string', 'MessageRequest', 'string');
  checkFieldType(body, 'images', 'array', 'MessageRequest', '[]api.ImageData');
  checkFieldType(body, 'options', 'object', 'MessageRequest', 'map[string]interface {}');
  const content = typeof body.content === 'string' ? body.content : '';
  const images = Array.isArray(body.images) ? body.images : undefined;
  if (images?.some((i) => typeof i !== 'string')) throw new ParleyError('PARLEY_ERR_REQUEST_FIELD_TYPE', 'images must be base64 strings');
  if (content === '' && !images?.length) throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'content is required');
  deps.conversations.checkSize('message', content);
  const { conversation } = await deps.conversations.get(id);
  const model = typeof body.model === 'string' && body.model !== '' ? body.model : conversation.model;
  if (!model) throw new ParleyError('PARLEY_ERR_REQUEST_MODEL_REQUIRED', 'model is required (give it here or when creating the conversation)');
  const extra: Record<string, unknown> = {};
  for (const k of ['options', 'think', 'format', 'keep_alive', 'tools'] as const) if (body[k] !== undefined) extra[k] = body[k];
  return { conversationId: id, requestId: request.id, model, content, images: images as string[] | undefined, extra, caller: callerOf(request) };
}

/** `stream:false`: waits for the reply and answers it whole (200, or the error's status). */
async function collect(run: ReplyRun): Promise<Record<string, unknown>> {
  const events: ReplyEvent[] = [];
  await new Promise<void>((resolve) => run.attach(0, { event: (e) => events.push(e), end: resolve }));
  const last = events.at(-1);
  if (last?.type === 'error') {
    const d = last.data as { code?: string; message?: string; status?: number };
    const code = typeof d.code === 'string' && d.code in ERROR_CODES ? (d.code as ErrorCode) : 'PARLEY_ERR_UPSTREAM_REJECTED';
    throw new ParleyError(code, d.message ?? 'the reply failed', { status: d.status ?? 500 });
  }
  const warnings = events.filter((e) => e.type === 'warning').map((e) => e.data);
  return { reply_id: run.replyId, message: { role: 'assistant', content: run.content }, ...(last?.data ?? {}), warnings };
}

function isEmpty(body: unknown): boolean {
  return body === undefined || body === null || (Buffer.isBuffer(body) && body.length === 0);
}
