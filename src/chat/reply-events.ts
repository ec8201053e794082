/**
 * The typed events of a conversation reply (docs/api.md, "Conversations API"):
 * - `token`: `{content?, thinking?, tool_calls?}`: a piece of the reply.
 * - `step`: `{stage, …}`: `accepted` (with `reply_id`, `message`), `queue` (`position`, `depth`;
 *   0 = running), `context_built` (`messages` sent to the model), `summary_used`.
 * - `warning`: `{kind, …}`: `degraded` (`mode`: the answer did not come from the model),
 *   `history_truncated` (`truncated_messages`).
 * - `error`: `{code, message, status, incomplete?}`: the reply failed; last event.
 * - `done`: `{done_reason, prompt_tokens, completion_tokens, total_tokens, timings}`: last event;
 *   `timings` has Ollama's durations in ns plus `elapsed_ms` and `first_token_ms` seen by Parley.
 */
export type ReplyEventType = 'token' | 'step' | 'warning' | 'error' | 'done';

/** An event before it is numbered. */
export interface ReplyEventDraft {
  type: ReplyEventType;
  data: Record<string, unknown>;
}

/**
 * The events one Ollama `/api/chat` chunk (as the pipeline writes it) stands for: a queue
 * position chunk is a `step`, an `{"error"}` line an `error`, content/thinking/tool calls a
 * `token`, the `done:true` chunk a `done` (after a `token` if it still carries text). The
 * `degraded` marker is handled by the caller (one `warning` per reply).
 */
export function replyEventsFromChunk(chunk: Record<string, unknown>): ReplyEventDraft[] {
  if (typeof chunk.error === 'string') {
    return [{ type: 'error', data: { code: 'PARLEY_ERR_UPSTREAM_REJECTED', message: chunk.error, status: 500, incomplete: true } }];
  }
  const queue = chunk.queue as { position?: unknown; depth?: unknown } | undefined;
  if (queue && typeof queue === 'object') {
    return [{ type: 'step', data: { stage: 'queue', position: queue.position, depth: queue.depth } }];
  }
  const out: ReplyEventDraft[] = [];
  const message = chunk.message as { content?: unknown; thinking?: unknown; tool_calls?: unknown } | undefined;
  if (message && typeof message === 'object') {
    const token: Record<string, unknown> = {};
    if (typeof message.content === 'string' && message.content !== '') token.content = message.content;
    if (typeof message.thinking === 'string' && message.thinking !== '') token.thinking = message.thinking;
    if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) token.tool_calls = message.tool_calls;
    if (Object.keys(token).length > 0) out.push({ type: 'token', data: token });
  }
  if (chunk.done === true) {
    const num = (k: string): number | null => (typeof chunk[k] === 'number' ? (chunk[k] as number) : null);
    const prompt = num('prompt_eval_count');
    const completion = num('eval_count');
    out.push({
      type: 'done',
      data: {
        done_reason: typeof chunk.done_reason === 'string' ? chunk.done_reason : null,
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt === null && completion === null ? null : (prompt ?? 0) + (completion ?? 0),
        ...(typeof chunk.degraded === 'string' ? { degraded: chunk.degraded } : {}),
        timings: {
          total_duration_ns: num('total_duration'),
          load_duration_ns: num('load_duration'),
          prompt_eval_duration_ns: num('prompt_eval_duration'),
          eval_duration_ns: num('eval_duration'),
        },
      },
    });
  }
  return out;
}
