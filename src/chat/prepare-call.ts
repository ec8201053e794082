import { ParleyError } from '../errors/parley-error.js';
import type { MessageInput } from '../conversations/session-store.js';
import { normalizeModelName } from '../upstream/model-name.js';
import { cacheKey } from '../resilience/response-cache.js';
import type { ModelCall, ModelCallDeps } from './model-call-service.js';

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
}

/**
 * Builds the upstream body: for a session turn, the stored history + the new messages
 * (always streamed upstream, so a reply cut short can be kept as it was).
 * @throws ParleyError PARLEY_ERR_SESSION_TOO_LARGE over the session caps,
 *   PARLEY_ERR_STORAGE_UNAVAILABLE when the history cannot be read
 */
export async function prepareCall(call: ModelCall, deps: Pick<ModelCallDeps, 'sessions' | 'limits' | 'cache'>): Promise<PreparedCall> {
  const body = { ...call.body };
  const newMessages = Array.isArray(body.messages) ? (body.messages as MessageInput[]) : [];
  const session = call.endpoint === 'chat' && call.sessionId !== undefined && newMessages.length > 0 ? call.sessionId : undefined;
  if (session !== undefined) {
    const history = await deps.sessions.history(session);
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
    body.messages = [...history, ...newMessages];
    body.stream = true;
  }
  const generating = call.endpoint === 'chat' || call.endpoint === 'generate';
  const key = generating && deps.cache?.record ? cacheKey(call.endpoint, normalizeModelName(call.model), body) : undefined;
  const firstTurn =
    call.endpoint === 'chat'
      ? (body.messages as Array<{ role?: unknown }> | undefined ?? []).filter((m) => m?.role === 'user').length <= 1
      : !Array.isArray(body.context) || body.context.length === 0;
  return { body, json: JSON.stringify(body), session, newMessages, key, firstTurn };
}

