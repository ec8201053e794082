import type { ConversationRecord, ConversationTotals } from '../../conversations/conversation-store.js';
import type { StoredMessage } from '../../conversations/session-store.js';
import { toWireMessage } from '../../conversations/session-service.js';

/** A conversation as the conversations API shows it (snake_case, like the rest of /api). */
export function conversationToWire(c: ConversationRecord, totals?: ConversationTotals): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: c.id,
    session_id: c.id,
    title: c.title,
    model: c.model === '' ? null : c.model,
    status: c.status,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    message_count: c.messageCount,
  };
  if (c.deletedAt !== null) out.deleted_at = c.deletedAt;
  if (totals) {
    out.tokens = { prompt: totals.promptTokens, completion: totals.completionTokens, total: totals.promptTokens + totals.completionTokens };
  }
  return out;
}

/** A stored message: Ollama's message fields plus `seq`, `status`, timestamps and reply figures. */
export function messageToWire(m: StoredMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { seq: m.seq, ...toWireMessage(m) };
  out.model = m.model;
  out.status = m.status;
  out.created_at = m.createdAt;
  out.updated_at = m.updatedAt;
  if (m.metrics) {
    out.done_reason = m.metrics.doneReason;
    out.prompt_tokens = m.metrics.promptTokens;
    out.completion_tokens = m.metrics.completionTokens;
    out.total_duration_ns = m.metrics.totalDurationNs;
    out.eval_duration_ns = m.metrics.evalDurationNs;
  }
  return out;
}

/** The Markdown export: title, a metadata line, then each message under a role heading. */
export function conversationToMarkdown(c: ConversationRecord, totals: ConversationTotals, messages: StoredMessage[]): string {
  const lines = [`# ${c.title ?? 'Untitled conversation'}`, ''];
  lines.push(`- id: \`${c.id}\``, `- model: ${c.model || 'none'}`, `- created: ${c.createdAt}`, `- updated: ${c.updatedAt}`);
  lines.push(`- messages: ${c.messageCount}`, `- tokens: ${totals.promptTokens} prompt, ${totals.completionTokens} completion`, '');
  for (const m of messages) {
    const role = m.role.charAt(0).toUpperCase() + m.role.slice(1);
    const marks = [m.model && m.role === 'assistant' ? m.model : '', m.status === 'incomplete' ? 'incomplete' : ''].filter(Boolean).join(', ');
    lines.push(`## ${role}${marks ? ` (${marks})` : ''}`, '');
    if (m.thinking) lines.push(...m.thinking.split('\n').map((l) => `> ${l}`), '');
    lines.push(m.content === '' ? '_(empty)_' : m.content, '');
  }
  return lines.join('\n');
}
