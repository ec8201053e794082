import type { Logger } from '../observability/logger.js';
import type { MessageInput, MessageStatus, ReplyMetrics, SessionStore } from './session-store.js';

/** The reply as it accumulates from upstream chunks (Ollama chat chunk `message` fields). */
export interface ReplySoFar {
  content: string;
  thinking: string;
  toolCalls: unknown[];
}

/**
 * Persists one session turn while it streams: `begin()` starts the insert of the new messages
 * plus an `incomplete` assistant placeholder, which the relay awaits (`stored()`) before the first
 * chunk goes to the client; partial text is saved at most every `partialSaveIntervalMs`;
 * `finish()` is awaited before the final chunk goes to the client, so a turn whose final chunk
 * was sent is durable (SQLite WAL commit / Postgres commit).
 */
export class TurnRecorder {
  readonly reply: ReplySoFar = { content: '', thinking: '', toolCalls: [] };
  /** How the turn ended (set by `finish`): status and the final chunk's metrics. */
  outcome: { status: MessageStatus; metrics: ReplyMetrics | null } | undefined;
  private begun: Promise<number> | undefined;
  private lastSavedLength = 0;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private finished = false;

  constructor(
    private readonly store: SessionStore,
    private readonly sessionId: string,
    private readonly model: string,
    private readonly newMessages: MessageInput[],
    private readonly partialSaveIntervalMs: number,
    private readonly now: () => Date,
    private readonly logger: Logger,
  ) {}

  /** Starts writing the turn (idempotent). Errors surface from `finish()`. */
  begin(): void {
    if (this.begun) return;
    this.begun = this.store
      .beginTurn({ sessionId: this.sessionId, model: this.model, messages: this.newMessages, now: this.now().toISOString() })
      .then((r) => r.assistantMessageId);
    // Keep a rejection from being reported as unhandled before finish() awaits it.
    this.begun.catch((e: unknown) => this.logger.error({ err: e, sessionId: this.sessionId }, 'session.turn_begin_failed'));
  }

  /**
   * Starts writing the turn if needed and resolves once its rows are stored.
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE when they cannot be written
   */
  async stored(): Promise<void> {
    this.begin();
    await this.begun;
  }

  /** Adds one upstream chat chunk's `message` to the reply. */
  add(message: { content?: unknown; thinking?: unknown; tool_calls?: unknown } | undefined): void {
    if (!message) return;
    if (typeof message.content === 'string') this.reply.content += message.content;
    if (typeof message.thinking === 'string') this.reply.thinking += message.thinking;
    if (Array.isArray(message.tool_calls)) this.reply.toolCalls.push(...(message.tool_calls as unknown[]));
    if (this.partialSaveIntervalMs > 0 && !this.saveTimer && !this.finished) {
      this.saveTimer = setTimeout(() => this.savePartial(), this.partialSaveIntervalMs);
      this.saveTimer.unref();
    }
  }

  /**
   * Writes the final state of the reply. `complete` only when the upstream sent `done:true`;
   * anything else (abort, upstream failure, stream cut) is stored `incomplete` with what arrived.
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE when the database cannot be written
   */
  async finish(status: MessageStatus, metrics: ReplyMetrics | null): Promise<void> {
    this.finished = true;
    this.outcome = { status, metrics };
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.begin();
    const id = await this.begun!;
    await this.saving;
    await this.store.completeTurn(id, {
      status,
      content: this.reply.content,
      thinking: this.reply.thinking || undefined,
      toolCalls: this.reply.toolCalls.length > 0 ? this.reply.toolCalls : undefined,
      metrics,
      now: this.now().toISOString(),
    });
  }

  /** The stored assistant message's id once the turn was begun (undefined if never begun or the insert failed). */
  async assistantMessageId(): Promise<number | undefined> {
    return this.begun?.catch(() => undefined);
  }

  private savePartial(): void {
    this.saveTimer = undefined;
    if (this.finished || !this.begun) return;
    const length = this.reply.content.length + this.reply.thinking.length;
    if (length === this.lastSavedLength) return;
    this.lastSavedLength = length;
    const { content, thinking } = this.reply;
    this.saving = this.saving
      .then(() => this.begun!)
      .then((id) => this.store.savePartial(id, content, thinking || undefined, this.now().toISOString()))
      .catch((e: unknown) => this.logger.warn({ err: e, sessionId: this.sessionId }, 'session.partial_save_failed'));
  }
}

/** Reads Ollama's final-chunk metrics (integer nanoseconds, reference §2). */
export function metricsFromChunk(chunk: Record<string, unknown>): ReplyMetrics {
  const num = (k: string): number | null => (typeof chunk[k] === 'number' ? (chunk[k] as number) : null);
  return {
    doneReason: typeof chunk.done_reason === 'string' ? chunk.done_reason : null,
    promptTokens: num('prompt_eval_count'),
    completionTokens: num('eval_count'),
    totalDurationNs: num('total_duration'),
    loadDurationNs: num('load_duration'),
    promptEvalDurationNs: num('prompt_eval_duration'),
    evalDurationNs: num('eval_duration'),
  };
}
