import { ParleyError } from '../errors/parley-error.js';
import type { MessageInput } from '../conversations/session-store.js';
import { toWireMessage } from '../conversations/session-service.js';
import type { ContextPlan } from '../context/context-service.js';
import { normalizeModelName } from '../upstream/model-name.js';
import { cacheKey } from '../resilience/response-cache.js';
import type { ModelCall, ModelCallDeps } from './model-call-types.js';

/** What the pipeline works out before calling an upstream. */
export interface PreparedCall {
  body: Record<string, unknown>;
  json: string;
  /** Session whose turn is stored (chat with a session and new messages). */
  session: string | undefined;
  newMessages: MessageInput[];
  /** Response-cache key (chat/generate, when the cache records). */
  key: string | undefined;
  /** First user message of a conversation (degraded static mode greets). */
  firstTurn: boolean;
  /** Session turns with context management: what was sent, for exact token counts afterwards. */
  context?: ContextPlan | undefined;
  /** True when the session is a thread Parley chose for a request without a session id. */
  threaded?: boolean | undefined;
}

/**
 * Builds the upstream body: for a session turn, the stored history + the new messages, fitted
 * into the model's context window by `deps.context` when present (always streamed upstream, so a
 * reply cut short can be kept as it was). A chat without a session id is threaded onto the
 * caller's matching conversation when `deps.threads` is present (threads.mode = thread).
 * @throws ParleyError PARLEY_ERR_SESSION_TOO_LARGE over the session caps, PARLEY_ERR_CONTEXT_TOO_LONG
 *   when the system prompt plus the new message cannot fit the window,
 *   PARLEY_ERR_STORAGE_UNAVAILABLE when the history cannot be read
 */
export async function prepareCall(call: ModelCall, deps: Pick<ModelCallDeps, 'sessions' | 'limits' | 'cache' | 'context' | 'threads' | 'access'>): Promise<PreparedCall> {
  const body = { ...call.body };
  let newMessages = Array.isArray(body.messages) ? (body.messages as MessageInput[]) : [];
  let sessionId = call.sessionId;
  let threaded = false;
  if (call.endpoint === 'chat' && sessionId === undefined && newMessages.length > 0 && deps.threads && call.threadCaller !== undefined) {
    // threads.mode = thread: the client re-sends its history; only what is new is the turn.
    const t = await deps.threads.resolve(call.threadCaller, newMessages);
    sessionId = t.sessionId;
    newMessages = t.newMessages;
    threaded = true;
    // A keyed caller's thread is its own (GET /api/sessions/:id, the conversations API).
    if (call.caller) await deps.access?.claim(t.sessionId, call.caller.keyId);
  }
  const session = call.endpoint === 'chat' && sessionId !== undefined && newMessages.length > 0 ? sessionId : undefined;
  let context: ContextPlan | undefined;
  if (session !== undefined) {
    // The previous turn's token counts are written in the background: read history after them.
    await deps.context?.settled(session);
    const known = call.knownHistory;
    const stored = await deps.sessions.sendable(session, known);
    const history = stored.map(toWireMessage);
    const limits = deps.limits;
    if (limits) {
      const count = history.length + newMessages.length;
      const bytes = Buffer.byteLength(JSON.stringify(history)) + Buffer.byteLength(JSON.stringify(newMessages));
      if (count > limits.sessionMaxMessages || bytes > limits.sessionMaxBytes) {
        throw new ParleyError(
          'PARLEY_ERR_SESSION_TOO_LARGE',
          `session '${session}' is too large (${count} messages, ${bytes} bytes; the caps are ${limits.sessionMaxMessages} messages and ${limits.sessionMaxBytes} bytes); please start a new session`,
        );
      }
    }
    if (deps.context) {
      const fitted = await deps.context.fit({ sessionId: session, model: call.model, options: body.options, stored, incoming: newMessages, newSession: known === null });
      body.messages = fitted.messages;
      context = fitted.plan;
    } else {
      body.messages = [...history, ...newMessages];
    }
    body.stream = true;
  }
  const generating = call.endpoint === 'chat' || call.endpoint === 'generate';
  const key = generating && deps.cache?.record ? cacheKey(call.endpoint, normalizeModelName(call.model), body) : undefined;
  const firstTurn =
    call.endpoint === 'chat'
      ? (body.messages as Array<{ role?: unknown }> | undefined ?? []).filter((m) => m?.role === 'user').length <= 1
      : !Array.isArray(body.context) || body.context.length === 0;
  return { body, json: JSON.stringify(body), session, newMessages, key, firstTurn, context, threaded };
}

