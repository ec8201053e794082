import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ParleyError, toParleyError } from '../../errors/parley-error.js';
import type { ConversationReplies, SendInput } from '../../chat/conversation-replies.js';
import type { ReplyRun } from '../../chat/reply-run.js';
import type { ConversationService } from '../../conversations/conversation-service.js';
import type { JsonObject } from '../http/json-body.js';

/** Bytes that may wait for a slow WebSocket client before it is disconnected. */
const WS_MAX_BUFFERED_BYTES = 1024 * 1024;

export interface ConversationWebSocketDeps {
  conversations: ConversationService;
  replies: ConversationReplies;
  toSendInput(id: string, body: JsonObject, request: FastifyRequest): Promise<SendInput>;
}

/**
 * `GET /api/conversations/:id/ws`: the conversations API's WebSocket (docs/api.md). Text frames,
 * one JSON object each.
 *
 * Client → server: `{"type":"send","content":"…", "model"?, "images"?, "options"?, "think"?}`,
 * `{"type":"cancel"}`, `{"type":"resume","last_event_id":"<replyId>:<seq>"}` (or without it: the
 * running reply from its first event).
 * Server → client: every reply event as `{"type":"token"|"step"|"warning"|"error"|"done","id":"<replyId>:<seq>","data":{…}}`,
 * and `{"type":"rejected","data":{"code","message","status"}}` when a client frame was refused
 * (bad JSON, 409 busy, 413 too large, …); a rejected frame changes nothing.
 *
 * An unknown conversation is refused before the upgrade (404), a deleted one with 410. Closing the
 * socket only detaches: the reply goes on for `conversations.reconnectGraceMs`.
 */
export function registerConversationWebSocket(app: FastifyInstance, deps: ConversationWebSocketDeps): void {
  app.get(
    '/api/conversations/:id/ws',
    {
      websocket: true,
      preValidation: async (request) => {
        await deps.conversations.get((request.params as { id: string }).id);
      },
    },
    (socket: WebSocket, request) => {
      const id = (request.params as { id: string }).id;
      let detach: () => void = () => undefined;
      const send = (frame: Record<string, unknown>): void => {
        if (socket.readyState !== socket.OPEN) return;
        socket.send(JSON.stringify(frame));
        // A client that does not read is disconnected (the reply goes on; it can resume).
        if (socket.bufferedAmount > WS_MAX_BUFFERED_BYTES) {
          request.log.warn({ conversationId: id, bufferedBytes: socket.bufferedAmount }, 'conversation.ws_client_too_slow');
          socket.terminate();
        }
      };
      const reject = (e: unknown): void => {
        const err = toParleyError(e);
        send({ type: 'rejected', data: { code: err.code, message: err.message, status: err.status } });
      };
      const follow = (run: ReplyRun, afterSeq: number): void => {
        detach();
        detach = run.attach(afterSeq, { event: (e) => send({ type: e.type, id: e.id, data: e.data }), end: () => (detach = () => undefined) });
      };
      const handle = async (text: string): Promise<void> => {
        let frame: JsonObject;
        try {
          const parsed = JSON.parse(text) as unknown;
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          frame = parsed as JsonObject;
        } catch {
          reject(new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'each frame must be one JSON object with a "type"'));
          return;
        }
        switch (frame.type) {
          case 'send':
            follow(await deps.replies.send(await deps.toSendInput(id, frame, request)), 0);
            return;
          case 'cancel':
            if (!deps.replies.cancel(id, 'the client cancelled the reply')) reject(new ParleyError('PARLEY_ERR_CONVERSATION_NO_REPLY', `no reply is running in conversation '${id}'`));
            return;
          case 'resume': {
            const last = frame.last_event_id;
            if (typeof last === 'string' && last !== '') {
              const { run, seq } = deps.replies.resolveEventId(id, last);
              follow(run, seq);
              return;
            }
            const run = deps.replies.current(id);
            if (run) follow(run, 0);
            else reject(new ParleyError('PARLEY_ERR_CONVERSATION_NO_REPLY', `no reply is running in conversation '${id}'`));
            return;
          }
          default:
            reject(new ParleyError('PARLEY_ERR_REQUEST_INVALID', `unknown frame type '${String(frame.type)}': use send, cancel or resume`));
        }
      };
      // Frames are handled one after another, so a send is registered before a cancel that follows it.
      let queue = Promise.resolve();
      socket.on('message', (data, isBinary) => {
        const text = isBinary ? '' : Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
        queue = queue.then(() => handle(text)).catch(reject);
      });
      socket.on('close', () => detach());
    },
  );
}
