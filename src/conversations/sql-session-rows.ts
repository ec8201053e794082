import type { MessageRow, NewMessageRow } from '../storage/schema.js';
import type { MessageInput, ReplyMetrics, StoredMessage } from './session-store.js';

/** Row ⇄ contract mapping for `SqlSessionStore`: JSON columns, optional fields, metrics. */

/** The columns of a message as the client sent it; absent optional fields become null. */
export function inputColumns(m: MessageInput): Pick<NewMessageRow, 'role' | 'content' | 'thinking' | 'images' | 'tool_calls' | 'tool_name' | 'tool_call_id'> {
  return {
    role: m.role,
    content: m.content,
    thinking: m.thinking ?? null,
    images: m.images === undefined ? null : JSON.stringify(m.images),
    tool_calls: m.tool_calls === undefined ? null : JSON.stringify(m.tool_calls),
    tool_name: m.tool_name ?? null,
    tool_call_id: m.tool_call_id ?? null,
  };
}

/** Optional message fields that are null in the row are left out of the result. */
export function toStoredMessage(row: MessageRow, sessionId: string): StoredMessage {
  const message: StoredMessage = {
    id: Number(row.id),
    sessionId,
    seq: Number(row.seq),
    role: row.role,
    content: row.content,
    model: row.model,
    status: row.status,
    metrics: toMetrics(row),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.tokens !== null && row.tokens !== undefined) {
    message.tokens = Number(row.tokens);
    message.tokensExact = Number(row.tokens_exact) === 1;
  }
  if (row.thinking !== null) message.thinking = row.thinking;
  if (row.images !== null) message.images = JSON.parse(row.images) as string[];
  if (row.tool_calls !== null) message.tool_calls = JSON.parse(row.tool_calls) as unknown[];
  if (row.tool_name !== null) message.tool_name = row.tool_name;
  if (row.tool_call_id !== null) message.tool_call_id = row.tool_call_id;
  return message;
}

function toMetrics(row: MessageRow): ReplyMetrics | null {
  const metrics: ReplyMetrics = {
    doneReason: row.done_reason,
    promptTokens: toNumber(row.prompt_tokens),
    completionTokens: toNumber(row.completion_tokens),
    totalDurationNs: toNumber(row.total_duration_ns),
    loadDurationNs: toNumber(row.load_duration_ns),
    promptEvalDurationNs: toNumber(row.prompt_eval_duration_ns),
    evalDurationNs: toNumber(row.eval_duration_ns),
  };
  return Object.values(metrics).every((v) => v === null) ? null : metrics;
}

/** Defensive: pg returns int8 as a string unless the pool's parser (storage/database.ts) is used. */
function toNumber(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}
